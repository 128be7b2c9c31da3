/**
 * iot-threshold's per-key state in Redis, shared by every Node-RED instance that runs the same
 * flow (the same node id) against the same iot-redis: a device's readings may reach any instance
 * in any order and still give one alert per episode with one id, and every deadline (silence,
 * durations) fires once in the cluster, also when the instance that last saw the device is gone.
 * Free of Node-RED.
 *
 * The engine stays the pure one; this module keeps each key's state as the engine exports it
 * (a snapshot row, JSON) with a version, and changes it optimistically: the reading runs on the
 * state this instance last wrote or read, and one Lua script stores the result only if the
 * version is still the one it started from (else it answers with the newer state, which is
 * loaded and the reading run again on it). A device that stays with one instance costs one
 * round trip per reading; alert events go out only once their state is stored.
 *   <prefix>:{<key>}:th:<node>        hash: version v, state s ('' once reset)
 *   <prefix>:{th:<node>}:deadlines    sorted set: key -> its next deadline (ms)
 * Deadlines are claimed by a script that moves due ones a lease ahead (another instance takes
 * them over once the lease ends), fired on the key's stored state, and settled afterwards. An
 * entry earlier than needed only costs a look; the state's version makes every firing count once.
 */
import { tagOfDevice, type SharedRedis } from '../shared/redis-api';
import type { AlertEvent, SnapshotKey, ThresholdEngine } from './engine';

/**
 * KEYS[1] the key's hash. ARGV: the version the change started from, the new state ('' none),
 * '1' when the change changed nothing (then the version is only checked, not moved on).
 * Answers {1, new version} or, when another instance changed it first, {0, version, state}.
 * Versions only grow (a reset keeps its version), so an old version is never taken for current.
 */
const STORE_SCRIPT = `
local held = redis.call('HMGET', KEYS[1], 'v', 's')
local version = tonumber(held[1] or '0')
if version ~= tonumber(ARGV[1]) then return {0, version, held[2] or ''} end
if ARGV[3] == '1' then return {1, version} end
redis.call('HSET', KEYS[1], 'v', version + 1, 's', ARGV[2])
return {1, version + 1}`;

/** KEYS[1] the deadlines. ARGV: now, lease (ms), how many at most. Answers the keys claimed, their lease ending at now + lease. */
const CLAIM_SCRIPT = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, key in ipairs(due) do redis.call('ZADD', KEYS[1], until_, key) end
return due`;

/**
 * KEYS[1] the deadlines. ARGV: key, the lease it was claimed with, its next deadline ('' none).
 * An entry another instance moved meanwhile (a reading's earlier deadline) is kept if earlier.
 */
const SETTLE_SCRIPT = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
elseif ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[1])
end
return 0`;

interface ThresholdCommands {
  iotThresholdStore(key: string, version: number, state: string, unchanged: '1' | ''): Promise<[number, number, string?]>;
  iotThresholdClaim(deadlines: string, now: number, leaseMs: number, limit: number): Promise<string[]>;
  iotThresholdSettle(deadlines: string, key: string, lease: number, next: number | string): Promise<number>;
  zadd(key: string, ...args: Array<string | number>): Promise<number>;
}

const defined = new WeakSet<object>();
/** A claimed deadline not settled within this is claimed again, by whichever instance comes first. */
const LEASE_MS = 30_000;
const CLAIM_LIMIT = 200;
/** Conflicts in a row before giving up: each is another instance's change to the same key. */
const MAX_ATTEMPTS = 8;

export class SharedStateError extends Error {
  readonly code = 'shared_state_unavailable';
}

export class SharedThresholdState {
  private readonly commands: ThresholdCommands;
  private readonly deadlinesKey: string;
  /** The version of each key's state that the engine holds (0: none stored yet, as far as known). */
  private readonly versions = new Map<string, number>();
  /** Per key, the end of the latest change: changes to one key run one after the other. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Commands sent to Redis (for the benchmark and the tests). */
  roundTrips = 0;

  constructor(
    private readonly redis: SharedRedis,
    /** The node's id: the same on every instance running the same flows. */
    private readonly scope: string,
    /** The engine, built with localTimers false; this instance's cache of the keys' state. */
    private readonly engine: ThresholdEngine,
    /** Where the engine's listener puts its events. */
    private readonly events: AlertEvent[],
  ) {
    const client = redis.client;
    // Defined once per client: ioredis then sends EVALSHA, and the script itself only the first time.
    if (!defined.has(client)) {
      client.defineCommand('iotThresholdStore', { numberOfKeys: 1, lua: STORE_SCRIPT });
      client.defineCommand('iotThresholdClaim', { numberOfKeys: 1, lua: CLAIM_SCRIPT });
      client.defineCommand('iotThresholdSettle', { numberOfKeys: 1, lua: SETTLE_SCRIPT });
      defined.add(client);
    }
    this.commands = client as unknown as ThresholdCommands;
    this.deadlinesKey = `${redis.prefix}:{th:${scope}}:deadlines`;
  }

  /**
   * Runs `change` on the key's shared state and stores the result; `change` returns something
   * truthy when it changed nothing (a bad reading), which is then answered without Redis.
   * `after` runs on the stored state before any other change to the key. Resolves with the
   * events the change caused, or rejects with a SharedStateError (then nothing was announced).
   */
  update<R, A>(key: string, now: number, change: () => R, after: () => A, mayChangeNothing = false): Promise<{ refused: R; events: AlertEvent[]; after?: A }> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = () => this.attempt(key, now, change, after, mayChangeNothing);
    const run = previous.then(next, next);
    this.queues.set(key, run);
    const forget = () => {
      if (this.queues.get(key) === run) this.queues.delete(key);
    };
    run.then(forget, forget);
    return run;
  }

  private async attempt<R, A>(key: string, now: number, change: () => R, after: () => A, mayChangeNothing: boolean): Promise<{ refused: R; events: AlertEvent[]; after?: A }> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const version = this.versions.get(key) ?? 0;
      const mark = this.events.length;
      // A timer that finds nothing due leaves the version alone: the instance the device talks to keeps its state current.
      const before = mayChangeNothing ? JSON.stringify(this.engine.exportKey(key) ?? null) : undefined;
      const refused = change();
      const events = this.events.splice(mark);
      if (refused) return { refused, events };
      const row = this.engine.exportKey(key);
      const json = row ? JSON.stringify(row) : '';
      const deadline = this.engine.keyDeadline(key);
      const stateKey = `${this.redis.prefix}:${tagOfDevice(key)}:th:${this.scope}`;
      // Sent in the same turn as the state, so in the same write: an entry earlier than needed is
      // harmless, and one lost (a cluster master away) is put back by the key's next reading.
      if (deadline !== Infinity) {
        this.roundTrips++;
        this.commands.zadd(this.deadlinesKey, 'LT', Math.round(deadline), key).catch(() => undefined);
      }
      let answer: [number, number, string?];
      try {
        this.roundTrips++;
        answer = await this.commands.iotThresholdStore(stateKey, version, json, before !== undefined && before === (json || 'null') ? '1' : '');
      } catch (err) {
        // The engine is ahead of what is stored: it forgets the key and asks Redis next time.
        this.engine.importKey(key, undefined, now);
        this.versions.delete(key);
        throw new SharedStateError(`the shared state in Redis could not be updated: ${(err as Error).message}`);
      }
      if (answer[0] === 1) {
        this.versions.set(key, Number(answer[1]));
        return { refused, events, after: after() };
      }
      // Another instance changed the key first: its state is loaded and the change made again on it.
      const state = answer[2] ?? '';
      this.engine.importKey(key, state === '' ? undefined : (JSON.parse(state) as SnapshotKey), now);
      this.versions.set(key, Number(answer[1]));
    }
    this.engine.importKey(key, undefined, now);
    this.versions.delete(key);
    throw new SharedStateError(`the state of ${JSON.stringify(key)} kept changing on other instances (${MAX_ATTEMPTS} attempts)`);
  }

  /**
   * Claims the deadlines due by `now` (a lease, so that no other instance fires them meanwhile),
   * fires each on the key's stored state and settles it. Resolves with the events of the keys
   * fired and why others could not be (their lease runs out and they are claimed again), so that
   * one key's failure holds back no other key's alerts.
   */
  async fireDue(now: number): Promise<{ events: AlertEvent[]; problem?: string }> {
    this.roundTrips++;
    const due = await this.commands.iotThresholdClaim(this.deadlinesKey, now, LEASE_MS, CLAIM_LIMIT);
    const lease = now + LEASE_MS;
    let problem: string | undefined;
    const fired = await Promise.all(
      due.map(async (key) => {
        try {
          const done = await this.update(
            key,
            now,
            () => this.engine.tickKey(key, now),
            () => this.engine.keyDeadline(key),
            true,
          );
          const next = done.after ?? Infinity;
          this.roundTrips++;
          // Its events go out even when settling fails: the entry is then only looked at again.
          await this.commands.iotThresholdSettle(this.deadlinesKey, key, lease, next === Infinity ? '' : Math.round(next)).catch(() => undefined);
          return done.events;
        } catch (err) {
          problem = (err as Error).message;
          return [];
        }
      }),
    );
    return { events: fired.flat(), problem };
  }
}
