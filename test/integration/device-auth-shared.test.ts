/**
 * iot-device-auth's replay cache and rate limits shared through Redis (iot-redis), against
 * Debian's redis-server: two instances of the same node (two cores, each with its own registry
 * and its own connection, as two Node-RED processes have) refuse a replay the other accepted
 * (HMAC nonce, JWT id, webhook signature), share a device's token bucket, cost one Redis command
 * per message, and answer "send again" (503) while Redis is away. Then the same against a Redis
 * Cluster of three masters, the fleet's keys spread over all three.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceAuthCore, type AuthInput, type AuthOutcome } from '../../nodes/device-auth/auth-core';
import { settingsFromProperties } from '../../nodes/device-auth/node-config';
import { RedisSharedChecks } from '../../nodes/device-auth/shared-checks';
import type { SharedRedis } from '../../nodes/shared/redis-api';
import { parseRecord } from '../../nodes/device-registry/records';
import { DeviceRegistry } from '../../nodes/device-registry/registry';
import { RecordStore } from '../../nodes/device-registry/stores';
import { signWebhook } from '../../nodes/device-registry/webhook';
import { connect, redisSettings, type RedisProperties } from '../../nodes/redis/connection';
import { deviceJwt, hmacHeaders, hmacSigned, keyPairs, nowSeconds } from '../support/device-credentials';
import { freePort, startRedis, startRedisCluster, type ManagedServer, type RedisCluster } from '../support/services';
import { eventually } from '../support/wait';

const SECRET = 'a-shared-secret-of-32-characters';
const URL_PATH = '/devices/readings';
const DEVICES = 200;

const apiKeyOf = (id: string) => `key-${id}-0123456789abcdef`;

function registry(): DeviceRegistry {
  const r = new DeviceRegistry({ failures: 0, windowMs: 60_000, lockMs: 60_000 });
  const devices: Array<Record<string, unknown>> = [
    { id: 'pump-1', secret: SECRET, apiKey: apiKeyOf('pump-1') },
    { id: 'cam-1', publicKey: keyPairs().es256.pem },
    { id: 'acme-cloud', secret: SECRET, methods: 'webhook' },
    ...Array.from({ length: DEVICES }, (_, i) => ({ id: `meter-${i}`, apiKey: apiKeyOf(`meter-${i}`) })),
  ];
  r.use(new RecordStore(devices.map((d, i) => parseRecord(d, { where: `device ${i}`, secretsAllowed: true }))));
  return r;
}

type Instance = { core: DeviceAuthCore; redis: SharedRedis; close(): Promise<void> };
const opened: Instance[] = [];
let nodes = 0;

/**
 * Two instances of one node (the same node id, as two Node-RED processes running the same flows
 * have), each with its own connection to Redis. Each test has a node of its own.
 */
function instances(redis: RedisProperties, properties: Record<string, unknown> = {}): [Instance, Instance] {
  const nodeId = `auth-${++nodes}`;
  const one = (): Instance => {
    const connection = connect(redisSettings(redis), {});
    const settings = settingsFromProperties({ accepted: ['apikey', 'hmac', 'jwt', 'webhook'], requireJti: true, ...properties });
    const made = { core: new DeviceAuthCore(settings, registry(), () => undefined, new RedisSharedChecks(connection.redis, nodeId, settings.rate)), redis: connection.redis, close: connection.close };
    opened.push(made);
    return made;
  };
  return [one(), one()];
}

const ready = (at: Instance) => eventually('connected to Redis', () => (at.redis.state === 'ready' ? true : undefined));

async function authenticate(at: Instance, input: AuthInput): Promise<AuthOutcome> {
  return at.core.authenticate(input, Date.now());
}

/** What a sender sees: the status, the code and Retry-After. */
const seen = (o: AuthOutcome) => (o.ok ? { status: 200 } : { status: o.status, code: o.code, ...(o.retryAfterSeconds ? { retryAfter: o.retryAfterSeconds } : {}) });

function hmacRequest(body: string): AuthInput {
  const signed = hmacSigned(Buffer.from(SECRET), 'pump-1', `POST ${URL_PATH}`, body);
  const headers = hmacHeaders(signed);
  return { body: Buffer.from(body), http: { method: 'POST', url: URL_PATH, contentType: 'application/json' }, fields: { deviceId: headers['x-device-id'], timestamp: headers['x-timestamp'], nonce: headers['x-nonce'], signature: headers['x-signature'] } };
}

async function jwtRequest(body: string): Promise<AuthInput> {
  const token = await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1' });
  return { body: Buffer.from(body), http: { method: 'POST', url: URL_PATH, contentType: 'application/json' }, fields: { token: `Bearer ${token}` } };
}

function webhookRequest(body: string): AuthInput {
  const timestamp = String(nowSeconds());
  const signature = signWebhook(Buffer.from(SECRET), body);
  return { body: Buffer.from(body), http: { method: 'POST', url: URL_PATH, contentType: 'application/json' }, fields: { deviceId: 'acme-cloud', signature, timestamp } };
}

const apiKeyRequest = (id: string): AuthInput => ({ body: Buffer.from('{"t":21}'), http: { method: 'POST', url: URL_PATH, contentType: 'application/json' }, fields: { deviceId: id, apiKey: apiKeyOf(id) } });

/** Calls of each command Redis ran, those run inside scripts included (`INFO commandstats`). */
async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const stats = (await admin.info('commandstats')) as string;
  return Object.fromEntries([...stats.matchAll(/cmdstat_(\S+?):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

/** What clients sent between two readings, apart from the INFO that read them and what ran inside the scripts. */
function sentBetween(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const inside = new Set(['set', 'hmget', 'hset', 'pexpire', 'info']);
  return Object.fromEntries(Object.entries(after).filter(([name, calls]) => !inside.has(name) && calls !== (before[name] ?? 0)).map(([name, calls]) => [name, calls - (before[name] ?? 0)]));
}

afterAll(async () => {
  await Promise.all(opened.map((i) => i.close()));
});

describe('on one Redis', () => {
  let redis: ManagedServer;
  let admin: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await redis?.dispose();
  });

  const replays: Array<[string, (body: string) => AuthInput | Promise<AuthInput>, string]> = [
    ['an HMAC nonce', hmacRequest, 'auto'],
    ['a JWT id (jti)', jwtRequest, 'auto'],
    ['a webhook signature', webhookRequest, 'webhook'],
  ];
  it.each(replays)('refuses on one instance %s the other accepted, and on the first too', async (_, request, method) => {
    const [a, b] = instances({ url: redis.url }, { method });
    const sent = await request('{"temperature":21}');
    expect(seen(await authenticate(a, sent))).toEqual({ status: 200 });
    expect(seen(await authenticate(b, { ...sent, body: Buffer.from('{"temperature":21}') }))).toEqual({ status: 401, code: 'replayed' });
    expect(seen(await authenticate(a, { ...sent, body: Buffer.from('{"temperature":21}') }))).toEqual({ status: 401, code: 'replayed' });
    // A fresh credential of the same device still goes through either instance.
    expect(seen(await authenticate(b, await request('{"temperature":22}')))).toEqual({ status: 200 });
  });

  it("keeps one token bucket per device whichever instance it reaches", async () => {
    const [a, b] = instances({ url: redis.url }, { rate: '1', burst: '3' });
    const outcomes = [];
    for (const at of [a, b, a, b]) outcomes.push(seen(await authenticate(at, apiKeyRequest('pump-1'))));
    expect(outcomes).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }, { status: 429, code: 'rate_limited', retryAfter: 1 }]);
    // Another device has its own bucket.
    expect(seen(await authenticate(b, apiKeyRequest('meter-1')))).toEqual({ status: 200 });
    // Refilled at the rate, on both.
    await eventually('a token again', async () => ((await authenticate(a, apiKeyRequest('pump-1'))).ok ? true : undefined), 5_000, 250);
  });

  it('costs one Redis round trip (one script) per message, and none without a replay key or a rate', async () => {
    const [a] = instances({ url: redis.url }, { rate: '100', burst: '100' });
    // The script is loaded once per connection (ioredis sends it itself after NOSCRIPT).
    expect(seen(await authenticate(a, hmacRequest('{"warm":1}')))).toEqual({ status: 200 });
    let before = await commandCalls(admin);
    const outcomes = await Promise.all(Array.from({ length: 100 }, (_, i) => authenticate(a, i % 2 === 0 ? hmacRequest(`{"n":${i}}`) : apiKeyRequest(`meter-${i}`))));
    expect(outcomes.map(seen).filter((o) => o.status !== 200)).toEqual([]);
    expect(sentBetween(before, await commandCalls(admin))).toEqual({ evalsha: 100 });

    const [plain] = instances({ url: redis.url });
    await ready(plain);
    before = await commandCalls(admin);
    expect(seen(await authenticate(plain, apiKeyRequest('pump-1')))).toEqual({ status: 200 });
    expect(sentBetween(before, await commandCalls(admin))).toEqual({});
  });

  it('answers "send again" (503, Retry-After) while Redis does not answer, and never lets a signed message through unchecked', async () => {
    const [away] = instances({ url: `redis://127.0.0.1:${await freePort()}`, timeout: '0.5' }, { rate: '10' });
    const started = Date.now();
    expect(seen(await authenticate(away, hmacRequest('{"t":1}')))).toEqual({ status: 503, code: 'shared_state_unavailable', retryAfter: 5 });
    expect(seen(await authenticate(away, apiKeyRequest('pump-1')))).toEqual({ status: 503, code: 'shared_state_unavailable', retryAfter: 5 });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('on a Redis Cluster of three masters', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.dispose();
  });

  it('refuses replays across instances and spreads the devices over every master', async () => {
    const seeds = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(', ');
    const [a, b] = instances({ topology: 'cluster', nodes: seeds }, { rate: '5', burst: '5' });
    const first = await Promise.all(Array.from({ length: DEVICES }, (_, i) => authenticate(i % 2 === 0 ? a : b, apiKeyRequest(`meter-${i}`))));
    expect(first.map(seen).filter((o) => o.status !== 200)).toEqual([]);
    const signed = hmacRequest('{"t":1}');
    expect(seen(await authenticate(a, signed))).toEqual({ status: 200 });
    expect(seen(await authenticate(b, { ...signed, body: Buffer.from('{"t":1}') }))).toEqual({ status: 401, code: 'replayed' });
    // Each master holds some of the fleet's buckets.
    const perMaster = await Promise.all(
      cluster.nodes.map(async (n) => {
        const client = new Redis(n.port, n.host);
        try {
          return await client.dbsize();
        } finally {
          client.disconnect();
        }
      }),
    );
    expect(perMaster.filter((keys) => keys < DEVICES / 10)).toEqual([]);
  });
});
