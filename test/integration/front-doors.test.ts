/**
 * The front doors' receipts against a real iot-buffer, with the clients senders really use:
 * mqtt.js devices through iot-mqtt-broker (acknowledging once stored) and fetch through an
 * `http in` node and iot-device-auth (answering once stored), both into one buffer.
 *
 * - a PUBACK and a 202 come only once the buffer's fsync returned: the test holds every
 *   fdatasync of the process (the buffer's local store is the only one that syncs) and sees no
 *   receipt until it lets them go;
 * - a buffer that refuses (its queue full; its disk a 1 MB tmpfs kept full) gets the device no
 *   PUBACK: it is disconnected, reconnects, sends again, and is acknowledged once there is room;
 *   the HTTP sender gets 503 with Retry-After, and 202 once there is room;
 * - a reading nested 3,000 levels deep is refused with too_deep by both doors, and nothing is
 *   stored;
 * - the reading's own time, set at the edge, comes out of the queue unchanged.
 */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import bufferNode from '../../nodes/buffer/buffer';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import mqttBrokerNode from '../../nodes/mqtt-broker/mqtt-broker';
import type { FlowNode } from '../support/buffer-flow';
import { captureHttpNodes, coreNodes, helper, serveHttpNodes } from '../support/node-red';
import { freePort } from '../support/services';
import { mountTmpfs, type Mounted } from '../support/small-disk';
import { eventually, sleep } from '../support/wait';

/** Every fdatasync of this process, held while `syncs.held` is set and let go by `release()`. */
const syncs = vi.hoisted(() => {
  const state = { held: false, waiting: [] as Array<() => void>, count: 0 };
  return {
    state,
    release(): void {
      state.held = false;
      for (const run of state.waiting.splice(0)) run();
    },
  };
});
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fdatasync = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
    const run = () => {
      syncs.state.count++;
      fs.fdatasync(fd, callback);
    };
    if (syncs.state.held) syncs.state.waiting.push(run);
    else run();
  };
  return { ...fs, default: { ...fs, fdatasync }, fdatasync };
});

const KEY = 'key-for-pump-1-0123456789abcdef';
const DEEP = `{"temperature":${'['.repeat(3000)}1${']'.repeat(3000)}}`;
const GATEWAY_KEY = 'key-for-gw-1-0123456789abcdefgh';
const devices = [
  { id: 'pump-1', enabled: true },
  { id: 'gw-1', enabled: true },
  { id: 's-1', enabled: true, gateway: 'gw-1' },
  { id: 's-2', enabled: true, gateway: 'gw-1' },
  { id: 's-9', enabled: true },
];
const credentials = { registry: { secrets: JSON.stringify({ 'pump-1': { apiKey: KEY }, 'gw-1': { apiKey: GATEWAY_KEY } }) } };

let userDir: string;
let port: number;
let http: { url: string; close(): Promise<void> } | undefined;
const clients: MqttClient[] = [];
const mounts: Mounted[] = [];

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  for (const mount of mounts) mount.dispose();
});
beforeEach(async () => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-front-doors-'));
  helper.settings({ userDir });
  port = await freePort();
});
afterEach(async () => {
  syncs.release();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await http?.close();
  http = undefined;
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

interface Seen {
  delivered: NodeMessage[];
  events: NodeMessage[];
  refusedPublishes: NodeMessage[];
  rejected: NodeMessage[];
  refusedByBuffer: NodeMessage[];
  control: NodeMessage[];
}

/** broker (once stored) -> device-auth (broker identity) -> buffer <- device-auth (HTTP, once stored) <- http in. */
async function load(buffer: Record<string, unknown> = {}, mqttAuth: Record<string, unknown> = {}): Promise<Seen> {
  const z = 'doors';
  const flow: FlowNode[] = [
    { id: z, type: 'tab' },
    { id: 'registry', type: 'iot-device-registry', z, source: 'list', devices },
    { id: 'broker', type: 'iot-mqtt-broker', z, registry: 'registry', host: '127.0.0.1', port, acknowledge: 'stored', wires: [['mqttAuth'], ['events'], ['refusedPublishes']] },
    { id: 'mqttAuth', type: 'iot-device-auth', z, registry: 'registry', method: 'broker', wires: [['queue'], ['rejected']], ...mqttAuth },
    { id: 'in', type: 'http in', z, url: '/readings', method: 'post', upload: false, skipBodyParsing: true, wires: [['httpAuth']] },
    { id: 'httpAuth', type: 'iot-device-auth', z, registry: 'registry', method: 'apikey', answer: 'stored', wires: [['queue'], ['rejected']] },
    { id: 'queue', type: 'iot-buffer', z, wires: [['delivered'], [], ['control'], ['refusedByBuffer']], ...buffer },
    ...['events', 'refusedPublishes', 'rejected', 'delivered', 'control', 'refusedByBuffer'].map((id) => ({ id, type: 'helper', z })),
  ];
  await helper.load([registryNode, mqttBrokerNode, deviceAuthNode, bufferNode, coreNodes.httpIn, captureHttpNodes], flow, credentials);
  const seen: Seen = { delivered: [], events: [], refusedPublishes: [], rejected: [], refusedByBuffer: [], control: [] };
  for (const id of Object.keys(seen) as Array<keyof Seen>) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
  http = await serveHttpNodes();
  await eventually('the buffer open', async () => ((await depth(seen)) === 0 ? true : undefined));
  await eventually('the broker listening', () => connect({ clientId: 'pump-1:probe' }).then((c) => c.endAsync().then(() => true), () => undefined));
  return seen;
}

async function depth(seen: Seen): Promise<number | undefined> {
  const before = seen.control.length;
  (helper.getNode('queue') as Node & { receive(msg: NodeMessage): void }).receive({ control: 'status' } as NodeMessage);
  await eventually('the buffer status', () => (seen.control.length > before ? true : undefined));
  return (seen.control[seen.control.length - 1].payload as { depth?: number }).depth;
}

async function connect(options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'pump-1', username: 'pump-1', password: KEY, reconnectPeriod: 200, connectTimeout: 5_000, ...options });
  clients.push(client);
  return client;
}

const post = (body: string) => fetch(`${http?.url}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body, signal: AbortSignal.timeout(20_000) });

/** How a receipt stands after a short while: an absence cannot be waited for by a condition. */
async function after<T>(pending: Promise<T>, ms = 500): Promise<T | 'waiting'> {
  return Promise.race([pending, sleep(ms).then(() => 'waiting' as const)]);
}

describe('front doors acknowledging once stored, into a real iot-buffer', () => {
  it('PUBACK and 202 only once the buffer’s fsync returned', async () => {
    const seen = await load();
    const device = await connect();
    syncs.state.held = true;
    const syncedBefore = syncs.state.count;
    const puback = device.publishAsync('devices/pump-1/telemetry', JSON.stringify({ temperature: 21, timestamp: 1_700_000_000_000 }), { qos: 1 }).then(() => 'acknowledged');
    const answer = post(JSON.stringify({ temperature: 22, timestamp: '2023-11-14T22:13:21Z' })).then((res) => res.status);
    await eventually('both writes waiting for their fsync', () => (syncs.state.waiting.length > 0 ? true : undefined));
    expect(await after(puback)).toBe('waiting');
    expect(await after(answer)).toBe('waiting');
    expect(seen.delivered).toEqual([]);
    syncs.release();
    expect(await puback).toBe('acknowledged');
    expect(await answer).toBe(202);
    expect(syncs.state.count).toBeGreaterThan(syncedBefore);
    // Stored with the readings' own times, which come out of the queue unchanged.
    await eventually('both delivered', () => (seen.delivered.length >= 2 ? true : undefined));
    expect(seen.delivered.map((m) => [m.payload, m.timestamp]).sort((a, b) => Number(a[1]) - Number(b[1]))).toEqual([
      [{ temperature: 21, timestamp: 1_700_000_000_000 }, 1_700_000_000_000],
      [{ temperature: 22, timestamp: '2023-11-14T22:13:21Z' }, 1_700_000_001_000],
    ]);
  });

  it('a buffer that refuses (queue full): no PUBACK, the device is disconnected and sends again, acknowledged once there is room; HTTP 503 with Retry-After, then 202', async () => {
    const seen = await load({ maxMessages: '1', whenFull: 'refuse' });
    const device = await connect();
    await device.publishAsync('devices/pump-1/telemetry', '{"temperature":20}', { qos: 1 });
    await eventually('the first delivered', () => (seen.delivered.length > 0 ? true : undefined));
    let reconnects = 0;
    device.on('reconnect', () => reconnects++);
    const puback = device.publishAsync('devices/pump-1/telemetry', '{"temperature":21}', { qos: 1 }).then(() => 'acknowledged');
    await eventually('the device told to send again', () => (seen.events.some((e) => e.topic === 'not_taken') ? true : undefined));
    await eventually('a reconnect and the publish sent again', () => (reconnects > 0 && seen.refusedByBuffer.length >= 2 ? true : undefined));
    expect(await after(puback)).toBe('waiting');
    expect((seen.events.find((e) => e.topic === 'not_taken')?.payload as { reason: string }).reason).toMatch(/^queue_full/);
    const refused = await post('{"temperature":22}');
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await depth(seen)).toBe(1);

    // The first is acknowledged downstream and leaves the queue: room for one more.
    (helper.getNode('queue') as Node & { receive(msg: NodeMessage): void }).receive({ _delivery: seen.delivered[0]._delivery } as NodeMessage);
    expect(await puback).toBe('acknowledged');
    await eventually('the second delivered', () => (seen.delivered.length >= 2 ? true : undefined));
    expect(seen.delivered[1].payload).toEqual({ temperature: 21 });
    (helper.getNode('queue') as Node & { receive(msg: NodeMessage): void }).receive({ _delivery: seen.delivered[1]._delivery } as NodeMessage);
    await eventually('an empty queue', async () => ((await depth(seen)) === 0 ? true : undefined));
    expect((await post('{"temperature":22}')).status).toBe(202);
  });

  it('a buffer whose disk is full: no PUBACK while it refuses, the device sends again until there is room; HTTP 503 with Retry-After, then 202', async () => {
    const disk = mountTmpfs(1024 * 1024);
    mounts.push(disk);
    const seen = await load({ dataDir: join(disk.path, 'queue') });
    const device = await connect();
    const reading = JSON.stringify({ temperature: 23, fill: 'x'.repeat(20_000) });
    await device.publishAsync('devices/pump-1/telemetry', reading, { qos: 1 });
    // The disk kept full: whatever a failed write gives back is taken again at once.
    const filler = join(disk.path, 'filler');
    const fill = () => {
      try {
        for (;;) appendFileSync(filler, Buffer.alloc(16 * 1024));
      } catch {
        // ENOSPC: full.
      }
    };
    fill();
    const topUp = setInterval(fill, 2);
    try {
      const puback = device.publishAsync('devices/pump-1/telemetry', reading, { qos: 1 }).then(() => 'acknowledged');
      await eventually('the device told to send again', () => (seen.events.some((e) => e.topic === 'not_taken') ? true : undefined));
      expect((seen.events.find((e) => e.topic === 'not_taken')?.payload as { reason: string }).reason).toMatch(/^disk_full/);
      await eventually('sent again and refused again', () => (seen.refusedByBuffer.length >= 2 ? true : undefined));
      expect(await after(puback)).toBe('waiting');
      const refused = await post(reading);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

      clearInterval(topUp);
      rmSync(filler, { force: true });
      expect(await puback).toBe('acknowledged');
      expect((await post(reading)).status).toBe(202);
      expect(await depth(seen)).toBe(3);
      expect(seen.refusedByBuffer.every((m) => (m.error as { code: string }).code === 'disk_full')).toBe(true);
    } finally {
      clearInterval(topUp);
    }
  });

  it('a gateway’s batch over MQTT: its PUBACK once every sensor’s reading is stored; a part not taken, and the whole batch comes again', async () => {
    const seen = await load({ maxMessages: '2', whenFull: 'refuse' }, { gateway: true });
    const gateway = await connect({ clientId: 'gw-1', username: 'gw-1', password: GATEWAY_KEY });
    const batch = (n: number) => JSON.stringify({ readings: [{ sensor: 's-1', temperature: n, timestamp: 1_700_000_000_000 + n }, { sensor: 's-9', temperature: 99 }, { sensor: 's-2', temperature: n + 1 }] });
    syncs.state.held = true;
    const first = gateway.publishAsync('devices/gw-1/batch', batch(1), { qos: 1 }).then(() => 'acknowledged');
    await eventually('both parts waiting for their fsync', () => (syncs.state.waiting.length > 0 ? true : undefined));
    expect(await after(first)).toBe('waiting');
    syncs.release();
    expect(await first).toBe('acknowledged');
    await eventually('both parts delivered', () => (seen.delivered.length >= 2 ? true : undefined));
    expect(seen.delivered.map((m) => [(m.device as { id: string }).id, m.timestamp])).toEqual([
      ['s-1', 1_700_000_000_001],
      ['s-2', expect.any(Number)],
    ]);
    expect(seen.rejected.map((m) => [(m.error as { code: string }).code, m._delivery])).toEqual([['not_under_gateway', undefined]]);

    // The queue holds two: the next batch's first part is refused, so the whole batch is not taken.
    let reconnects = 0;
    gateway.on('reconnect', () => reconnects++);
    const second = gateway.publishAsync('devices/gw-1/batch', batch(2), { qos: 1 }).then(() => 'acknowledged');
    await eventually('the gateway told to send again', () => (seen.events.some((e) => e.topic === 'not_taken') && reconnects > 0 ? true : undefined));
    expect(await after(second)).toBe('waiting');
    for (const msg of seen.delivered.splice(0)) (helper.getNode('queue') as Node & { receive(msg: NodeMessage): void }).receive({ _delivery: msg._delivery } as NodeMessage);
    expect(await second).toBe('acknowledged');
  });

  it('a reading nested 3,000 levels deep is refused with too_deep by both doors, and nothing is stored', async () => {
    const seen = await load();
    const device = await connect();
    await device.publishAsync('devices/pump-1/telemetry', DEEP, { qos: 1 });
    const answer = await post(DEEP);
    expect(answer.status).toBe(400);
    await eventually('both refusals', () => (seen.refusedPublishes.length > 0 && seen.rejected.length > 0 ? true : undefined));
    expect(seen.refusedPublishes.map((m) => (m.error as { code: string }).code)).toEqual(['too_deep']);
    expect(seen.rejected.map((m) => (m.error as { code: string }).code)).toEqual(['too_deep']);
    expect(await depth(seen)).toBe(0);
    expect(seen.delivered).toEqual([]);
  });
});
