/**
 * iot-buffer on its Redis Streams backend inside a Node-RED runtime, against Debian's
 * redis-server: the features that do not depend on the store work the same (the accepted output,
 * poison entries stored by an older version set aside with their content, crash-loop protection
 * by entry id, messages after a purge), and what leaves the queue leaves the stream.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import bufferNode from '../../nodes/buffer/buffer';
import { helper } from '../support/node-red';
import { startRedis, type ManagedServer } from '../support/services';
import { eventually } from '../support/wait';

let redis: ManagedServer;
let admin: Redis;
let userDir: string;
let stream: string;
let streams = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  admin?.disconnect();
  await redis?.dispose();
});
beforeEach(() => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-buffer-redis-node-'));
  helper.settings({ userDir });
  stream = `iot-buffer-node-${++streams}`;
});
afterEach(async () => {
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

type Seen = Record<'delivered' | 'accepted' | 'dead' | 'control' | 'refused', NodeMessage[]>;

/** A buffer on Redis with the accepted output; every delivery acknowledged at once. */
async function load(props: Record<string, unknown> = {}): Promise<Seen> {
  const flow: Array<{ id: string; type: string; [property: string]: unknown }> = [
    { id: 'tab', type: 'tab' },
    {
      id: 'buf',
      z: 'tab',
      type: 'iot-buffer',
      backend: 'redis',
      redisUrl: redis.url,
      stream,
      consumer: 'c1',
      acceptedOutput: true,
      maxInFlight: 'auto',
      wires: [['delivered'], ['accepted'], ['dead'], ['control'], ['refused']],
      ...props,
    },
    ...['delivered', 'accepted', 'dead', 'control', 'refused'].map((id) => ({ id, z: 'tab', type: 'helper' })),
  ];
  await helper.load(bufferNode, flow);
  const seen: Seen = { delivered: [], accepted: [], dead: [], control: [], refused: [] };
  for (const id of Object.keys(seen) as Array<keyof Seen>) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
  // Every delivery acknowledged, as a Complete node wired back into the buffer does.
  helper.getNode('delivered').on('input', (msg: NodeMessage) => buffer().receive({ _delivery: msg._delivery }));
  await eventually('connected to Redis', async () => ((await stats(seen)).connected === true ? true : undefined));
  return seen;
}

const buffer = () => helper.getNode('buf') as Node & { receive(msg: NodeMessage): void };

async function stats(seen: Seen): Promise<Record<string, unknown>> {
  const before = seen.control.length;
  buffer().receive({ control: 'status' });
  return eventually('a status reply', () => (seen.control.length > before ? (seen.control[seen.control.length - 1].payload as Record<string, unknown>) : undefined));
}

/** Entries as an older version stored them, read once by consumer c1 (pending at it, as after a death). */
async function pendingAtC1(bodies: string[]): Promise<string[]> {
  await admin.xgroup('CREATE', stream, 'iot-buffer', '0', 'MKSTREAM');
  const ids: string[] = [];
  for (const body of bodies) ids.push((await admin.xadd(stream, '*', 'm', body, 'k', 'k', 't', String(Date.now()))) as string);
  await admin.xreadgroup('GROUP', 'iot-buffer', 'c1', 'COUNT', bodies.length, 'STREAMS', stream, '>');
  return ids;
}

function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

describe('iot-buffer on Redis Streams', () => {
  it('passes each message on once Redis stored it, delivers it, and deletes it from the stream once acknowledged', async () => {
    const seen = await load();
    for (const payload of [1, 2, 3]) buffer().receive({ payload });
    await eventually('three accepted and delivered', () => (seen.accepted.length === 3 && seen.delivered.length === 3 ? true : undefined));
    expect(seen.accepted.map((m) => m.payload)).toEqual([1, 2, 3]);
    await eventually('an empty stream', async () => ((await admin.xlen(stream)) === 0 ? true : undefined));
  });

  it('refuses a message nested too deep before Redis sees it', async () => {
    const seen = await load();
    buffer().receive({ payload: nested(3_000) });
    await eventually('a refusal', () => (seen.refused.length === 1 ? true : undefined));
    expect(seen.refused[0].error).toMatchObject({ code: 'too_deep' });
    expect(await admin.xlen(stream)).toBe(0);
  });

  it('sets a stored entry it cannot route aside with its content, deletes it from the stream, and delivers the others', async () => {
    const deep = JSON.stringify({ payload: nested(3_000) });
    await pendingAtC1([JSON.stringify({ payload: 'before' }), deep, JSON.stringify({ payload: 'after' })]);
    const seen = await load();
    await eventually('a dead letter and two deliveries', () => (seen.dead.length === 1 && seen.delivered.length === 2 ? true : undefined));
    expect(seen.delivered.map((m) => m.payload)).toEqual(['before', 'after']);
    expect(seen.dead[0]).toMatchObject({ payload: deep, deadLetter: { reason: expect.stringMatching(/^too_deep: /) } });
    await eventually('an empty stream', async () => ((await admin.xlen(stream)) === 0 ? true : undefined));
  });

  it('counts deaths by entry id: an entry out at a death goes alone, one out at three is set aside and deleted', async () => {
    const [, poison, last] = await pendingAtC1(['{"payload":"first"}', '{"payload":"poison"}', '{"payload":"last"}']);
    mkdirSync(join(userDir, 'iot-buffer'), { recursive: true });
    const record = { suspects: { [poison]: { deaths: 2, error: 'Error: boom' }, [last]: { deaths: 1, error: 'Error: boom' } }, died: { at: 1, error: 'Error: boom', out: [poison] } };
    writeFileSync(join(userDir, 'iot-buffer', 'buf.crashes.json'), JSON.stringify(record));
    const seen = await load();
    await eventually('a dead letter and two deliveries', () => (seen.dead.length === 1 && seen.delivered.length === 2 ? true : undefined));
    expect(seen.dead[0]).toMatchObject({ payload: 'poison', deadLetter: { reason: expect.stringContaining('the process died 3 times in a row') } });
    expect(seen.delivered.map((m) => m.payload)).toEqual(['first', 'last']);
    await eventually('an empty stream', async () => ((await admin.xlen(stream)) === 0 ? true : undefined));
    // Every count cleared: the one set aside left the queue, the other went through alone.
    await eventually('no crash record left', () => (existsSync(join(userDir, 'iot-buffer', 'buf.crashes.json')) ? undefined : true));
  });

  it('delivers what arrives after a purge', async () => {
    const seen = await load();
    buffer().receive({ control: 'pause' });
    for (const payload of [1, 2]) buffer().receive({ payload });
    await eventually('two accepted', () => (seen.accepted.length === 2 ? true : undefined));
    buffer().receive({ control: 'purge' });
    await eventually('purged', async () => ((await admin.xlen(stream)) === 0 ? true : undefined));
    buffer().receive({ control: 'resume' });
    for (const payload of [3, 4]) buffer().receive({ payload });
    await eventually('the messages after the purge delivered', () => (seen.delivered.length === 2 ? true : undefined));
    expect(seen.delivered.map((m) => m.payload)).toEqual([3, 4]);
  });
});
