/**
 * iot-timeseries-out: points per second from one Node-RED process into victoria-metrics, beside
 * the bare @influxdata/influxdb-client writing the same points without Node-RED, and beside
 * node-red-contrib-influxdb's "influxdb out" and "influxdb batch" nodes on the same readings and
 * server, all in the same run. A point counts once the database has answered for it: for the
 * nodes, when the node calls done (counted as Node-RED completes the message, see `counter`);
 * for the bare client, when its WriteApi reports the batch written. Every run is then counted
 * back from the database.
 *
 * Each contender is fed the same way: the same reading objects are made as they are fed (as
 * upstream nodes would make them; the bare client builds its points from them as an application
 * would), in chunks with the event loop free between them, with a bounded number of readings
 * outstanding (not yet written), so that no contender is asked to hold a million at once. The
 * message id Node-RED gives each message is Node-RED's cost: the writer leg pays it (receive()
 * makes it), the bare client does not. The machine is shared with other work, so the bare
 * client and the writer alternate for two rounds and each keeps its best.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InfluxDB, Point, setLogger } from '@influxdata/influxdb-client';
import { exportSeries, startVictoriaMetrics, type ManagedServer } from '../test/support/services';
import { startRuntime, type BenchNode } from './embedded-runtime';
import { format, type Figure } from './measure';

const DEVICES = 1000;
const POINTS = 1_000_000;
const WARM_UP = 100_000;
const ROUNDS = 2;
const OLD_OUT_POINTS = 20_000;
const OLD_BATCH_POINTS = 200_000;
const BATCH_READINGS = 100;
const CHUNK = 1000;
/** Readings fed and not yet written, at most (the old out node: one request each, see below). */
const WINDOW = 50_000;
const OLD_OUT_WINDOW = 1000;

const devices = Array.from({ length: DEVICES }, (_, i) => `device-${i}`);
const base = Date.now() - 6 * 3_600_000;
const valueOf = (i: number) => Math.round((20 + ((i * 7919) % 1000) / 100) * 100) / 100;

/** Counts completions and wakes whoever waits for a count. */
class Counter {
  count = 0;
  private waiting: { target: number; resolve: () => void } | undefined;

  add(n: number): void {
    this.count += n;
    if (this.waiting && this.count >= this.waiting.target) {
      this.waiting.resolve();
      this.waiting = undefined;
    }
  }

  reach(target: number): Promise<void> {
    if (this.count >= target) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = { target, resolve }));
  }
}

/**
 * Feeds `total` readings through `feed` (which may take several at a time, returning how many it
 * took), keeping at most `window` outstanding; returns readings written per second.
 */
async function drive(total: number, window: number, done: Counter, feed: (from: number, to: number) => void): Promise<number> {
  const before = done.count;
  const started = process.hrtime.bigint();
  let fed = 0;
  while (fed < total) {
    await done.reach(before + Math.max(0, fed + Math.min(CHUNK, total - fed) - window));
    const to = Math.min(total, fed + CHUNK);
    feed(fed, to);
    fed = to;
    await nextTurn();
  }
  await done.reach(before + total);
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** Points of a measurement stored in victoria-metrics, read back after the run. */
async function stored(vm: ManagedServer, measurement: string, expected: number): Promise<number> {
  const series = await exportSeries(vm, `${measurement}_temperature`, expected, 60_000);
  return series.reduce((n, s) => n + new Set(s.timestamps).size, 0);
}

/** Reading i as a device flow delivers it: what the writer is fed, and the bare client too. */
const reading = (i: number) => ({ payload: { temperature: valueOf(i) }, device: { id: devices[i % DEVICES], method: 'bench' }, timestamp: base + i });

/** The bare client: one WriteApi per run, points made from the readings as they are fed. */
function bareClientRun(vm: ManagedServer): (measurement: string, total: number) => Promise<number> {
  const written = new Counter();
  const client = new InfluxDB({ url: vm.url });
  return async (measurement, total) => {
    const api = client.getWriteApi('iot', 'bench', 'ms', { batchSize: 5000, flushInterval: 1000, maxBufferLines: WINDOW * 2, writeSuccess: (lines) => written.add(lines.length) });
    const rate = await drive(total, WINDOW, written, (from, to) => {
      for (let i = from; i < to; i++) {
        const { payload, device, timestamp } = reading(i);
        api.writePoint(new Point(measurement).tag('device', device.id).floatField('temperature', payload.temperature).timestamp(timestamp));
      }
    });
    await api.close();
    return rate;
  };
}

/** What Node-RED calls on a node when a message is done with (Node.prototype._complete). */
type Complete = (this: BenchNode, msg: object, error?: unknown) => void;

interface Rates {
  ours: number;
  bare: number;
  oursBatched: number;
  oldOut: number;
  oldBatch: number;
}

const writer = (id: string, measurement: string) => ({ id, type: 'iot-timeseries-out', z: 'bench.tab', store: 'bench.store', measurement, measurementType: 'str', wires: [[], []] });

async function benchAll(vm: ManagedServer): Promise<Rates> {
  const flow = [
    { id: 'bench.tab', type: 'tab', label: 'bench' },
    { id: 'bench.store', type: 'iot-influxdb', url: vm.url, version: 'v2', org: 'iot', bucket: 'bench', precision: 'ms', gzip: true, timeout: '10' },
    ...Array.from({ length: ROUNDS }, (_, round) => writer(`bench.ours${round}`, `bench_ours${round}`)),
    writer('bench.oursBatched', 'bench_ours_batched'),
    writer('bench.warm', 'bench_warm_ours'),
    { id: 'bench.old', type: 'influxdb', hostname: '127.0.0.1', port: 8086, protocol: 'http', database: 'bench', name: 'old', usetls: false, influxdbVersion: '2.0', url: vm.url, timeout: 10, rejectUnauthorized: true },
    { id: 'bench.oldOut', type: 'influxdb out', z: 'bench.tab', influxdb: 'bench.old', name: '', measurement: 'bench_old_out', precision: '', retentionPolicy: '', database: '', precisionV18FluxV20: 'ms', retentionPolicyV18Flux: '', org: 'iot', bucket: 'bench', wires: [] },
    { id: 'bench.oldBatch', type: 'influxdb batch', z: 'bench.tab', influxdb: 'bench.old', precision: '', retentionPolicy: '', name: '', database: '', precisionV18FluxV20: 'ms', retentionPolicyV18Flux: '', org: 'iot', bucket: 'bench', wires: [] },
  ];
  const runtime = await startRuntime(flow);
  /**
   * Readings written by a node: `perMessage` readings each time it finishes a message. Counted
   * where Node-RED completes the node's messages, around its own completion of that node alone:
   * an onComplete hook would run for every node of the runtime and cost each message what no
   * production flow pays.
   */
  const counter = (id: string, perMessage = 1) => {
    const readings = new Counter();
    const node = runtime.node(id) as BenchNode & { _complete: Complete };
    const complete = node._complete;
    node._complete = function (msg, error) {
      readings.add(perMessage);
      complete.call(this, msg, error);
    };
    return readings;
  };
  try {
    const oneByOne = (node: BenchNode, make: (i: number) => object) => (from: number, to: number) => {
      for (let i = from; i < to; i++) node.receive(make(i));
    };
    /** Gateway batches: one message per BATCH_READINGS readings; completions count readings. */
    const batches = (node: BenchNode, make: (from: number, to: number) => object) => (from: number, to: number) => {
      for (let i = from; i < to; i += BATCH_READINGS) node.receive(make(i, Math.min(to, i + BATCH_READINGS)));
    };

    const bare = bareClientRun(vm);
    await bare('bench_warm_bare', WARM_UP);
    await drive(WARM_UP, WINDOW, counter('bench.warm'), oneByOne(runtime.node('bench.warm'), reading));
    // The machine is shared: the two alternate, and each keeps its best round.
    const rates: Rates = { ours: 0, bare: 0, oursBatched: 0, oldOut: 0, oldBatch: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      rates.bare = Math.max(rates.bare, await bare(`bench_bare${round}`, POINTS));
      rates.ours = Math.max(rates.ours, await drive(POINTS, WINDOW, counter(`bench.ours${round}`), oneByOne(runtime.node(`bench.ours${round}`), reading)));
    }

    const gatewayBatch = (from: number, to: number) => {
      const payload = [];
      for (let i = from; i < to; i++) payload.push({ sensor: devices[i % DEVICES], temperature: valueOf(i), timestamp: base + i });
      return { payload, device: { id: 'gateway-1', method: 'bench' } };
    };
    rates.oursBatched = await drive(POINTS, WINDOW, counter('bench.oursBatched', BATCH_READINGS), batches(runtime.node('bench.oursBatched'), gatewayBatch));

    // The old out node flushes its WriteApi on every message: one request per reading.
    rates.oldOut = await drive(
      OLD_OUT_POINTS,
      OLD_OUT_WINDOW,
      counter('bench.oldOut'),
      oneByOne(runtime.node('bench.oldOut'), (i) => ({ payload: [{ temperature: valueOf(i), time: base + i }, { device: devices[i % DEVICES] }] })),
    );
    rates.oldBatch = await drive(
      OLD_BATCH_POINTS,
      WINDOW,
      counter('bench.oldBatch', BATCH_READINGS),
      batches(runtime.node('bench.oldBatch'), (from, to) => {
        const payload = [];
        for (let i = from; i < to; i++) payload.push({ measurement: 'bench_old_batch', tags: { device: devices[i % DEVICES] }, fields: { temperature: valueOf(i) }, timestamp: base + i });
        return { payload };
      }),
    );
    return rates;
  } finally {
    await runtime.stop();
  }
}

export async function benchTimeseries(): Promise<Figure[]> {
  // The old node's copy of the client library prints failed writes to the console; keep quiet.
  setLogger({ error: (message) => console.error(`[influxdb-client] ${message}`), warn: () => undefined });
  const vm = await startVictoriaMetrics();
  try {
    const rates = await benchAll(vm);
    const readBack = async (measurement: string, expected: number) => `${format(await stored(vm, measurement, expected))} of ${format(expected)} read back`;
    const oursBack: string[] = [];
    const bareBack: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      oursBack.push(await readBack(`bench_ours${round}`, POINTS));
      bareBack.push(await readBack(`bench_bare${round}`, POINTS));
    }
    return [
      {
        name: `timeseries-out in Node-RED into victoria-metrics, one reading per message (${format(POINTS)} points, ${format(DEVICES)} devices, batches of 5,000, gzip; best of ${ROUNDS})`,
        value: rates.ours,
        unit: 'points/s',
        goal: { op: '>=', value: 150_000 },
        note: oursBack.join('; '),
      },
      {
        name: `the same points from the bare @influxdata/influxdb-client WriteApi (batches of 5,000, gzip), no Node-RED, alternating with it: ratio timeseries-out / bare client`,
        value: rates.ours / rates.bare,
        unit: '',
        goal: { op: '>=', value: 0.5 },
        note: `bare client: ${format(rates.bare)} points/s; ${bareBack.join('; ')}`,
      },
      {
        name: 'the same readings into node-red-contrib-influxdb "influxdb out" (v2): ratio timeseries-out / old out node',
        value: rates.ours / rates.oldOut,
        unit: '',
        goal: { op: '>=', value: 10 },
        note: `old out node: ${format(rates.oldOut)} points/s (${format(OLD_OUT_POINTS)} points, at most ${format(OLD_OUT_WINDOW)} outstanding: it sends one request per reading); ${await readBack('bench_old_out', OLD_OUT_POINTS)}`,
      },
      {
        name: `timeseries-out, gateway batches of ${BATCH_READINGS} readings per message: ratio to node-red-contrib-influxdb "influxdb batch" on the same batches`,
        value: rates.oursBatched / rates.oldBatch,
        unit: '',
        note: `timeseries-out: ${format(rates.oursBatched)} points/s (${await readBack('bench_ours_batched', POINTS)}); old batch node: ${format(rates.oldBatch)} points/s (${await readBack('bench_old_batch', OLD_BATCH_POINTS)})`,
      },
    ];
  } finally {
    await vm.dispose();
  }
}
