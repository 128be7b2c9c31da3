/**
 * iot-timeseries-out against real servers on loopback: the v2 API into victoria-metrics and the
 * v1 API into InfluxDB 1.6, every point read back and compared exactly (values, tags, times); a
 * partial write on real InfluxDB 1.6 isolated point by point; and an outage (the server stopped
 * mid-stream, started again 30 s later) without a buffer upstream, where what could not be held
 * is counted exactly on the error output.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import influxdbNode from '../../nodes/influxdb/influxdb';
import type { Outcome } from '../../nodes/shared/delivery';
import timeseriesNode from '../../nodes/timeseries-out/timeseries-out';
import { withMessages } from '../support/messages';
import { helper } from '../support/node-red';
import { exportSeries, startInfluxDB, startVictoriaMetrics, type ManagedServer } from '../support/services';
import { eventually, sleep } from '../support/wait';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Writer = Node & { receive(msg: NodeMessage): void };

/** Settlements a stand-in buffer received: delivery id and outcome. */
const settled: Array<[string, Outcome]> = [];

/** Stands in for iot-buffer: it only records settlements (nodes/shared/delivery.ts). */
function stubBuffer(RED: NodeAPI): void {
  RED.nodes.registerType('test-buffer', function (this: Node & { settleDelivery(id: string, outcome: Outcome): void }, config: object) {
    RED.nodes.createNode(this, config as never);
    this.settleDelivery = (id, outcome) => settled.push([id, outcome]);
  });
}

const nodes = [withMessages(influxdbNode, 'influxdb'), withMessages(timeseriesNode, 'timeseries-out'), stubBuffer];
let vm: ManagedServer;
let influx: ManagedServer;

beforeAll(async () => {
  [vm, influx] = await Promise.all([startVictoriaMetrics(), startInfluxDB()]);
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  await Promise.all([vm?.dispose(), influx?.dispose()]);
});
afterEach(async () => {
  await helper.unload();
  settled.length = 0;
});

interface Outputs {
  written: NodeMessage[];
  errors: NodeMessage[];
  completed: NodeMessage[];
}

async function load(store: Record<string, unknown>, writer: Record<string, unknown>): Promise<Outputs> {
  const flow: Flow = [
    { id: 'tab', type: 'tab', label: 'real servers' },
    { id: 'db', type: 'iot-influxdb', ...store },
    { id: 'ts', type: 'iot-timeseries-out', z: 'tab', store: 'db', wires: [['written'], ['errors']], ...writer },
    { id: 'done', type: 'complete', z: 'tab', scope: ['ts'], uncaught: false, wires: [['completed']] },
    { id: 'written', type: 'helper', z: 'tab' },
    { id: 'errors', type: 'helper', z: 'tab' },
    { id: 'completed', type: 'helper', z: 'tab' },
    { id: 'buf', type: 'test-buffer', z: 'tab' },
  ];
  await helper.load(nodes, flow);
  const out: Outputs = { written: [], errors: [], completed: [] };
  for (const id of ['written', 'errors', 'completed'] as const) helper.getNode(id).on('input', (msg: NodeMessage) => out[id].push(msg));
  return out;
}

const writer = () => helper.getNode('ts') as Writer;

async function influxQL(db: string, query: string): Promise<{ columns: string[]; values: unknown[][] }> {
  const response = await fetch(`${influx.url}/query?db=${db}&q=${encodeURIComponent(query)}`, { method: 'POST' });
  const body = (await response.json()) as { results: Array<{ series?: Array<{ columns: string[]; values: unknown[][] }>; error?: string }> };
  if (body.results[0].error) throw new Error(body.results[0].error);
  return body.results[0].series?.[0] ?? { columns: [], values: [] };
}

describe('v2 API into victoria-metrics', () => {
  it('round-trips every point exactly: values, tags and timestamps', async () => {
    const out = await load({ url: vm.url, version: 'v2', org: 'iot', bucket: 'readings', precision: 'ms' }, { measurement: 'rt', integerFields: 'count', tags: [{ name: 'site', value: 'plant 1', type: 'str' }], flushInterval: '100' });
    const base = 1_795_300_000_000;
    const sent: Array<{ device: string; t: number; temperature: number; count: number }> = [];
    for (let i = 0; i < 300; i++) {
      // Three decimals at most: victoria-metrics keeps about 12 significant digits.
      const reading = { device: `pump-${i % 3}`, t: base + i * 1000 + (i % 7), temperature: Math.round((20 + Math.sin(i) * 5 + (i % 2 ? 0 : 0.5)) * 1000) / 1000, count: i };
      sent.push(reading);
      writer().receive({ payload: { temperature: reading.temperature, count: reading.count }, device: { id: reading.device, method: 'hmac' }, timestamp: reading.t });
    }
    // A gateway batch with its own times per reading.
    writer().receive({ payload: [{ temperature: 1.25, count: 1, timestamp: base - 1 }, { temperature: -3, count: 2, timestamp: base - 2 }], device: { id: 'pump-9', method: 'hmac', gateway: 'gw-1' } });
    await eventually('all messages done', () => (out.completed.length === 301 ? true : undefined), 20_000);
    expect(out.errors).toEqual([]);

    const series = await exportSeries(vm, '{__name__=~"rt_.*"}', 604);
    const byKey = new Map(series.map((s) => [`${s.metric.__name__} ${s.metric.device} ${s.metric.gateway ?? ''}`, s]));
    for (const device of ['pump-0', 'pump-1', 'pump-2']) {
      const mine = sent.filter((r) => r.device === device);
      const temperature = byKey.get(`rt_temperature ${device} `);
      const count = byKey.get(`rt_count ${device} `);
      expect(temperature?.metric).toEqual({ __name__: 'rt_temperature', device, site: 'plant 1' });
      expect(temperature?.timestamps).toEqual(mine.map((r) => r.t));
      expect(temperature?.values).toEqual(mine.map((r) => r.temperature));
      expect(count?.values).toEqual(mine.map((r) => r.count));
    }
    const gateway = byKey.get('rt_temperature pump-9 gw-1');
    expect(gateway?.timestamps).toEqual([base - 2, base - 1]);
    expect(gateway?.values).toEqual([-3, 1.25]);
  });
});

describe('v1 API into InfluxDB 1.6', () => {
  beforeAll(async () => {
    for (const db of ['roundtrip', 'partial']) await fetch(`${influx.url}/query?q=${encodeURIComponent(`CREATE DATABASE ${db}`)}`, { method: 'POST' });
  });

  it('round-trips every point exactly with InfluxQL, nanoseconds and every field type', async () => {
    const out = await load(
      { url: influx.url, version: 'v1', database: 'roundtrip', precision: 'ns' },
      { measurement: 'sensor', integerFields: 'count', text: 'string', flushInterval: '100', tagKeys: 'sensor' },
    );
    const readings = [
      { sensor: 't-1', temperature: 21, count: 3, on: true, note: 'ok, "fine"', timestamp: '2026-11-22T08:26:40.123456789Z' },
      { sensor: 't-1', temperature: 21.5, count: -4, on: false, note: 'a=b c', timestamp: '2026-11-22T08:26:41.000000001Z' },
      { sensor: 't 2,x', temperature: -0.001, count: 0, on: true, note: '', timestamp: 1_795_336_002_500 },
    ];
    writer().receive({ payload: readings, device: { id: 'gw-1', method: 'jwt' } });
    await eventually('done', () => (out.completed.length === 1 ? true : undefined), 10_000);
    expect(out.errors).toEqual([]);
    const result = await influxQL('roundtrip', 'SELECT * FROM sensor');
    expect(result.columns).toEqual(['time', 'count', 'device', 'note', 'on', 'sensor', 'temperature']);
    expect(result.values).toEqual([
      ['2026-11-22T08:26:40.123456789Z', 3, 'gw-1', 'ok, "fine"', true, 't-1', 21],
      ['2026-11-22T08:26:41.000000001Z', -4, 'gw-1', 'a=b c', false, 't-1', 21.5],
      ['2026-11-22T08:26:42.5Z', 0, 'gw-1', '', true, 't 2,x', -0.001],
    ]);
    // 21 went in as a float, so 21.5 after it never conflicts: both are floats in the database.
    const types = await influxQL('roundtrip', 'SHOW FIELD KEYS FROM sensor');
    expect(types.values).toEqual([
      ['count', 'integer'],
      ['note', 'string'],
      ['on', 'boolean'],
      ['temperature', 'float'],
    ]);
  });

  it('isolates a partial write: an integer field followed by a string in the same field', async () => {
    const out = await load({ url: influx.url, version: 'v1', database: 'partial', precision: 'ms' }, { measurement: 'meter', integerFields: 'count', text: 'string', batchSize: '10', flushInterval: '200' });
    const values: unknown[] = [1, 2, 'three', 4, 5];
    values.forEach((count, i) => writer().receive({ payload: { count }, topic: `m${i}`, timestamp: 1_795_300_000_000 + i }));
    await eventually('all done', () => (out.completed.length === 5 ? true : undefined), 10_000);
    expect(out.errors.map((m) => m.topic)).toEqual(['m2']);
    const error = out.errors[0].error as { code: string; message: string };
    expect(error.code).toBe('point_rejected');
    expect(error.message).toMatch(/^400 Bad Request: partial write: field type conflict: input field "count" on measurement "meter" is type string, already exists as type integer/);
    expect(out.errors[0].rejected).toEqual([{ code: 'point_rejected', message: error.message, line: 'meter count="three" 1795300000002' }]);
    expect(out.written.map((m) => m.topic).sort()).toEqual(['m0', 'm1', 'm3', 'm4']);
    const stored = await influxQL('partial', 'SELECT count FROM meter');
    expect(stored.values.map((row) => row[1])).toEqual([1, 2, 4, 5]);
  });
});

describe('a reading keeps its own time (issue 11 item 8)', () => {
  it("writes each reading at the device's time, else the time it was accepted, across an outage and a redelivery, once", async () => {
    // The writer as the Buffered flow ships it: the message's time from msg.timestamp, v1 API.
    const out = await load({ url: vm.url, version: 'v1', database: 'iot', precision: 'ms', timeout: '2' }, { measurement: 'kept', time: 'timestamp', timeType: 'msg', retryMaxDelay: '2' });
    const base = Date.now() - 3_600_000;
    const devices = ['dev-0', 'dev-1', 'dev-2', 'dev-3'];
    // Even readings carry the device's own time; odd ones only the time the edge accepted them.
    const expected = new Map<string, Array<[number, number]>>();
    const message = (seq: number, delivery: number): NodeMessage => {
      const device = devices[seq % devices.length];
      const own = seq % 2 === 0;
      const at = base + seq * 1000;
      const temperature = 20 + seq / 8;
      return { payload: own ? { temperature, timestamp: at } : { temperature }, timestamp: own ? at + 250 : at, device: { id: device, method: 'apiKey' }, _delivery: { source: 'buf', id: `${seq}/${delivery}` } };
    };
    for (let seq = 0; seq < 100; seq++) {
      const device = devices[seq % devices.length];
      expected.set(device, [...(expected.get(device) ?? []), [base + seq * 1000, 20 + seq / 8]]);
    }
    const okCount = () => settled.filter(([, o]) => o.ok).length;
    for (let seq = 0; seq < 50; seq++) writer().receive(message(seq, 1));
    await eventually('the first 50 written', () => (okCount() === 50 ? true : undefined), 10_000);
    await vm.stop();
    for (let seq = 50; seq < 100; seq++) writer().receive(message(seq, 1));
    await sleep(3000);
    // A buffer delivers again what it does not know to be written (after its timeout, or a restart).
    for (let seq = 0; seq < 100; seq++) writer().receive(message(seq, 2));
    await vm.start();
    await eventually('every delivery written', () => (okCount() === 200 ? true : undefined), 30_000);
    expect(out.errors).toEqual([]);

    const series = await exportSeries(vm, '{__name__=~"kept_.*"}', 100);
    expect(series.map((s) => s.metric.__name__).filter((name) => name !== 'kept_temperature')).toEqual([]);
    for (const device of devices) {
      const stored = series.find((s) => s.metric.device === device);
      const points = (stored?.timestamps ?? []).map((t, i) => [t, stored?.values[i]]);
      expect(points).toEqual(expected.get(device));
    }
  });

  it('refuses a delivered reading with no time at all rather than stamp it with the time it is written', async () => {
    const out = await load({ url: vm.url, version: 'v1', database: 'iot', precision: 'ms' }, { measurement: 'untimed' });
    writer().receive({ payload: { temperature: 21 }, device: { id: 'dev-9', method: 'apiKey' }, _delivery: { source: 'buf', id: 'no-time' } });
    // Not from a queue: nothing can deliver it again, so the time it arrived stands in.
    writer().receive({ payload: { temperature: 22 }, device: { id: 'dev-9', method: 'apiKey' } });
    await eventually('both done', () => (out.completed.length === 2 ? true : undefined), 10_000);
    expect(out.errors.map((m) => (m.error as { code: string }).code)).toEqual(['no_timestamp']);
    expect(settled).toEqual([['no-time', { ok: false, retry: false, reason: expect.stringMatching(/has no time of its own/) }]]);
    const [stored] = await exportSeries(vm, 'untimed_temperature', 1);
    expect(stored.values).toEqual([22]);
  });
});

describe('line-protocol injection (issue 12)', () => {
  // A device's text, stored as a string field, crafted to end its own line and write a point for another device.
  const crafted = (at: number) => `fine"\nlp,device=pump-02 temperature=99 ${at}\nlp,device=pump-02 x="1`;

  it('writes a crafted text as text of its own device on victoria-metrics: no point for another device', async () => {
    const out = await load({ url: vm.url, version: 'v2', org: 'iot', bucket: 'injection', precision: 'ms' }, { measurement: 'lp', text: 'string' });
    const at = Date.now() - 60_000;
    writer().receive({ payload: { temperature: 21.5, note: crafted(at) }, device: { id: 'pump-01', method: 'apiKey' }, timestamp: at });
    writer().receive({ payload: { temperature: 22.5 }, device: { id: 'pump-03', method: 'apiKey' }, timestamp: at });
    await eventually('both done', () => (out.completed.length === 2 ? true : undefined), 10_000);
    expect(out.errors).toEqual([]);
    const series = await exportSeries(vm, '{__name__=~"lp_.*"}', 2);
    expect(series.filter((s) => s.metric.device === 'pump-02')).toEqual([]);
    expect(series.filter((s) => s.metric.__name__ === 'lp_temperature').map((s) => [s.metric.device, s.values])).toEqual(
      expect.arrayContaining([
        ['pump-01', [21.5]],
        ['pump-03', [22.5]],
      ]),
    );
  });

  it('stores the crafted text whole, in the point of its own device, on InfluxDB 1.6', async () => {
    await fetch(`${influx.url}/query?q=${encodeURIComponent('CREATE DATABASE injection')}`, { method: 'POST' });
    const out = await load({ url: influx.url, version: 'v1', database: 'injection', precision: 'ms' }, { measurement: 'lp', text: 'string' });
    const at = Date.now() - 60_000;
    writer().receive({ payload: { temperature: 21.5, note: crafted(at) }, device: { id: 'pump-01', method: 'apiKey' }, timestamp: at });
    await eventually('done', () => (out.completed.length === 1 ? true : undefined), 10_000);
    expect(out.errors).toEqual([]);
    const result = await influxQL('injection', 'SELECT device, note, temperature FROM lp');
    // The line breaks are written as \n, the way line protocol writes them in tags.
    expect(result.values).toEqual([[new Date(at).toISOString(), 'pump-01', crafted(at).replace(/\n/g, '\\n'), 21.5]]);
  });
});

describe('an outage without a buffer upstream', () => {
  it('writes everything it could hold once the server is back, and reports exactly what it could not', async () => {
    const out = await load(
      { url: vm.url, version: 'v2', bucket: 'outage', precision: 'ms', timeout: '2' },
      { measurement: 'outage', batchSize: '200', flushInterval: '100', maxPending: '1000', retryMaxDelay: '2', giveUpAfter: '0' },
    );
    // Recent times: victoria-metrics refuses points too far in the future.
    const base = Date.now() - 3_600_000;
    let sent = 0;
    const stream = setInterval(() => {
      // 10 readings every 20 ms: 500 a second.
      for (let i = 0; i < 10; i++) {
        writer().receive({ payload: { v: sent }, topic: String(sent), timestamp: base + sent });
        sent++;
      }
    }, 20);
    try {
      await sleep(3000);
      await vm.stop();
      const stoppedAt = sent;
      await sleep(30_000);
      await vm.start();
      const startedAt = sent;
      await sleep(3000);
      clearInterval(stream);
      expect(stoppedAt).toBeGreaterThan(500);
      expect(startedAt - stoppedAt).toBeGreaterThan(5000);
    } finally {
      clearInterval(stream);
    }
    await eventually('every message finished', () => (out.completed.length === sent ? true : undefined), 60_000);

    const refused = new Set(out.errors.map((m) => Number(m.topic)));
    expect(out.errors.every((m) => (m.error as { code: string }).code === 'backlog_full')).toBe(true);
    expect(refused.size).toBe(out.errors.length);
    // The bound held: 1,000 points waited; the rest of the outage's readings were refused, and said so.
    expect(out.errors.length).toBeGreaterThan(5000);

    expect(out.written.length + out.errors.length).toBe(sent);
    const [series] = await exportSeries(vm, 'outage_v', sent - refused.size, 30_000);
    const stored = new Set(series.timestamps.map((t) => t - base));
    expect(stored.size).toBe(sent - refused.size);
    for (const n of refused) expect(stored.has(n)).toBe(false);
    expect(stored.size + refused.size).toBe(sent);
    // Values and times match for everything stored.
    series.timestamps.forEach((t, i) => expect(series.values[i]).toBe(t - base));
    const logLines = (helper.log() as unknown as { args: Array<[{ msg: unknown }]> }).args.map(([e]) => String(e.msg)).filter((text) => text.includes('outage') || text.includes('backlog'));
    expect(logLines.length).toBeLessThanOrEqual(6);
  });
});
