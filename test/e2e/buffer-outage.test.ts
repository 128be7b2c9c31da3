/**
 * iot-buffer in a real Node-RED in front of an HTTP sink that goes down for 30 seconds while
 * readings keep arriving (1,000 a second, 4 KB each): the queue grows on disk, Node-RED's
 * memory stays flat, and once the sink is back everything drains, in order.
 *
 * Node-RED runs with its JavaScript heap capped below what the outage queues: a queue held in
 * memory could not survive it, and with a tight heap the garbage collector runs often enough for
 * the resident memory to show a trend, if there is one.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferEndpoints, bufferStats, deployBufferFlow, pushReadings, type BufferStats, type FlowNode } from '../support/buffer-flow';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually, sleep } from '../support/wait';

const RATE = 1_000;
const TICK_MS = 100;
const OUTAGE_MS = 30_000;
const BEFORE_MS = 5_000;
const AFTER_MS = 3_000;
const PADDING = 'x'.repeat(4_000);
const HEAP_CAP_MB = 96;

const flow: FlowNode[] = [
  { id: 'outage.tab', type: 'tab', label: 'buffer outage' },
  ...bufferEndpoints('outage', 'outage.buffer'),
  {
    id: 'outage.buffer',
    type: 'iot-buffer',
    z: 'outage.tab',
    backend: 'local',
    fsyncWindow: '5',
    order: 'fifo',
    // One batch in flight at a time (batches fill long before they wait 2 s): the sink sees the
    // readings in order, retries included.
    maxInFlight: '500',
    batchSize: '500',
    batchWait: '2000',
    ackTimeout: '10',
    maxAttempts: '0',
    retryDelay: '0.25',
    retryDelayMax: '1',
    maxMessages: '0',
    maxSize: '0',
    wires: [['outage.ids'], [], ['outage.answer'], ['outage.refused']],
  },
  { id: 'outage.ids', type: 'function', z: 'outage.tab', func: 'msg.payload = msg.payload.map((p) => [p.id, p.arrival]);\nreturn msg;', outputs: 1, wires: [['outage.write']] },
  { id: 'outage.write', type: 'http request', z: 'outage.tab', method: 'POST', ret: 'txt', paytoqs: 'ignore', url: '${SINK_URL}', tls: '', persist: false, proxy: '', insecureHTTPParser: false, authType: '', senderr: false, headers: [], wires: [['outage.check']] },
  { id: 'outage.check', type: 'function', z: 'outage.tab', func: 'if (msg.statusCode !== 200) throw new Error(`sink answered ${msg.statusCode}`);\nreturn msg;', outputs: 1, wires: [[]] },
  { id: 'outage.written', type: 'complete', z: 'outage.tab', scope: ['outage.check'], uncaught: false, wires: [['outage.buffer']] },
  { id: 'outage.failed', type: 'catch', z: 'outage.tab', scope: ['outage.check'], uncaught: false, wires: [['outage.buffer']] },
];

/** The sink: records the readings it is sent, in order; can be taken down and brought back. */
class Sink {
  /** [id, arrival] of every reading received. */
  readonly received: Array<[number, number]> = [];
  private server: Server | undefined;
  port = 0;

  async up(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push(...(JSON.parse(Buffer.concat(chunks).toString()) as Array<[number, number]>));
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}

const sink = new Sink();
let node: NodeRedProcess | undefined;
afterAll(async () => {
  await node?.dispose();
  await sink.down();
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
}

describe('iot-buffer during a 30 s sink outage', () => {
  it('grows on disk with flat memory while the sink is down, then drains everything in order', async () => {
    await sink.up();
    node = await NodeRedProcess.start({ env: { SINK_URL: `http://127.0.0.1:${sink.port}/write`, NODE_OPTIONS: `--max-old-space-size=${HEAP_CAP_MB}` } });
    await deployBufferFlow(node, flow);
    const running = node;
    const stats = (): Promise<BufferStats> => bufferStats(running);
    const pid = node.child.pid as number;

    let next = 0;
    let refused = 0;
    const pending: Array<Promise<void>> = [];
    // One POST per tick, not waiting for the previous one: readings arrive at the rate the
    // devices send them, however Node-RED keeps up.
    const push = () => {
      const count = (RATE * TICK_MS) / 1000;
      const readings = Array.from({ length: count }, () => ({ id: next++, padding: PADDING }));
      pending.push(pushReadings(running, readings).then((status) => void (status !== 202 && refused++)));
    };
    const pushFor = async (ms: number, sample?: () => void) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        push();
        sample?.();
        await sleep(TICK_MS);
      }
      await Promise.all(pending.splice(0));
    };

    await pushFor(BEFORE_MS);
    await eventually('the sink caught up before the outage', () => (sink.received.length >= next - 2 * RATE ? true : undefined), 20_000);
    await sink.down();
    const outageStart = await stats();
    const rssSamples: number[] = [residentBytes(pid)];
    const pushedBeforeOutage = next;
    await pushFor(OUTAGE_MS, () => rssSamples.push(residentBytes(pid)));
    const outageEnd = await stats();
    await sink.up();
    await pushFor(AFTER_MS);
    const total = next;

    await eventually('every reading at the sink', () => (new Set(sink.received.map(([id]) => id)).size >= total ? true : undefined), 90_000, 250);
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined), 20_000);

    const queuedInOutage = next - pushedBeforeOutage - AFTER_MS * (RATE / 1000);
    const grewOnDisk = (outageEnd.diskBytes ?? 0) - (outageStart.diskBytes ?? 0);
    // The garbage collector lets the heap swell and shrink; flat means no trend: compare the
    // first and the last fifth of the outage.
    const fifth = Math.floor(rssSamples.length / 5);
    const rssStart = median(rssSamples.slice(0, fifth));
    const rssEnd = median(rssSamples.slice(-fifth));
    const rssGrowth = rssEnd - rssStart;
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    console.log(
      `[buffer outage] pushed ${total}, queued during the outage ${outageEnd.depth} (${mb(grewOnDisk)} MB more on disk); ` +
        `Node-RED (heap capped at ${HEAP_CAP_MB} MB): resident memory ${mb(rssStart)} MB early in the outage, ${mb(rssEnd)} MB at its end (peak ${mb(Math.max(...rssSamples))} MB)`,
    );
    expect(refused).toBe(0);
    // Everything the outage held back was kept, on disk, more than the heap could ever hold.
    expect(outageEnd.depth).toBeGreaterThanOrEqual(queuedInOutage * 0.95);
    expect(grewOnDisk).toBeGreaterThan(queuedInOutage * PADDING.length * 0.9);
    expect(grewOnDisk).toBeGreaterThan(HEAP_CAP_MB * 1e6);
    // Held in memory, those messages would add more than their size on disk.
    expect(rssGrowth).toBeLessThan(grewOnDisk / 5);
    // Everything drained, and in order: the first time the sink saw each reading, in the order
    // the buffer received them.
    const firstSeen: number[] = [];
    const seen = new Set<number>();
    for (const [id, arrival] of sink.received) {
      if (!seen.has(id)) firstSeen.push(arrival);
      seen.add(id);
    }
    expect(seen.size).toBe(total);
    expect(firstSeen).toEqual(Array.from({ length: total }, (_, i) => i));
  });
});
