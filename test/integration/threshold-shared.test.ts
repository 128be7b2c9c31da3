/**
 * iot-threshold's per-key state shared through Redis (iot-redis), against Debian's redis-server:
 * two instances of the same node (each its own engine and its own connection, as two Node-RED
 * processes have) receiving one device's readings interleaved, also at the same moment, give one
 * raise and one clear with one alert id; a silence and a duration fire once across the two, also
 * when the instance that saw the device is gone; a sticky device costs one round trip per reading;
 * Redis away is a coded error. Then the same against a Redis Cluster of three masters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ThresholdEngine, type AlertEvent } from '../../nodes/threshold/engine';
import type { RuleConfig } from '../../nodes/threshold/rules';
import { SharedThresholdState } from '../../nodes/threshold/shared-state';
import { connect, redisSettings, type RedisProperties } from '../../nodes/redis/connection';
import { freePort, startRedis, startRedisCluster, type ManagedServer, type RedisCluster } from '../support/services';
import { eventually } from '../support/wait';

function rule(partial: Partial<RuleConfig>): RuleConfig {
  return {
    rule: 'above',
    measure: 'value',
    rateUnitMs: 1000,
    hysteresis: 'none',
    deadband: 0,
    levels: [{ severity: 'warning', value: 80 }],
    raise: { mode: 'immediate' },
    clear: { mode: 'immediate' },
    ...partial,
  };
}

interface Instance {
  engine: ThresholdEngine;
  shared: SharedThresholdState;
  /** Every event this instance announced. */
  announced: AlertEvent[];
  read(key: string, value: unknown, now: number): Promise<void>;
  close(): Promise<void>;
}

const opened: Instance[] = [];
let nodes = 0;

/** One instance of a node (the same node id on each, as two Node-RED processes running the same flows have). */
async function instance(redis: RedisProperties, config: RuleConfig, nodeId: string): Promise<Instance> {
  const connection = connect(redisSettings(redis), {});
  const pending: AlertEvent[] = [];
  const engine = new ThresholdEngine(config, nodeId, { alert: (event) => pending.push(event) }, { localTimers: false });
  const shared = new SharedThresholdState(connection.redis, nodeId, engine, pending);
  const announced: AlertEvent[] = [];
  const made: Instance = {
    engine,
    shared,
    announced,
    read: async (key, value, now) => {
      const { refused, events } = await shared.update(key, now, () => engine.read(key, value, now), () => undefined);
      expect(refused).toBeUndefined();
      announced.push(...events);
    },
    close: connection.close,
  };
  opened.push(made);
  await eventually('connected to Redis', () => (connection.redis.state === 'ready' ? true : undefined));
  return made;
}

async function pair(redis: RedisProperties, config: RuleConfig): Promise<[Instance, Instance]> {
  const nodeId = `threshold-${++nodes}`;
  return [await instance(redis, config, nodeId), await instance(redis, config, nodeId)];
}

const told = (...instances: Instance[]) =>
  instances
    .flatMap((i) => i.announced)
    .sort((a, b) => a.at - b.at)
    .map((e) => `${e.key} ${e.change} ${e.severity}`);

async function fireDue(at: Instance, now: number): Promise<void> {
  const { events, problem } = await at.shared.fireDue(now);
  expect(problem).toBeUndefined();
  at.announced.push(...events);
}

afterAll(async () => {
  await Promise.all(opened.map((i) => i.close()));
});

/** The cases, run against one Redis and against a cluster. */
function sharedCases(redis: () => RedisProperties): void {
  it('one device read alternately and at the same moment by two instances: one raise, one clear, one id', async () => {
    const [a, b] = await pair(redis(), rule({ raise: { mode: 'count', count: 3 }, levels: [{ severity: 'warning', value: 80, clear: 70 }], hysteresis: 'explicit' }));
    const values = [85, 90, 95, 99, 91, 60, 50, 40];
    for (const [i, value] of values.entries()) await (i % 2 === 0 ? a : b).read('pump-1', value, 1_000 + i * 1_000);
    // Another device, each reading sent to both at once: the versions settle who goes first.
    for (const [i, value] of values.entries()) await Promise.all([a.read('pump-2', value, 1_000 + i * 1_000), b.read('pump-2', value, 1_000 + i * 1_000)]);
    expect(told(a, b).filter((e) => e.startsWith('pump-1'))).toEqual(['pump-1 raised warning', 'pump-1 cleared warning']);
    expect(told(a, b).filter((e) => e.startsWith('pump-2'))).toEqual(['pump-2 raised warning', 'pump-2 cleared warning']);
    for (const key of ['pump-1', 'pump-2']) {
      const episode = [...a.announced, ...b.announced].filter((e) => e.key === key);
      expect(new Set(episode.map((e) => e.id)).size).toBe(1);
    }
    // pump-1's raise was confirmed by the third reading, which instance a made.
    expect(a.announced.find((e) => e.key === 'pump-1')?.change).toBe('raised');
  });

  it('a device that stays with one instance costs one round trip a reading', async () => {
    const [a] = await pair(redis(), rule({}));
    await a.read('meter-1', 10, 0);
    const before = a.shared.roundTrips;
    for (let i = 1; i <= 100; i++) await a.read('meter-1', i % 2 === 0 ? 90 : 10, i * 1_000);
    expect(a.shared.roundTrips - before).toBe(100);
    // Every reading but the first (10 after 10) raises or clears.
    expect(told(a)).toHaveLength(99);
  });

  it('silence fires once across two instances, and when the instance that saw the device is gone', async () => {
    const [a, b] = await pair(redis(), rule({ rule: 'silence', levels: [{ severity: 'warning', value: 10_000 }] }));
    await a.read('gate-1', 'hello', 0);
    await b.read('gate-1', 'hello', 5_000);
    await a.read('gate-2', 'hello', 0);
    await Promise.all([fireDue(a, 9_000), fireDue(b, 9_000)]);
    expect(told(a, b)).toEqual([]);
    await Promise.all([fireDue(a, 12_000), fireDue(b, 12_000), fireDue(a, 12_500), fireDue(b, 12_500)]);
    // gate-2 is silent since 0 (only a saw it); gate-1 since 5,000.
    expect(told(a, b)).toEqual(['gate-2 raised warning']);
    // a is gone: b alone finds gate-1 silent, and gate-2 is not raised again.
    await Promise.all([fireDue(b, 16_000), fireDue(b, 16_000)]);
    expect(told(a, b)).toEqual(['gate-2 raised warning', 'gate-1 raised warning']);
    await b.read('gate-2', 'back', 20_000);
    expect(told(a, b).at(-1)).toBe('gate-2 cleared warning');
    expect(new Set([...a.announced, ...b.announced].filter((e) => e.key === 'gate-2').map((e) => e.id)).size).toBe(1);
  });

  it('a duration confirmation fires once, by whichever instance looks first', async () => {
    const [a, b] = await pair(redis(), rule({ raise: { mode: 'duration', ms: 5_000 } }));
    await a.read('boiler-1', 95, 0);
    await b.read('boiler-1', 96, 2_000);
    await Promise.all([fireDue(a, 4_000), fireDue(b, 4_000)]);
    expect(told(a, b)).toEqual([]);
    await Promise.all([fireDue(b, 5_100), fireDue(a, 5_100), fireDue(a, 6_000), fireDue(b, 6_000)]);
    expect(told(a, b)).toEqual(['boiler-1 raised warning']);
    expect([...a.announced, ...b.announced][0].at).toBe(5_000);
  });
}

describe('threshold state shared through one Redis', () => {
  let server: ManagedServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.dispose();
  });

  sharedCases(() => ({ url: server.url }));

  it('Redis away: a coded error, nothing announced', async () => {
    const port = await freePort();
    const connection = connect(redisSettings({ url: `redis://127.0.0.1:${port}`, timeout: 1 }), {});
    const pending: AlertEvent[] = [];
    const engine = new ThresholdEngine(rule({}), 'threshold-away', { alert: (event) => pending.push(event) }, { localTimers: false });
    const shared = new SharedThresholdState(connection.redis, 'threshold-away', engine, pending);
    try {
      await expect(shared.update('pump-1', 0, () => engine.read('pump-1', 99, 0), () => undefined)).rejects.toMatchObject({ code: 'shared_state_unavailable' });
      expect(engine.exportKey('pump-1')).toBeUndefined();
    } finally {
      await connection.close();
    }
  });
});

describe('threshold state shared through a Redis Cluster of three masters', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.dispose();
  });

  sharedCases(() => ({ topology: 'cluster', nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') }));
});
