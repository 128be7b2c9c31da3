/**
 * The Buffered pattern's promise, end to end (issues 4 and 5): a whole Node-RED with a steady
 * stream of readings into iot-buffer (local store, acknowledged by the sink) and on into
 * iot-timeseries-out writing to a real victoria-metrics. The store is stopped in the middle of
 * the stream and started again 30 s later on the same port with the same data. Every reading
 * sent is stored exactly once with its value: none missing, none twice (the outage outlasts the
 * buffer's redelivery time, so some are written twice: the store keeps one point per series and
 * time). The buffer held the readings meanwhile, and the writer's error output never said a
 * point was lost.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { bufferedTab, bufferStats, deployBufferFlow, ReadingStream, reportedFailures, type FlowNode } from '../support/buffer-flow';
import { NodeRedProcess } from '../support/node-red-process';
import { exportSeries, startVictoriaMetrics, type ManagedServer } from '../support/services';
import { eventually } from '../support/wait';

/** 100 readings a second. */
const PACE = { perTick: 10, tickMs: 100 };
const PHASE_MS = { before: 4_000, outage: 30_000, after: 4_000 };

const flow: FlowNode[] = [
  // Redeliver after 30 s, as the example flows do: the outage outlasts it, so what the writer held
  // at its start is delivered (and written) again, and the store keeps each point once.
  ...bufferedTab('tsbuf', 'buffered time series outage', ['tsbuf.writer'], { maxInFlight: '1000', ackTimeout: '30', maxAttempts: '0', retryDelay: '1', retryDelayMax: '8' }),
  { id: 'tsbuf.store', type: 'iot-influxdb', url: '${INFLUX_URL}', version: 'v2', org: 'iot', bucket: 'outage', precision: 'ms', gzip: true, timeout: '2' },
  // Each reading's numbers (seq, value, arrival) at its own time; retries every 2 s at most while the store is down.
  { id: 'tsbuf.writer', type: 'iot-timeseries-out', z: 'tsbuf.tab', store: 'tsbuf.store', measurement: 'bufout', readings: 'payload', readingsType: 'msg', deviceTag: false, gatewayTag: false, timeType: 'field', time: 'timestamp',
    batchSize: '500', flushInterval: '100', retryMaxDelay: '2', wires: [[], ['tsbuf.failed']] },
];

let store: ManagedServer | undefined;
let node: NodeRedProcess | undefined;
afterAll(async () => {
  await node?.dispose();
  await store?.dispose();
});

describe('buffered time series through a 30 s store outage', () => {
  it('stores every reading exactly once, the buffer holding them meanwhile', async () => {
    store = await startVictoriaMetrics();
    node = await NodeRedProcess.start({ env: { INFLUX_URL: store.url } });
    await deployBufferFlow(node, flow);
    const running = node;
    const vm = store;

    // Recent times (victoria-metrics refuses points from the future), one millisecond per reading.
    const base = Date.now() - 3_600_000;
    const valueOf = (seq: number) => seq * 0.5 + 0.25;
    const stream = new ReadingStream(running, (seq) => ({ seq, value: valueOf(seq), timestamp: base + seq }), PACE.perTick, PACE.tickMs);

    await stream.pushFor(PHASE_MS.before);
    await eventually('the readings before the outage stored', async () => ((await bufferStats(running)).depth === 0 ? true : undefined), 10_000);
    await vm.stop();
    const sentBeforeOutage = stream.sent;
    const peak = await stream.pushFor(PHASE_MS.outage);
    const sentInOutage = stream.sent - sentBeforeOutage;
    await vm.start();
    await stream.pushFor(PHASE_MS.after);
    const sent = stream.sent;

    const drainStart = Date.now();
    await eventually('an empty buffer', async () => ((await bufferStats(running)).depth === 0 ? true : undefined), 60_000, 250);
    const drainMs = Date.now() - drainStart;
    const stats = await bufferStats(running);
    const reported = await reportedFailures(running);

    const [series, ...others] = await exportSeries(vm, 'bufout_value', sent, 30_000);
    console.log(
      `[buffered outage] sent ${sent} readings (${sentInOutage} during the outage); the buffer held up to ${peak.depth}; ` +
        `drained ${drainMs} ms after the last one; redelivered ${stats.redelivered}; stored ${series.values.length}`,
    );

    expect(stream.refused).toBe(0);
    expect(others).toEqual([]);
    // The buffer held the stream while the store was down, and let it all go afterwards.
    expect(peak.depth).toBeGreaterThanOrEqual(sentInOutage * 0.9);
    expect(stats.accepted).toBe(sent);
    expect(stats.acknowledged).toBe(sent);
    // Nothing reported lost, nothing dead-lettered.
    expect(reported.failed).toEqual([]);
    expect(reported.dead).toBe(0);
    // Every reading once, with its value: none missing, none extra, none twice.
    const stored = series.timestamps.map((t, i) => [t - base, series.values[i]]).sort(([a], [b]) => a - b);
    expect(stored.length).toBe(sent);
    expect(stored).toEqual(Array.from({ length: sent }, (_, seq) => [seq, valueOf(seq)]));
  });
});
