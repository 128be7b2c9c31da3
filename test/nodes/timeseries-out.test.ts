/**
 * iot-timeseries-out with its iot-influxdb connection inside a Node-RED runtime
 * (node-red-node-test-helper), writing to a scripted fake server: the v3 API (no real InfluxDB 3
 * runs here), done only once written, the delivery protocol with a stand-in buffer, bad input,
 * partial writes, 401, Retry-After, the pending bound, status, no log flood, and secrets kept out
 * of messages and logs.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import influxdbNode from '../../nodes/influxdb/influxdb';
import type { DeliverySource, Outcome } from '../../nodes/shared/delivery';
import timeseriesNode from '../../nodes/timeseries-out/timeseries-out';
import { FakeInflux, type FakeHandler } from '../support/fake-influx';
import { withMessages } from '../support/messages';
import { nested, watchProcessFailures } from '../support/process-failures';
import { helper } from '../support/node-red';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Status = { fill: string; shape: string; text: string };
type TestNode = Node & { receive(msg: NodeMessage): void; status: { lastCall: { args: [Status] } | null; getCalls(): Array<{ args: [Status] }> } };

const TOKEN = 'apiv3_s3cr3t-token-value';
/** A reading's time: messages from a buffer carry the time they were accepted (msg.timestamp). */
const T0 = 1_795_300_000_000;
const settled: Array<[string, Outcome]> = [];
/** Capacities the writer announced to the stand-in buffer: sink id and messages. */
const announced: Array<[string, number]> = [];

/** Stands in for iot-buffer: it only records settlements and announced capacities (nodes/shared/delivery.ts). */
function stubBuffer(RED: NodeAPI): void {
  RED.nodes.registerType('test-buffer', function (this: Node & DeliverySource, config: { id: string }) {
    RED.nodes.createNode(this, config as never);
    this.settleDelivery = (id, outcome) => settled.push([id, outcome]);
    this.announceCapacity = (sink, messages) => announced.push([sink, messages]);
  });
}

let fake: FakeInflux;
const nodes = [withMessages(influxdbNode, 'influxdb'), withMessages(timeseriesNode, 'timeseries-out')];

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});
afterEach(async () => {
  await helper.unload();
  await fake?.close();
  settled.length = 0;
  announced.length = 0;
});

const settle = (ms = 50) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await settle(20);
  }
}

/** The writer on a v3 connection to the fake server, wired to helper nodes, with a Complete node. */
async function load(props: Record<string, unknown> = {}, store: Record<string, unknown> = {}, handler?: FakeHandler): Promise<Record<string, NodeMessage[]>> {
  fake = await FakeInflux.start(handler);
  const flow: Flow = [
    { id: 'tab', type: 'tab', label: 'writer' },
    { id: 'db', type: 'iot-influxdb', url: fake.url, version: 'v3', database: 'iot', precision: 'ms', gzip: true, timeout: '2', ...store },
    { id: 'ts', type: 'iot-timeseries-out', z: 'tab', store: 'db', measurement: 'sensor', measurementType: 'str', flushInterval: '50', wires: [['written'], ['errors']], ...props },
    { id: 'done', type: 'complete', z: 'tab', scope: ['ts'], uncaught: false, wires: [['completed']] },
    { id: 'written', type: 'helper', z: 'tab' },
    { id: 'errors', type: 'helper', z: 'tab' },
    { id: 'completed', type: 'helper', z: 'tab' },
    { id: 'buf', type: 'test-buffer', z: 'tab' },
  ];
  await helper.load([...nodes, stubBuffer], flow, { db: { token: TOKEN } });
  const seen: Record<string, NodeMessage[]> = { written: [], errors: [], completed: [] };
  for (const id of Object.keys(seen)) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
  return seen;
}

const writer = () => helper.getNode('ts') as TestNode;
const send = (...msgs: NodeMessage[]) => msgs.forEach((msg) => writer().receive(msg));
const codeOf = (msg: NodeMessage) => (msg.error as { code: string }).code;
const lastStatus = () => writer().status.lastCall?.args[0];
const logged = () => (helper.log() as unknown as { args: Array<[{ level: number; msg: unknown }]> }).args.map(([entry]) => ({ level: entry.level, msg: String(entry.msg) }));

describe('iot-timeseries-out on the v3 API', () => {
  it('writes line protocol to /api/v3/write_lp with a bearer token, and finishes each message once written', async () => {
    const out = await load({ integerFields: 'rssi' });
    send(
      { payload: { temperature: 21, rssi: -70 }, device: { id: 'pump-1', method: 'hmac', gateway: 'gw-1' }, timestamp: 1_795_300_000_000, _delivery: { source: 'buf', id: 'd1' } },
      { payload: { temperature: 21.5 }, topic: 'pump-2', timestamp: '2026-11-21T22:26:40.001Z' },
    );
    await until('both messages written', () => out.completed.length === 2);
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request.path).toBe('/api/v3/write_lp');
    expect(request.query.get('db')).toBe('iot');
    expect(request.query.get('precision')).toBe('millisecond');
    expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request.lines).toEqual(['sensor,device=pump-1,gateway=gw-1 rssi=-70i,temperature=21 1795300000000', 'sensor temperature=21.5 1795300000001']);
    expect(out.written.map((m) => m.topic ?? (m.device as { id: string }).id)).toEqual(['pump-1', 'pump-2']);
    expect(out.errors).toEqual([]);
    expect(settled).toEqual([['d1', { ok: true }]]);
  });

  it('maps with typed inputs: measurement, readings through JSONata, tags from properties and env, time from a property', async () => {
    process.env.IOT_TEST_SITE = 'plant-7';
    const out = await load({
      measurement: 'kind',
      measurementType: 'msg',
      readings: '{ "total": payload.a + payload.b }',
      readingsType: 'jsonata',
      topicTag: true,
      deviceTag: false,
      tags: [
        { name: 'site', value: 'IOT_TEST_SITE', type: 'env' },
        { name: 'room', value: 'meta.room', type: 'msg' },
        { name: 'fixed', value: 'yes', type: 'str' },
      ],
      time: 'measuredAt',
      timeType: 'msg',
      timeUnit: 's',
    });
    send({ kind: 'flow', payload: { a: 1, b: 2.5 }, topic: 'pipe-1', device: { id: 'ignored' }, meta: { room: 'B 12' }, measuredAt: 1_795_300_000 });
    await until('written', () => out.completed.length === 1);
    expect(fake.lines).toEqual(['flow,fixed=yes,room=B\\ 12,site=plant-7,topic=pipe-1 total=3.5 1795300000000']);
    delete process.env.IOT_TEST_SITE;
  });

  it('writes ready points from msg.points as they are', async () => {
    const out = await load();
    send({ points: ['raw,a=b v=1i 1795300000000', { measurement: 'other', fields: { v: 2 }, timestamp: 1_795_300_000_001 }], payload: 'ignored' });
    await until('written', () => out.completed.length === 1);
    expect(fake.lines).toEqual(['raw,a=b v=1i 1795300000000', 'other v=2 1795300000001']);
  });

  it('is done only when the batch holding its points is written', async () => {
    let answer: (() => void) | undefined;
    const out = await load({}, {}, () => new Promise((resolve) => (answer = () => resolve({ status: 204 }))));
    send({ payload: { v: 1 }, timestamp: T0, _delivery: { source: 'buf', id: 'd1' } });
    await until('the request', () => fake.requests.length === 1);
    await settle(100);
    expect(out.completed).toEqual([]);
    expect(settled).toEqual([]);
    answer?.();
    await until('done', () => out.completed.length === 1);
    expect(settled).toEqual([['d1', { ok: true }]]);
  });

  it('sends bad input to the error output with a code; the rest of the batch is written', async () => {
    const out = await load();
    send(
      { payload: { v: 1 }, topic: 'good-1' },
      { payload: { v: Number.NaN }, topic: 'nan', timestamp: T0, _delivery: { source: 'buf', id: 'bad' } },
      { payload: {}, topic: 'empty' },
      { payload: 'warm', topic: 'text' },
      { payload: { v: 2 }, topic: 'stamp', timestamp: 'yesterday' },
      {
        payload: [
          { sensor: 's1', v: 3 },
          { sensor: 's2', v: Infinity },
        ],
        topic: 'batch',
      },
      { payload: { v: 4 }, topic: 'good-2' },
    );
    await until('all seven done', () => out.completed.length === 7);
    expect(out.errors.map((m) => [m.topic, codeOf(m)])).toEqual([
      ['nan', 'not_finite'],
      ['empty', 'empty_reading'],
      ['text', 'no_fields'],
      ['stamp', 'bad_timestamp'],
      ['batch', 'not_finite'],
    ]);
    expect(fake.lines.map((l) => l.split(' ')[1])).toEqual(['v=1', 'v=3', 'v=4']);
    const batch = out.errors.find((m) => m.topic === 'batch') as NodeMessage;
    expect(batch.rejected).toEqual([{ code: 'not_finite', message: 'reading 1: v is Infinity: only finite numbers can be written', reading: 1 }]);
    expect((batch.error as { node: string }).node).toBe('ts');
    expect(settled).toEqual([['bad', { ok: false, retry: false, reason: 'v is NaN: only finite numbers can be written' }]]);
  });

  it('isolates the points the database refuses and writes the others', async () => {
    const out = await load({ batchSize: '8', text: 'string' }, {}, (request) => {
      const bad = request.lines.findIndex((line) => line.includes('"'));
      return bad < 0
        ? { status: 204 }
        : { status: 400, body: JSON.stringify({ error: 'partial write of line protocol occurred', data: [{ original_line: request.lines[bad], line_number: bad + 1, error_message: 'invalid column type for column v, expected float, got string' }] }) };
    });
    for (let i = 0; i < 8; i++) send({ payload: { v: i === 5 ? 'five' : i }, topic: `m${i}`, timestamp: T0 + i, _delivery: { source: 'buf', id: `d${i}` } });
    await until('all eight done', () => out.completed.length === 8);
    expect(out.errors.map((m) => m.topic)).toEqual(['m5']);
    expect(out.errors[0].rejected).toEqual([{ code: 'point_rejected', message: 'invalid column type for column v, expected float, got string', line: 'sensor v="five" ' + (out.errors[0].rejected as Array<{ line: string }>)[0].line.split(' ')[2] }]);
    expect(settled.filter(([, o]) => !o.ok)).toEqual([['d5', { ok: false, retry: false, reason: 'invalid column type for column v, expected float, got string' }]]);
    expect(settled.filter(([, o]) => o.ok)).toHaveLength(7);
    expect(out.written).toHaveLength(7);
  });

  it('stops on 401: status unauthorized, error output, no endless retry, one log line', async () => {
    const out = await load({}, {}, () => ({ status: 401, body: '{"error":"invalid token"}' }));
    for (let i = 0; i < 20; i++) send({ payload: { v: i }, topic: `m${i}`, timestamp: T0 + i, _delivery: { source: 'buf', id: `d${i}` } });
    await until('twenty errors', () => out.errors.length === 20);
    await settle(1500);
    expect(fake.requests).toHaveLength(1);
    expect(out.errors.every((m) => codeOf(m) === 'unauthorized')).toBe(true);
    expect((out.errors[0].error as { message: string }).message).toBe('401 Unauthorized: invalid token');
    expect(settled[0]).toEqual(['d0', { ok: false, retry: true, reason: '401 Unauthorized: invalid token', retryAfterMs: 1000 }]);
    expect(lastStatus()).toMatchObject({ fill: 'red', shape: 'ring', text: 'unauthorized · 0 pending' });
    expect(logged().filter((l) => l.msg.includes('unauthorized'))).toHaveLength(1);
  });

  it('retries after the delay Retry-After asks for, then writes', async () => {
    let calls = 0;
    const out = await load({}, {}, () => (++calls === 1 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 204 }));
    send({ payload: { v: 1 } });
    await until('the first attempt', () => fake.requests.length === 1);
    await settle(1100);
    expect(lastStatus()).toMatchObject({ fill: 'yellow', shape: 'ring', text: expect.stringMatching(/^retrying in \d s · 1 pending · 503 Service Unavailable/) });
    await until('written', () => out.completed.length === 1, 3000);
    expect(fake.requests).toHaveLength(2);
    expect(out.errors).toEqual([]);
    expect(logged().filter((l) => l.msg.includes('trying again in'))).toHaveLength(1);
  });

  it('holds a bounded number of points and says so on the error output past it, never dropping in silence', async () => {
    const out = await load({ maxPending: '10', batchSize: '5', maxInFlight: '1', giveUpAfter: '0' }, {}, () => ({ status: 503 }));
    for (let i = 0; i < 25; i++) send({ payload: { v: i }, topic: `m${i}`, timestamp: T0 + i, _delivery: { source: 'buf', id: `d${i}` } });
    await until('fifteen refused', () => out.errors.length === 15);
    expect(out.errors.every((m) => codeOf(m) === 'backlog_full')).toBe(true);
    expect(out.errors.map((m) => m.topic)).toEqual(Array.from({ length: 15 }, (_, i) => `m${i + 10}`));
    expect((out.errors[0].error as { message: string }).message).toBe('1 point(s) refused: 10 points are already waiting to be written, the most this node holds');
    expect(settled.every(([, o]) => !o.ok && o.retry)).toBe(true);
    await settle(1100);
    expect(lastStatus()?.text).toMatch(/^(backlog full|retrying in \d s) · 10 pending/);
    // One log line for all the refusals, one for the retries.
    expect(logged().filter((l) => l.msg.includes('backlog_full'))).toHaveLength(1);
  });

  it('reports to Catch nodes when asked, besides the error output', async () => {
    fake = await FakeInflux.start();
    const flow: Flow = [
      { id: 'tab', type: 'tab', label: 'catching' },
      { id: 'db', type: 'iot-influxdb', url: fake.url, version: 'v2', bucket: 'b' },
      { id: 'ts', type: 'iot-timeseries-out', z: 'tab', store: 'db', catchErrors: true, wires: [[], ['errors']] },
      { id: 'catcher', type: 'catch', z: 'tab', scope: ['ts'], uncaught: false, wires: [['caught']] },
      { id: 'errors', type: 'helper', z: 'tab' },
      { id: 'caught', type: 'helper', z: 'tab' },
    ];
    await helper.load(nodes, flow);
    const caught: NodeMessage[] = [];
    helper.getNode('caught').on('input', (msg: NodeMessage) => caught.push(msg));
    send({ payload: { v: 'x' } });
    await until('caught', () => caught.length === 1);
    expect((caught[0].error as { message: string }).message).toContain('no_fields');
  });

  it('shows points per second and pending points in its status', async () => {
    await load({ flushInterval: '20' });
    for (let i = 0; i < 100; i++) send({ payload: { v: i } });
    await settle(1200);
    expect(lastStatus()).toMatchObject({ fill: 'green', shape: 'dot' });
    expect(lastStatus()?.text).toMatch(/^\d+ pts\/s · 0 pending$/);
    expect(writer().status.getCalls().some((call) => /^[1-9]\d* pts\/s · 0 pending$/.test(call.args[0].text))).toBe(true);
  });

  it('keeps the token in credentials, out of messages and logs', async () => {
    const out = await load({}, {}, () => ({ status: 401, body: '{"error":"bad token"}' }));
    send({ payload: { v: 1 } });
    await until('the error', () => out.errors.length === 1);
    expect((helper.getNode('db') as Node & { credentials: { token?: string } }).credentials.token).toBe(TOKEN);
    expect(JSON.stringify(out.errors[0])).not.toContain(TOKEN);
    expect(JSON.stringify(logged())).not.toContain(TOKEN);
  });

  it('writes what it holds when it stops', async () => {
    await load({ flushInterval: '60000', linger: '60000' });
    send({ payload: { v: 1 } }, { payload: { v: 2 } });
    await settle();
    expect(fake.requests).toHaveLength(0);
    await helper.unload();
    expect(fake.lines.map((l) => l.split(' ')[1])).toEqual(['v=1', 'v=2']);
  });
});

describe('writing without waiting out the flush interval (issue 13), at the defaults', () => {
  const defaults = { flushInterval: undefined };

  it('writes at once when the buffer says its delivery was the last it had', async () => {
    let answered = 0;
    const out = await load(defaults, {}, () => (answered++, { status: 204 }));
    const sentAt = Date.now();
    for (let i = 0; i < 9; i++) send({ payload: { v: i }, timestamp: T0 + i, _delivery: { source: 'buf', id: `d${i}` } });
    send({ payload: { v: 9 }, timestamp: T0 + 9, _delivery: { source: 'buf', id: 'd9', last: true } });
    await until('all ten written', () => out.completed.length === 10, 2000);
    // Well before the flush interval (1 s), with room for a loaded machine.
    expect(Date.now() - sentAt).toBeLessThan(700);
    expect(fake.requests.map((r) => r.lines.length)).toEqual([10]);
    expect(answered).toBe(1);
  });

  it('writes once its input goes quiet, not a second later', async () => {
    const out = await load(defaults);
    const sentAt = Date.now();
    for (let i = 0; i < 50; i++) send({ payload: { v: i }, timestamp: T0 + i });
    await until('all fifty written', () => out.completed.length === 50, 2000);
    // Well before the flush interval (1 s), with room for a loaded machine.
    expect(Date.now() - sentAt).toBeLessThan(700);
    expect(fake.requests.map((r) => r.lines.length)).toEqual([50]);
  });

  it('tells its buffer how many messages fill its requests in flight: batch size × requests, in messages', async () => {
    const out = await load(defaults);
    send({ payload: { v: 1 }, timestamp: T0, _delivery: { source: 'buf', id: 'first' } });
    await until('told', () => announced.length === 1);
    expect(announced).toEqual([['ts', 20_000]]);
    // Gateway batches of ten readings a message: the same points are fewer messages.
    for (let i = 0; i < 300; i++) send({ payload: Array.from({ length: 10 }, (_, k) => ({ v: k })), timestamp: T0 + i, _delivery: { source: 'buf', id: `b${i}` } });
    await until('all written', () => out.completed.length === 301, 5000);
    expect(announced.at(-1)?.[1]).toBeLessThanOrEqual(2500);
    expect(announced.at(-1)?.[1]).toBeGreaterThanOrEqual(2000);
    // Not told with every message: when it changes, and again at most once a second.
    expect(announced.length).toBeLessThan(40);
  });

  it('never says 0 pts/s while it writes: green, the rate over the last seconds, or "writing"', async () => {
    const out = await load(defaults, {}, () => new Promise((resolve) => setTimeout(() => resolve({ status: 204 }), 1500)));
    for (let i = 0; i < 20; i++) {
      send({ payload: { v: i }, timestamp: T0 + i });
      await settle(200);
    }
    await until('all written', () => out.completed.length === 20, 5000);
    await settle(1100);
    const shown = writer().status.getCalls().map((call) => call.args[0]);
    expect(shown.filter((status) => /^0 pts\/s · [1-9]/.test(status.text))).toEqual([]);
    expect(shown.filter((status) => status.fill !== 'green' && status.fill !== 'grey')).toEqual([]);
    expect(shown.some((status) => /^writing · \d+ pending$/.test(status.text) || /^0\.\d pts\/s · /.test(status.text))).toBe(true);
  });
});

describe('deep and huge messages, with Catch and Complete nodes wired as real flows do', () => {
  it('refuses each with a specific code, never ending the process with an unhandled rejection', async () => {
    fake = await FakeInflux.start();
    const flow: Flow = [
      { id: 'tab', type: 'tab', label: 'hostile' },
      { id: 'db', type: 'iot-influxdb', url: fake.url, version: 'v3', database: 'iot', precision: 'ms' },
      { id: 'ts', type: 'iot-timeseries-out', z: 'tab', store: 'db', text: 'string', catchErrors: true, wires: [['written'], ['errors']] },
      { id: 'done', type: 'complete', z: 'tab', scope: ['ts'], uncaught: false, wires: [['completed']] },
      { id: 'catcher', type: 'catch', z: 'tab', scope: ['ts'], uncaught: false, wires: [['caught']] },
      { id: 'written', type: 'helper', z: 'tab' },
      { id: 'errors', type: 'helper', z: 'tab' },
      { id: 'completed', type: 'helper', z: 'tab' },
      { id: 'caught', type: 'helper', z: 'tab' },
      { id: 'buf', type: 'test-buffer', z: 'tab' },
    ];
    await helper.load([...nodes, stubBuffer], flow, { db: { token: TOKEN } });
    const seen: Record<string, NodeMessage[]> = { written: [], errors: [], completed: [], caught: [] };
    for (const id of Object.keys(seen)) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
    const failures = watchProcessFailures();
    try {
      const delivered = (id: string) => ({ timestamp: T0, _delivery: { source: 'buf', id } });
      send(
        // A good reading that drags a 3,000-level value along: Node-RED overflows its stack copying it for Complete.
        { payload: { v: 1 }, topic: 'deep-beside', trace: nested(3000), ...delivered('deep-beside') },
        { payload: nested(3000), topic: 'deep-payload', ...delivered('deep-payload') },
        // More points than the node ever holds: no later delivery can succeed.
        { payload: Array.from({ length: 150_000 }, (_, i) => ({ v: i })), topic: 'huge-batch', ...delivered('huge-batch') },
        // A point no database takes (InfluxDB keeps 64 KB of text in a field).
        { payload: { v: 1, note: 'x'.repeat(2_000_000) }, topic: 'huge-text', ...delivered('huge-text') },
        { payload: { v: 2 }, topic: 'fine', ...delivered('fine') },
      );
      await until('five messages done', () => seen.completed.length + seen.caught.length === 5, 10_000);
      await settle(200);
      expect(failures.seen).toEqual([]);
      expect(seen.errors.map((m) => [m.topic, codeOf(m)])).toEqual([
        ['deep-beside', 'too_deep'],
        ['deep-payload', 'too_deep'],
        ['huge-batch', 'too_large'],
        ['huge-text', 'too_large'],
      ]);
      expect(seen.caught.map((m) => m.topic)).toEqual(['deep-beside', 'deep-payload', 'huge-batch', 'huge-text']);
      expect(seen.completed.map((m) => m.topic)).toEqual(['fine']);
      expect(settled.map(([id, outcome]) => [id, outcome.ok || outcome.retry])).toEqual([
        ['deep-beside', false],
        ['deep-payload', false],
        ['huge-batch', false],
        ['huge-text', false],
        ['fine', true],
      ]);
      expect(fake.lines.map((line) => line.split(' ')[1])).toEqual(['v=2']);
    } finally {
      failures.stop();
    }
  });
});

describe('a wrong or missing connection', () => {
  it('says so in the status and refuses messages with invalid_config', async () => {
    const out = await load({}, { url: '' });
    send({ payload: { v: 1 }, _delivery: { source: 'buf', id: 'd1' } });
    await until('the error', () => out.errors.length === 1);
    expect(codeOf(out.errors[0])).toBe('invalid_config');
    expect((out.errors[0].error as { message: string }).message).toMatch(/no URL/);
    expect(settled[0][1]).toMatchObject({ ok: false, retry: true });
    expect(lastStatus()).toMatchObject({ fill: 'red', shape: 'ring', text: 'invalid configuration: no URL' });
    expect(logged().filter((l) => l.msg.includes('no URL'))).toHaveLength(1);
  });

  it('waits for readings with the connection in its status when nothing has arrived yet', async () => {
    await load();
    await settle(1100);
    expect(lastStatus()).toMatchObject({ fill: 'grey', shape: 'ring', text: `waiting for readings · ${fake.url} v3 database iot` });
  });
});
