/**
 * iot-buffer: the whole cycle (enqueued durably, delivered, acknowledged durably) of 1 KB
 * Node-RED messages through the local store and through the Redis Streams store; resident
 * memory with 1,000,000 messages queued; a restart with 1,000,000 queued; the node inside
 * Node-RED beside the core delay node in rate-limit queue mode (memory only); and lmdb, the
 * other candidate for the local store, on the same cycle, installed on demand into
 * .cache/bench-peers (it cannot be a dependency of the pack, see the README).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LocalStore } from '../nodes/buffer/local-store';
import { decodeMessage, encodeMessage } from '../nodes/buffer/message-codec';
import { BufferQueue, type QueueOptions } from '../nodes/buffer/queue';
import { RedisStore } from '../nodes/buffer/redis-store';
import type { QueueStore } from '../nodes/buffer/store';
import { startRuntime, type BenchNode } from './embedded-runtime';
import { format, gc, memoryInUse, sleep, type Figure } from './measure';

const CYCLE_MESSAGES = 300_000;
const REDIS_MESSAGES = 200_000;
const MILLION = 1_000_000;
const NODE_MESSAGES = 100_000;
const DELAY_MESSAGES = 3_000;
const HELD_IN_MEMORY = 200_000;
const FSYNC_WINDOW_MS = 5;
const LMDB_VERSION = '3.5.6';
const MB = 1024 * 1024;
/** The producers wait while this many messages are not yet accepted (as a flow waiting on done). */
const UNACCEPTED_MAX = 20_000;

/** A reading as the pack's flows carry it, about 1 KB once stored. */
function reading(i: number, devices = 1000): Record<string, unknown> {
  return {
    _msgid: `bench-${i.toString(36)}`,
    topic: `device-${i % devices}`,
    device: { id: `device-${i % devices}`, method: 'hmac', gateway: 'gw-1' },
    timestamp: 1_795_000_000_000 + i,
    payload: { seq: i, temperature: 21.5 + (i % 10) / 10, humidity: 40 + (i % 7), battery: 3.61, site: 'Lyon plant 2, line 4', note: 'n'.repeat(820) },
  };
}

const MESSAGE_BYTES = Buffer.byteLength(encodeMessage(reading(0)));
/** Stored bodies for the backend alone: 1,000 different encoded readings, used in turn. */
const BODIES = Array.from({ length: 1_000 }, (_, i) => encodeMessage(reading(i)));

/**
 * What a cycle covers: the store only (bodies already encoded, not decoded on delivery), or the
 * whole way a Node-RED message goes (encoded to JSON on the way in, decoded on the way out).
 */
type Work = 'store' | 'codec';
const bodyFor = (work: Work, i: number) => (work === 'codec' ? encodeMessage(reading(i)) : BODIES[i % BODIES.length]);

const cycleOptions: QueueOptions = {
  order: 'fifo',
  maxInFlight: 1_000,
  ratePerSecond: 0,
  batchSize: 1,
  batchWaitMs: 0,
  ackMode: 'settle',
  ackTimeoutMs: 60_000,
  maxAttempts: 0,
  retryDelayMs: 1_000,
  retryDelayMaxMs: 60_000,
  maxMessages: 0,
  maxBytes: 0,
  whenFull: 'refuse',
};

function residentBytes(): number {
  gc();
  return process.memoryUsage().rss;
}

/**
 * Messages per second through an opened store: each message accepted (durable), delivered to a
 * sink that answers on the next turn of the event loop, and settled (durable).
 */
async function cycle(store: QueueStore, count: number, work: Work): Promise<number> {
  const answers: string[] = [];
  const queue: BufferQueue = new BufferQueue(store, cycleOptions, {
    deliver(delivery) {
      if (work === 'codec') decodeMessage(delivery.messages[0].body);
      if (answers.push(delivery.id) === 1) {
        setImmediate(() => {
          for (const id of answers.splice(0)) queue.settle(id, { ok: true });
        });
      }
    },
    deadLetter: () => undefined,
    changed: () => undefined,
  });
  queue.start();
  const started = process.hrtime.bigint();
  let next = 0;
  let accepted = 0;
  const feed = () => {
    const until = Math.min(count, next + 2_000, accepted + UNACCEPTED_MAX);
    for (; next < until; next++) {
      queue.accept(`device-${next % 1000}`, bodyFor(work, next), Date.now(), (err) => {
        if (err) throw err;
        accepted++;
      });
    }
    if (next < count) setImmediate(feed);
  };
  feed();
  // Done once every acknowledgement is durable (nothing left in flight).
  for (;;) {
    const stats = queue.stats();
    if (stats.acknowledged >= count && stats.inFlight === 0) break;
    await sleep(2);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await queue.close();
  return count / seconds;
}

/** Both cycles on fresh local stores: [store only, with the codec]. */
async function localCycles(): Promise<[number, number]> {
  const rates: number[] = [];
  for (const work of ['store', 'codec'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'iot-bench-buffer-'));
    try {
      const store = new LocalStore({ dir, fsyncWindowMs: FSYNC_WINDOW_MS, segmentBytes: 64 * MB });
      await store.open();
      rates.push(await cycle(store, CYCLE_MESSAGES, work));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return [rates[0], rates[1]];
}

function localFigure([store, codec]: [number, number]): Figure {
  return {
    name: `local store: messages per second enqueued, delivered and acknowledged (${format(MESSAGE_BYTES)}-byte messages, fsync within ${FSYNC_WINDOW_MS} ms, ${format(cycleOptions.maxInFlight as number)} in flight)`,
    value: store,
    unit: 'msg/s',
    goal: { op: '>=', value: 50_000 },
    note:
      `${format(CYCLE_MESSAGES)} messages, each stored and synced before it is accepted, read back and checksummed, its acknowledgement synced before its slot frees; ` +
      `with each Node-RED message also encoded to JSON on the way in and decoded on the way out: ${format(codec)} msg/s`,
  };
}

/** A million messages queued (delivery paused): resident memory, then a restart. */
async function benchLocalMillion(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'iot-bench-buffer-'));
  try {
    const store = new LocalStore({ dir, fsyncWindowMs: FSYNC_WINDOW_MS, segmentBytes: 64 * MB });
    const queue = new BufferQueue(store, cycleOptions, { deliver: () => undefined, deadLetter: () => undefined, changed: () => undefined });
    await store.open();
    queue.pause();
    const samples: Array<[number, number, number]> = [[0, residentBytes(), memoryInUse()]];
    const started = process.hrtime.bigint();
    for (let next = 0; next < MILLION; ) {
      const until = next + 5_000;
      const stored = new Promise<void>((resolve) => {
        let waiting = until - next;
        for (; next < until; next++) queue.accept(`device-${next % 1000}`, encodeMessage(reading(next)), Date.now(), () => --waiting === 0 && resolve());
      });
      await stored;
      if (next % 250_000 === 0) samples.push([next, residentBytes(), memoryInUse()]);
    }
    const enqueueRate = MILLION / (Number(process.hrtime.bigint() - started) / 1e9);
    const diskBytes = store.diskBytes;
    await queue.close();

    const restart = async (): Promise<number> => {
      const begun = process.hrtime.bigint();
      const reopened = new LocalStore({ dir, fsyncWindowMs: FSYNC_WINDOW_MS, segmentBytes: 64 * MB });
      const report = await reopened.open();
      const first = reopened.take(1);
      const ms = Number(process.hrtime.bigint() - begun) / 1e6;
      if (report.messages !== MILLION || first.length !== 1) throw new Error(`restart found ${report.messages} messages`);
      await reopened.close();
      return ms;
    };
    const restartMs = await restart();
    // As after a crash that lost the segment summaries: every segment scanned and checked.
    for (const file of readdirSync(dir)) if (file.endsWith('.sum')) rmSync(join(dir, file));
    const scanMs = await restart();

    const [, rss0, heap0] = samples[0];
    const [, rss1, heap1] = samples[1];
    const [, rssEnd, heapEnd] = samples[samples.length - 1];
    const mb = (bytes: number) => (bytes / MB).toFixed(1);
    return [
      {
        name: `local store: resident memory growth while ${format(MILLION)} messages are queued (${mb(diskBytes)} MB on disk)`,
        value: (rssEnd - rss1) / MB,
        unit: 'MB',
        goal: { op: '<=', value: 16 },
        note:
          `from ${format(samples[1][0])} to ${format(MILLION)} queued; RSS ${samples.map(([n, r]) => `${format(n)}: ${mb(r)} MB`).join(', ')}; ` +
          `heap and buffers ${mb(heap0)} → ${mb(heap1)} → ${mb(heapEnd)} MB (the first 250,000 include the allocator's warm-up: +${mb(rss1 - rss0)} MB); enqueued at ${format(enqueueRate)} msg/s`,
      },
      {
        name: `local store: restart with ${format(MILLION)} messages queued, until the first is ready to deliver`,
        value: restartMs / 1000,
        unit: 's',
        goal: { op: '<=', value: 5 },
        note: `segment summaries read, the newest segment scanned; with every summary lost (all ${mb(diskBytes)} MB scanned and checksummed): ${(scanMs / 1000).toFixed(2)} s`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- Redis ------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** REDIS_URL when set, else Debian's redis-server on a free port (appendonly, fsync everysec). */
async function redisServer(): Promise<{ url: string; stop(): void } | undefined> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: () => undefined };
  if (!existsSync('/usr/bin/redis-server')) return undefined;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'iot-bench-redis-'));
  const child: ChildProcess = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--loglevel', 'warning'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), done(true)));
      socket.once('error', () => done(false));
    });
    if (open) break;
    await sleep(50);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function benchRedisCycle(): Promise<Figure> {
  const name = 'Redis Streams store: messages per second enqueued, delivered and acknowledged (XADD, XREADGROUP, XACK+XDEL)';
  const server = await redisServer();
  if (!server) return { name, value: 0, unit: 'msg/s', goal: { op: '>=', value: 20_000 }, note: 'not measured: install redis-server or set REDIS_URL' };
  try {
    const store = new RedisStore({ url: server.url, stream: 'iot-bench', group: 'bench', consumer: 'bench', maxLength: 0, whenFull: 'refuse', claimIdleMs: 60_000, prefetch: 2_000 });
    // Each store waits for its own connection (on a loaded machine the first cycle outlasts any shared deadline).
    const connected = async (s: RedisStore) => {
      const ready = Date.now();
      const opened = s.open();
      while (!s.isConnected && Date.now() - ready < 10_000) await sleep(20);
      await opened;
      return s;
    };
    const rate = await cycle(await connected(store), REDIS_MESSAGES, 'store');
    const withCodec = await cycle(await connected(new RedisStore({ url: server.url, stream: 'iot-bench-codec', group: 'bench', consumer: 'bench', maxLength: 0, whenFull: 'refuse', claimIdleMs: 60_000, prefetch: 2_000 })), REDIS_MESSAGES, 'codec');
    return {
      name,
      value: rate,
      unit: 'msg/s',
      goal: { op: '>=', value: 20_000 },
      note: `${format(REDIS_MESSAGES)} messages of ${format(MESSAGE_BYTES)} bytes, one consumer, Debian's redis-server 7 with appendonly (fsync every second); with the JSON encoding and decoding: ${format(withCodec)} msg/s`,
    };
  } finally {
    server.stop();
  }
}

// --- inside Node-RED ----------------------------------------------------------------------------

/** Waits until a node has received `count` messages. */
function received(node: BenchNode, count: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => node.on('input', () => ++seen === count && resolve()));
}

/** Feeds messages a few thousand per turn of the event loop, as traffic arrives. */
async function feedNode(node: BenchNode, count: number, make: (i: number) => object): Promise<void> {
  for (let i = 0; i < count; ) {
    const until = Math.min(count, i + 2_000);
    for (; i < until; i++) node.receive(make(i));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * A closed-loop producer: feeds `count` messages to a buffer, at most UNACCEPTED_MAX between it and
 * their acknowledgement (as a flow waits on done), and returns acknowledged messages per second.
 */
async function closedLoop(buffer: BenchNode, acked: () => number, count: number, make: (i: number) => object, check: () => void = () => undefined): Promise<number> {
  const base = acked();
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; ) {
    check();
    if (i - (acked() - base) >= UNACCEPTED_MAX) {
      await sleep(1);
      continue;
    }
    const until = Math.min(count, i + 2_000);
    for (; i < until; i++) buffer.receive(make(i));
    await new Promise((resolve) => setImmediate(resolve));
  }
  while (acked() - base < count) {
    check();
    await sleep(1);
  }
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function benchNodes(): Promise<Figure[]> {
  const flow = [
    { id: 'bench.tab', type: 'tab', label: 'bench' },
    {
      id: 'bench.buffer',
      type: 'iot-buffer',
      z: 'bench.tab',
      fsyncWindow: String(FSYNC_WINDOW_MS),
      maxInFlight: '1000',
      maxMessages: '0',
      maxSize: '0',
      wires: [['bench.sink'], [], ['bench.replies'], ['bench.refused']],
    },
    { id: 'bench.refused', type: 'junction', z: 'bench.tab', wires: [] },
    // The sink: a change node; a Complete node scoped to it acknowledges, as users wire it.
    { id: 'bench.sink', type: 'change', z: 'bench.tab', rules: [{ t: 'set', p: 'written', pt: 'msg', to: 'true', tot: 'bool' }], wires: [[]] },
    { id: 'bench.written', type: 'complete', z: 'bench.tab', scope: ['bench.sink'], uncaught: false, wires: [['bench.buffer', 'bench.acks']] },
    { id: 'bench.acks', type: 'junction', z: 'bench.tab', wires: [] },
    { id: 'bench.replies', type: 'junction', z: 'bench.tab', wires: [] },
    { id: 'bench.delay', type: 'delay', z: 'bench.tab', pauseType: 'rate', timeout: '5', timeoutUnits: 'seconds', rate: '1000000', nbRateUnits: '1', rateUnits: 'second', randomFirst: '1', randomLast: '5', randomUnits: 'seconds', drop: false, allowrate: false, outputs: 1, wires: [['bench.delayed']] },
    { id: 'bench.delayed', type: 'junction', z: 'bench.tab', wires: [] },
    { id: 'bench.held', type: 'delay', z: 'bench.tab', pauseType: 'rate', timeout: '5', timeoutUnits: 'seconds', rate: '1', nbRateUnits: '1', rateUnits: 'hour', randomFirst: '1', randomLast: '5', randomUnits: 'seconds', drop: false, allowrate: false, outputs: 1, wires: [[]] },
  ];
  const runtime = await startRuntime(flow);
  try {
    const buffer = runtime.node('bench.buffer');
    let refused: unknown;
    runtime.node('bench.refused').on('input', (msg) => (refused ??= (msg as { error?: unknown }).error));
    let acks = 0;
    runtime.node('bench.acks').on('input', () => acks++);
    const check = () => {
      if (refused !== undefined) throw new Error(`the buffer refused a message: ${JSON.stringify(refused)}`);
    };
    const run = (count: number, from: number) => closedLoop(buffer, () => acks, count, (i) => reading(from + i), check);
    await run(20_000, 0);
    await sleep(200);
    const bufferRate = await run(NODE_MESSAGES, 20_000);

    const delayed = received(runtime.node('bench.delayed'), DELAY_MESSAGES);
    const delayStarted = process.hrtime.bigint();
    await feedNode(runtime.node('bench.delay'), DELAY_MESSAGES, reading);
    await delayed;
    const delayRate = DELAY_MESSAGES / (Number(process.hrtime.bigint() - delayStarted) / 1e9);

    // Memory for messages waiting: the delay node holds them in the heap, the buffer on disk.
    // Each measured on its own, once every message is in (for the buffer: durably accepted).
    let answer: ((stats: { depth: number; accepted: number }) => void) | undefined;
    runtime.node('bench.replies').on('input', (msg) => answer?.((msg as { payload: { depth: number; accepted: number } }).payload));
    const control = (command: string) =>
      new Promise<{ depth: number; accepted: number }>((resolve) => {
        answer = resolve;
        buffer.receive({ control: command });
      });
    const acceptedBefore = (await control('pause')).accepted;
    const bufferBefore = memoryInUse();
    // As fast as the disk takes them: each chunk once the previous one is stored.
    for (let fed = 0; fed < HELD_IN_MEMORY; ) {
      await feedNode(buffer, 2_000, (i) => reading(fed + i));
      fed += 2_000;
      while ((await control('status')).accepted - acceptedBefore < fed) {
        check();
        await sleep(1);
      }
    }
    const bufferHeld = memoryInUse() - bufferBefore;
    const delayBefore = memoryInUse();
    await feedNode(runtime.node('bench.held'), HELD_IN_MEMORY, reading);
    await sleep(200);
    const delayHeld = memoryInUse() - delayBefore;

    return [
      {
        name: `iot-buffer node in Node-RED: messages per second stored, delivered, acknowledged by a Complete node (${format(MESSAGE_BYTES)}-byte messages)`,
        value: bufferRate,
        unit: 'msg/s',
        note:
          `core delay node, rate-limit queue mode (memory only) at its highest rate, on the same messages: ${format(delayRate)} msg/s (it releases one message per timer tick); ratio ${(bufferRate / delayRate).toFixed(1)}. ` +
          `Memory for ${format(HELD_IN_MEMORY)} waiting messages: delay node +${(delayHeld / MB).toFixed(0)} MB of heap (${format(delayHeld / HELD_IN_MEMORY)} bytes each), iot-buffer +${(bufferHeld / MB).toFixed(1)} MB`,
      },
    ];
  } finally {
    await runtime.stop();
  }
}

// --- the window ----------------------------------------------------------------------------------

/**
 * A batching sink for the window bench, loaded into the bench runtime as a user's own node: it
 * behaves as the pack's time-series writer does with its sink-side changes (issue 13): it
 * announces its capacity (batch size times requests in flight) to the buffer, gathers messages
 * into batches, writes a batch when it is full, when a delivery says it is the last for now, or
 * after a short linger, with at most `requests` writes at a time, each taking `writeMs`, and
 * settles every message of a batch once it is written.
 */
function batchSinkSource(): string {
  const delivery = JSON.stringify(resolve(__dirname, '..', 'nodes', 'shared', 'delivery.js'));
  return `module.exports = function (RED) {
  const { announceCapacity, deliveryOf, settleDelivery } = require(${delivery});
  RED.nodes.registerType('bench-batch-sink', function (def) {
    RED.nodes.createNode(this, def);
    const node = this;
    const batchSize = Number(def.batchSize), requests = Number(def.requests), writeMs = Number(def.writeMs), lingerMs = Number(def.lingerMs);
    let batch = [];
    const ready = [];
    let writing = 0;
    let linger;
    node.batches = 0;
    function write() {
      while (writing < requests && ready.length > 0) {
        const written = ready.shift();
        writing++;
        setTimeout(() => {
          writing--;
          node.batches++;
          for (const [msg, done] of written) { settleDelivery(RED, msg, { ok: true }); done(); }
          write();
        }, writeMs);
      }
    }
    function cut() {
      if (linger) clearTimeout(linger);
      linger = undefined;
      if (batch.length === 0) return;
      ready.push(batch);
      batch = [];
      write();
    }
    node.on('input', (msg, send, done) => {
      announceCapacity(RED, msg, node.id, batchSize * requests);
      batch.push([msg, done]);
      const token = deliveryOf(msg);
      if (batch.length >= batchSize || (token && token.last)) cut();
      else if (!linger) linger = setTimeout(cut, lingerMs);
    });
  });
};
`;
}

const BATCH_SINK_HTML = `<script type="text/javascript">RED.nodes.registerType('bench-batch-sink', { category: 'function', defaults: {}, inputs: 1, outputs: 0 });</script>\n`;

interface WindowCase {
  sink: 'complete' | 'batching';
  window: string;
  order: 'fifo' | 'key';
  devices: number;
}

/** Messages per second through one buffer setting, in a runtime of its own; and batches written. */
async function windowRun(c: WindowCase, count: number): Promise<{ rate: number; perBatch: number }> {
  const sink =
    c.sink === 'complete'
      ? [
          { id: 'w.sink', type: 'change', z: 'w.tab', rules: [{ t: 'set', p: 'written', pt: 'msg', to: 'true', tot: 'bool' }], wires: [['w.acks']] },
          { id: 'w.written', type: 'complete', z: 'w.tab', scope: ['w.sink'], uncaught: false, wires: [['w.buffer']] },
        ]
      : [
          { id: 'w.sink', type: 'bench-batch-sink', z: 'w.tab', batchSize: '5000', requests: '4', writeMs: '2', lingerMs: '5', wires: [] },
          { id: 'w.written', type: 'complete', z: 'w.tab', scope: ['w.sink'], uncaught: false, wires: [['w.acks']] },
        ];
  const flow = [
    { id: 'w.tab', type: 'tab', label: 'window' },
    {
      id: 'w.buffer',
      type: 'iot-buffer',
      z: 'w.tab',
      fsyncWindow: String(FSYNC_WINDOW_MS),
      order: c.order,
      maxInFlight: c.window,
      maxMessages: '0',
      maxSize: '0',
      wires: [['w.sink'], [], [], ['w.refused']],
    },
    { id: 'w.refused', type: 'junction', z: 'w.tab', wires: [] },
    { id: 'w.acks', type: 'junction', z: 'w.tab', wires: [] },
    ...sink,
  ];
  const runtime = await startRuntime(flow, { 'bench-batch-sink.js': batchSinkSource(), 'bench-batch-sink.html': BATCH_SINK_HTML });
  try {
    const buffer = runtime.node('w.buffer');
    let acks = 0;
    runtime.node('w.acks').on('input', () => acks++);
    runtime.node('w.refused').on('input', (msg) => {
      throw new Error(`the buffer refused a message: ${JSON.stringify((msg as { error?: unknown }).error)}`);
    });
    const run = (n: number, from: number) => closedLoop(buffer, () => acks, n, (i) => reading(from + i, c.devices));
    await run(10_000, 0);
    const sinkNode = runtime.node('w.sink') as BenchNode & { batches?: number };
    const batchesBefore = sinkNode.batches ?? 0;
    const rate = await run(count, 10_000);
    return { rate, perBatch: c.sink === 'batching' ? count / Math.max(1, (sinkNode.batches ?? 0) - batchesBefore) : 0 };
  } finally {
    await runtime.stop();
  }
}

/**
 * The automatic window against the best fixed one, on the same flow: acknowledged by a Complete
 * node (no sink announces: the window adapts), and in front of a batching sink that announces
 * (5,000 points a batch, 4 writes at a time), FIFO and in order per device (200 devices). Every
 * setting runs twice, interleaved, and counts its better run: the machine is shared.
 */
async function benchWindow(): Promise<Figure[]> {
  const count = 60_000;
  const groups: Array<{ name: string; auto: WindowCase; fixed: WindowCase[] }> = [
    {
      name: 'acknowledged by a Complete node (no sink announces: the window adapts)',
      auto: { sink: 'complete', window: 'auto', order: 'fifo', devices: 1000 },
      fixed: ['100', '1000', '10000'].map((window) => ({ sink: 'complete', window, order: 'fifo', devices: 1000 })),
    },
    {
      name: 'in front of a batching sink that announces 20,000 (5,000 a batch, 4 writes of 2 ms at a time) and writes on last',
      auto: { sink: 'batching', window: 'auto', order: 'fifo', devices: 1000 },
      fixed: ['1000', '5000', '20000'].map((window) => ({ sink: 'batching', window, order: 'fifo', devices: 1000 })),
    },
    {
      name: 'the same sink, in order per device, 200 devices',
      auto: { sink: 'batching', window: 'auto', order: 'key', devices: 200 },
      fixed: ['200', '1000', '20000'].map((window) => ({ sink: 'batching', window, order: 'key', devices: 200 })),
    },
  ];
  const figures: Figure[] = [];
  for (const group of groups) {
    const cases = [group.auto, ...group.fixed];
    const best = new Map<WindowCase, { rate: number; perBatch: number }>();
    for (let round = 0; round < 2; round++) {
      for (const c of cases) {
        const result = await windowRun(c, count);
        if (!best.has(c) || result.rate > (best.get(c) as { rate: number }).rate) best.set(c, result);
      }
    }
    const auto = best.get(group.auto) as { rate: number; perBatch: number };
    const tuned = group.fixed.reduce((a, b) => ((best.get(a) as { rate: number }).rate >= (best.get(b) as { rate: number }).rate ? a : b));
    const tunedRate = (best.get(tuned) as { rate: number }).rate;
    const batches = auto.perBatch > 0 ? `, ${format(auto.perBatch)} messages per written batch` : '';
    figures.push({
      name: `iot-buffer in Node-RED, In flight auto against the best fixed window, ${group.name}: ratio`,
      value: auto.rate / tunedRate,
      unit: '',
      goal: { op: '>=', value: 0.8 },
      note: `auto: ${format(auto.rate)} msg/s${batches}; fixed ${group.fixed.map((c) => `${c.window}: ${format((best.get(c) as { rate: number }).rate)}`).join(', ')} msg/s; best ${tuned.window}; ${format(count)} messages a run, best of 2`,
    });
  }
  return figures;
}

// --- lmdb -------------------------------------------------------------------------------------

interface LmdbDatabase {
  put(key: number, value: Buffer): Promise<boolean>;
  remove(key: number): Promise<boolean>;
  getRange(options: { start?: number; limit?: number }): Iterable<{ key: number; value: Buffer }>;
  getCount(): number;
  close(): Promise<void>;
}
type LmdbOpen = (options: { path: string; encoding: 'binary'; compression: boolean }) => LmdbDatabase;

/** lmdb from .cache/bench-peers/lmdb, installed there with npm when missing (like scripts/nr5.ts). */
function lmdbModule(): LmdbOpen | string {
  const dir = join(resolve(__dirname, '..', '..'), '.cache', 'bench-peers', 'lmdb');
  const manifest = join(dir, 'node_modules', 'lmdb', 'package.json');
  const installed = existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version : undefined;
  if (installed !== LMDB_VERSION) {
    console.log(`[bench buffer] installing lmdb ${LMDB_VERSION} into ${dir} (for comparison only)`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'bench-peer-lmdb', private: true, dependencies: { lmdb: LMDB_VERSION } }, null, 2)}\n`);
    const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
    if (npm.status !== 0) return `npm install lmdb@${LMDB_VERSION} failed: ${npm.stderr.trim().split('\n').pop()}`;
  }
  return (createRequire(join(dir, 'package.json'))('lmdb') as { open: LmdbOpen }).open;
}

/** The same cycle on lmdb: put (resolved once synced), read in key order, remove (synced). */
async function lmdbCycle(open: LmdbOpen, count: number, work: Work): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'iot-bench-lmdb-'));
  const db = open({ path: dir, encoding: 'binary', compression: false });
  try {
    const started = process.hrtime.bigint();
    let accepted = 0;
    let delivered = 0;
    const removals: Array<Promise<boolean>> = [];
    let next = 0;
    await new Promise<void>((finish) => {
      const turn = () => {
        const until = Math.min(count, next + 2_000, accepted + UNACCEPTED_MAX);
        for (; next < until; next++) void db.put(next, Buffer.from(bodyFor(work, next))).then(() => accepted++);
        // Deliver what is accepted, in order, at most 1,000 in flight, acknowledged on the next turn.
        const ready = Math.min(accepted, delivered + 1_000);
        if (ready > delivered) {
          for (const { key, value } of db.getRange({ start: delivered, limit: ready - delivered })) {
            if (work === 'codec') decodeMessage(value);
            removals.push(db.remove(key));
          }
          delivered = ready;
        }
        if (delivered >= count) finish();
        else setImmediate(turn);
      };
      turn();
    });
    await Promise.all(removals);
    return count / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function lmdbMillion(open: LmdbOpen): Promise<{ rssGrowth: number; restartMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'iot-bench-lmdb-'));
  try {
    let db = open({ path: dir, encoding: 'binary', compression: false });
    const before = residentBytes();
    for (let next = 0; next < MILLION; ) {
      const until = next + 5_000;
      const writes: Array<Promise<boolean>> = [];
      for (; next < until; next++) writes.push(db.put(next, Buffer.from(encodeMessage(reading(next)))));
      await Promise.all(writes);
    }
    const rssGrowth = residentBytes() - before;
    await db.close();
    const begun = process.hrtime.bigint();
    db = open({ path: dir, encoding: 'binary', compression: false });
    const first = [...db.getRange({ limit: 1 })];
    const restartMs = Number(process.hrtime.bigint() - begun) / 1e6;
    if (first.length !== 1) throw new Error('lmdb lost its messages');
    await db.close();
    return { rssGrowth, restartMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchLmdb([localStore, localCodec]: [number, number]): Promise<Figure[]> {
  const open = lmdbModule();
  const name = `lmdb ${LMDB_VERSION} (the other candidate): messages per second on the same cycle`;
  if (typeof open === 'string') return [{ name, value: 0, unit: 'msg/s', note: `not measured: ${open}` }];
  const rate = await lmdbCycle(open, CYCLE_MESSAGES, 'store');
  const withCodec = await lmdbCycle(open, CYCLE_MESSAGES, 'codec');
  const million = await lmdbMillion(open);
  return [
    {
      name,
      value: rate,
      unit: 'msg/s',
      note:
        `put resolved once synced (its default overlappingSync), read in key order, removed; ${format(CYCLE_MESSAGES)} messages; with the JSON codec: ${format(withCodec)} msg/s. ` +
        `Segmented log over lmdb: ${(localStore / rate).toFixed(2)} (store only), ${(localCodec / withCodec).toFixed(2)} (with the codec). ` +
        `With ${format(MILLION)} queued: resident memory +${(million.rssGrowth / MB).toFixed(0)} MB (its memory map), reopened and first message read in ${(million.restartMs / 1000).toFixed(2)} s`,
    },
  ];
}

export async function benchBuffer(): Promise<Figure[]> {
  const local = await localCycles();
  const figures = [localFigure(local), ...(await benchLocalMillion()), await benchRedisCycle(), ...(await benchNodes()), ...(await benchWindow())];
  figures.push(...(await benchLmdb(local)));
  return figures;
}
