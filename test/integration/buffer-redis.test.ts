/**
 * The Redis Streams backend (nodes/buffer/redis-store.ts) against Debian's redis-server: the
 * stream holds exactly what is queued, the MAXLEN cap refuses or drops the oldest, a consumer
 * that dies has its pending entries taken over by another (XAUTOCLAIM), a consumer restarted
 * under its name gets its own pending entries back, Redis going away is a coded refusal.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore, type RedisMessage, type RedisStoreOptions } from '../../nodes/buffer/redis-store';
import type { StoreError } from '../../nodes/buffer/store';
import { startRedis, type ManagedServer } from '../support/services';
import { eventually } from '../support/wait';

let redis: ManagedServer;
let admin: Redis;
const stores: RedisStore[] = [];
let streamCount = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  for (const store of stores) await store.close();
  admin?.disconnect();
  await redis?.dispose();
});

async function openStore(options: Partial<RedisStoreOptions> & { stream: string }): Promise<{ store: RedisStore; problems: StoreError[] }> {
  const store = new RedisStore({ url: redis.url, group: 'g', consumer: 'c1', maxLength: 0, whenFull: 'refuse', claimIdleMs: 60_000, prefetch: 100, blockMs: 100, ...options });
  stores.push(store);
  const problems: StoreError[] = [];
  store.onProblem = (err) => problems.push(err);
  await store.open();
  await eventually('the store connected', () => (store.isConnected ? true : undefined));
  return { store, problems };
}

const freshStream = () => `iot-buffer-test-${++streamCount}`;

function append(store: RedisStore, text: string, key = 'k'): Promise<StoreError | null> {
  return new Promise((resolve) => store.append(key, Buffer.from(text), Date.now(), resolve));
}

function takeAll(store: RedisStore, count: number): Promise<RedisMessage[]> {
  const got: RedisMessage[] = [];
  return eventually(`${count} message(s) from the stream`, () => {
    got.push(...store.take(count - got.length));
    return got.length >= count ? got : undefined;
  });
}

const settle = (store: RedisStore, messages: RedisMessage[]) => new Promise<void>((resolve) => store.settle(messages, () => resolve()));
const texts = (messages: RedisMessage[]) => messages.map((m) => m.body.toString());

describe('the Redis Streams store', () => {
  it('adds, delivers in order and deletes what is acknowledged', async () => {
    const stream = freshStream();
    const { store } = await openStore({ stream });
    for (const t of ['a', 'b', 'c']) expect(await append(store, t, `key-${t}`)).toBeNull();
    expect(await admin.xlen(stream)).toBe(3);
    const got = await takeAll(store, 3);
    expect(texts(got)).toEqual(['a', 'b', 'c']);
    expect(got.map((m) => m.key)).toEqual(['key-a', 'key-b', 'key-c']);
    expect(got[0].attempts).toBe(0);
    await settle(store, got.slice(0, 2));
    expect(await admin.xlen(stream)).toBe(1);
    const pending = (await admin.xpending(stream, 'g')) as [number, ...unknown[]];
    expect(pending[0]).toBe(1);
  });

  it('refuses past the MAXLEN cap, or trims the oldest and counts what it dropped', async () => {
    const refusing = await openStore({ stream: freshStream(), maxLength: 2 });
    expect(await append(refusing.store, 'a')).toBeNull();
    expect(await append(refusing.store, 'b')).toBeNull();
    expect(await append(refusing.store, 'c')).toMatchObject({ code: 'queue_full', message: expect.stringContaining('2 of 2 entries') });

    // A producer that reads nothing (prefetch 0) writes past the cap; a consumer reads what is left.
    const stream = freshStream();
    const writer = await openStore({ stream, maxLength: 2, whenFull: 'drop-oldest', consumer: 'writer', prefetch: 0 });
    for (const t of ['a', 'b', 'c', 'd']) expect(await append(writer.store, t)).toBeNull();
    expect(writer.store.dropped).toBe(2);
    expect(await admin.xlen(stream)).toBe(2);
    const reader = await openStore({ stream, maxLength: 2, whenFull: 'drop-oldest', consumer: 'reader' });
    expect(texts(await takeAll(reader.store, 2))).toEqual(['c', 'd']);
  });

  it('takes over the pending entries of a consumer that died, with their delivery counts', async () => {
    const stream = freshStream();
    const first = await openStore({ stream, consumer: 'dies', claimIdleMs: 500 });
    for (let i = 0; i < 10; i++) await append(first.store, `m${i}`);
    const taken = await takeAll(first.store, 4);
    expect(texts(taken)).toEqual(['m0', 'm1', 'm2', 'm3']);
    // Dies: no acknowledgement, no goodbye.
    (first.store as unknown as { client: Redis; reader: Redis }).client.disconnect();
    (first.store as unknown as { client: Redis; reader: Redis }).reader.disconnect();
    const second = await openStore({ stream, consumer: 'lives', claimIdleMs: 500 });
    const got = await eventually('all ten entries at the second consumer', async () => {
      const all = [...second.store.take(100)];
      return all.length > 0 ? all : undefined;
    }, 10_000);
    const more = await eventually('the rest', () => {
      got.push(...second.store.take(100));
      return got.length >= 10 ? got : undefined;
    }, 10_000);
    expect(texts(more).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
    const claimed = more.filter((m) => ['m0', 'm1', 'm2', 'm3'].includes(m.body.toString()));
    expect(claimed.every((m) => m.attempts === 1)).toBe(true);
    await settle(second.store, more);
    expect(await admin.xlen(stream)).toBe(0);
  });

  it('gives a consumer restarted under its name its own pending entries back first', async () => {
    // Entries read ahead count as delivered once: Redis cannot tell them from delivered ones.
    const stream = freshStream();
    const before = await openStore({ stream, consumer: 'same' });
    for (const t of ['a', 'b', 'c']) await append(before.store, t);
    await takeAll(before.store, 2);
    await before.store.close();
    const after = await openStore({ stream, consumer: 'same' });
    const got = await takeAll(after.store, 3);
    expect(texts(got)).toEqual(['a', 'b', 'c']);
    expect(got.map((m) => m.attempts)).toEqual([1, 1, 1]);
  });

  it('keeps its own long deliveries from being taken over while it is alive', async () => {
    const stream = freshStream();
    const slow = await openStore({ stream, consumer: 'slow', claimIdleMs: 600 });
    await append(slow.store, 'long job');
    await takeAll(slow.store, 1);
    const other = await openStore({ stream, consumer: 'other', claimIdleMs: 600 });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(other.store.take(10)).toEqual([]);
  });

  it('refuses with a coded error while Redis is down, and works again when it is back', async () => {
    const stream = freshStream();
    const { store, problems } = await openStore({ stream });
    await redis.stop();
    await eventually('the store noticed', () => (store.isConnected ? undefined : true));
    expect(await append(store, 'lost?')).toMatchObject({ code: 'backend_unavailable' });
    expect(problems.map((p) => p.code)).toContain('backend_unavailable');
    await redis.start();
    await eventually('reconnected', () => (store.isConnected ? true : undefined), 15_000);
    expect(await append(store, 'after')).toBeNull();
    expect(texts(await takeAll(store, 1))).toEqual(['after']);
  });

  it('purges the stream and what is pending', async () => {
    const stream = freshStream();
    const { store } = await openStore({ stream });
    for (const t of ['a', 'b', 'c']) await append(store, t);
    await takeAll(store, 1);
    const removed = await new Promise<number>((resolve) => store.purge((_err, n) => resolve(n)));
    expect(removed).toBe(3);
    expect(await admin.xlen(stream)).toBe(0);
    expect(((await admin.xpending(stream, 'g')) as [number])[0]).toBe(0);
  });
});
