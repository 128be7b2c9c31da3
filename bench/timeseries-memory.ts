/**
 * iot-timeseries-out's memory, in one Node-RED process: what each message costs while it waits
 * for the database (as many as an automatic buffer window hands on: batch size × requests in
 * flight), and the resident memory over a sustained stream.
 *
 * The database is a local HTTP server that takes the write requests and answers them when told
 * (waiting) or at once (sustained), so that only the writer's holding is measured, not a server's.
 *
 *   node --expose-gc dist/bench/timeseries-memory.js
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRuntime, type BenchNode } from './embedded-runtime';
import { format, memoryInUse, type Figure } from './measure';

const WAITING = 20_000;
const SUSTAINED_RATE = 10_000;
const SUSTAINED_SECONDS = 60;
const DEVICES = 1000;

/** A write endpoint that answers 204, at once or when released. */
class HoldingServer {
  private held: ServerResponse[] = [];
  holding = false;
  requests = 0;
  private constructor(private readonly server: Server) {}

  static async start(): Promise<HoldingServer> {
    let self: HoldingServer | undefined;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        const s = self as HoldingServer;
        s.requests++;
        if (s.holding) s.held.push(res);
        else res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new HoldingServer(server);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get waiting(): number {
    return this.held.length;
  }

  release(): void {
    this.holding = false;
    for (const res of this.held.splice(0)) res.writeHead(204).end();
  }

  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const base = Date.now() - 3_600_000;

/** A reading as the Buffered flow delivers it: the device's reading, its identity, the queue's token. */
function reading(i: number): Record<string, unknown> {
  const device = `dev-${i % DEVICES}`;
  return {
    topic: `devices/${device}/readings`,
    payload: { temperature: 20 + (i % 100) / 10, battery: 3.3 + (i % 7) / 100, timestamp: base + i },
    device: { id: device, method: 'apiKey', meta: { site: 'plant-1' } },
    timestamp: base + i,
    _delivery: { source: 'bench.buffer', id: String(i) },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export async function benchTimeseriesMemory(): Promise<Figure[]> {
  const db = await HoldingServer.start();
  const runtime = await startRuntime([
    { id: 'bench.tab', type: 'tab', label: 'bench' },
    { id: 'bench.store', type: 'iot-influxdb', url: db.url, version: 'v2', org: 'iot', bucket: 'bench', precision: 'ms', gzip: true, timeout: '60' },
    { id: 'bench.writer', type: 'iot-timeseries-out', z: 'bench.tab', store: 'bench.store', measurement: 'readings', measurementType: 'str', wires: [[], []] },
  ]);
  const writer = runtime.node('bench.writer') as BenchNode & { _complete: (msg: object, err?: unknown) => void };
  let completed = 0;
  const complete = writer._complete;
  writer._complete = function (this: BenchNode, msg: object, err?: unknown) {
    completed++;
    complete.call(this, msg, err);
  };
  try {
    // Warm up: the code optimised and the pools allocated, as in a running flow.
    for (let i = 0; i < WAITING; i++) writer.receive(reading(i));
    await until('the warm-up written', () => completed === WAITING);

    const before = memoryInUse();
    const messages = Array.from({ length: WAITING }, (_, i) => reading(WAITING + i));
    const messagesAlone = memoryInUse() - before;
    db.holding = true;
    for (const msg of messages) writer.receive(msg);
    await until('every request slot taken', () => db.waiting === 4);
    await sleep(200);
    const held = memoryInUse() - before - messagesAlone;
    db.release();
    await until('the waiting messages written', () => completed === 2 * WAITING);
    messages.length = 0;
    const after = memoryInUse() - before;

    // Sustained: SUSTAINED_RATE readings a second for SUSTAINED_SECONDS, answered at once.
    const samples: number[] = [];
    let fed = 2 * WAITING;
    const started = Date.now();
    let nextSample = started;
    while (Date.now() - started < SUSTAINED_SECONDS * 1000) {
      const due = 2 * WAITING + Math.floor(((Date.now() - started) * SUSTAINED_RATE) / 1000);
      while (fed < due) writer.receive(reading(fed++));
      if (Date.now() >= nextSample) {
        samples.push(process.memoryUsage().rss);
        nextSample += 5000;
      }
      await sleep(10);
    }
    await until('the stream written', () => completed === fed);
    const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;
    const firstHalf = Math.max(...samples.slice(0, samples.length / 2));
    const secondHalf = Math.max(...samples.slice(samples.length / 2));
    return [
      {
        name: `timeseries-out: memory held per message waiting for the database (${format(WAITING)} waiting: batch size × requests in flight)`,
        value: held / WAITING,
        unit: 'bytes/message',
        note: `beyond the message itself (${format(messagesAlone / WAITING)} bytes for this reading); ${format(mb(after))} MB left once written`,
      },
      {
        name: `timeseries-out: resident memory over ${SUSTAINED_SECONDS} s at ${format(SUSTAINED_RATE)} readings/s, highest of the second half against the first`,
        value: mb(secondHalf - firstHalf),
        unit: 'MB',
        note: `RSS every 5 s: ${samples.map((s) => format(mb(s))).join(', ')} MB; ${format(db.requests)} requests`,
      },
    ];
  } finally {
    await runtime.stop();
    await db.close();
  }
}

if (require.main === module) {
  benchTimeseriesMemory().then(
    (figures) => {
      for (const f of figures) console.log(`${f.name}: ${format(f.value)} ${f.unit} (${f.note ?? ''})`);
      process.exit(0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
