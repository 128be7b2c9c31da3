/**
 * iot-device-auth's replay cache and rate limits in Redis, shared by every Node-RED instance that
 * runs the same flow (the same node id) against the same iot-redis: a nonce, token id or webhook
 * signature accepted by one instance is refused by all, and a device's token bucket is one
 * whichever instance it reaches. Free of Node-RED.
 *
 * One Lua script per message does both (one round trip; ioredis auto-pipelining sends the
 * scripts of one event-loop turn in one write). A device's keys share its hash tag, so the script
 * touches one slot and a Redis Cluster spreads the fleet over its masters:
 *   <prefix>:{<device>}:da:<node>:r:<sha-256 of the replay key, 128 bits>  (expires when the credential would)
 *   <prefix>:{<device>}:da:<node>:rl                                      hash: tokens t, time a (ms)
 * Memory is Redis's: entries expire by themselves (no "full" answer as the local cache has).
 */
import { sha256Hex } from '../shared/digest';
import { tagOfDevice, type SharedRedis } from '../shared/redis-api';
import type { SharedChecks } from './auth-core';

/**
 * KEYS[1] the replay key (or the bucket when there is none), KEYS[2] the bucket.
 * ARGV: now (ms), the replay's time to live in ms ('' for none), tokens per second ('' for no
 * limit), burst. Answers -1 for a replay, else the wait in ms (0: a token was taken).
 * The bucket refills as iot-device-auth's local TokenBuckets do, and expires once it would be
 * full again anyway.
 */
const CHECK_SCRIPT = `
if ARGV[2] ~= '' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return -1 end
end
if ARGV[3] == '' then return 0 end
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local tokens = burst
local held = redis.call('HMGET', KEYS[2], 't', 'a')
if held[1] then tokens = math.min(burst, tonumber(held[1]) + math.max(0, now - tonumber(held[2])) * rate / 1000) end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[2], 't', string.format('%.17g', tokens), 'a', ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.ceil(burst * 1000 / rate) + 1000)
return wait`;

interface CheckCommand {
  iotAuthCheck(replayKey: string, bucketKey: string, now: number, replayTtlMs: number | string, perSecond: number | string, burst: number | string): Promise<number>;
}

const defined = new WeakSet<object>();

export class RedisSharedChecks implements SharedChecks {
  private readonly command: CheckCommand;
  /** Scripts sent, one per message checked (for the benchmark and the tests). */
  roundTrips = 0;

  constructor(
    private readonly redis: SharedRedis,
    /** The node's id: the same on every instance running the same flows. */
    private readonly scope: string,
    private readonly rate: { perSecond: number; burst: number } | undefined,
  ) {
    const client = redis.client;
    // Defined once per client: ioredis then sends EVALSHA, and the script itself only the first time.
    if (!defined.has(client)) {
      client.defineCommand('iotAuthCheck', { numberOfKeys: 2, lua: CHECK_SCRIPT });
      defined.add(client);
    }
    this.command = client as unknown as CheckCommand;
  }

  async check(device: string, replay: { key: string; until: number } | undefined, takeToken: boolean, now: number): Promise<{ replayed: boolean; waitMs: number }> {
    const base = `${this.redis.prefix}:${tagOfDevice(device)}:da:${this.scope}`;
    const bucket = `${base}:rl`;
    const rate = takeToken ? this.rate : undefined;
    // A credential already past its time is refused by the registry: remembered a moment anyway.
    const ttl = replay ? Math.max(1, Math.ceil(replay.until - now)) : '';
    this.roundTrips++;
    const answer = await this.command.iotAuthCheck(replay ? `${base}:r:${sha256Hex(replay.key).slice(0, 32)}` : bucket, bucket, Math.round(now), ttl, rate ? rate.perSecond : '', rate ? rate.burst : '');
    return answer === -1 ? { replayed: true, waitMs: 0 } : { replayed: false, waitMs: Number(answer) };
  }
}
