/**
 * The queue's flow control (nodes/buffer/queue.ts) over an in-memory store, on fake timers:
 * order (FIFO and per key), the in-flight window, redelivery after a timeout and after a failure
 * with backoff, dead letters, the first settlement counting, the drain rate, batches, capacity
 * (refuse, drop oldest), pause, resume, purge and acknowledge-on-send.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrashRecord } from '../../nodes/buffer/crash-record';
import { BufferQueue, type Delivery, type QueueOptions } from '../../nodes/buffer/queue';
import { StoreError, type QueueStore, type StoreCallback, type StoredMessage } from '../../nodes/buffer/store';

class TestMessage implements StoredMessage {
  constructor(
    readonly seq: number,
    readonly key: string,
    readonly acceptedAt: number,
    readonly body: Buffer,
    public attempts = 0,
  ) {}
  get size(): number {
    return this.body.length + 10;
  }
  get ref(): string {
    return String(this.seq);
  }
}

/** A store in memory: durable a turn of the event loop after each write. */
class MemoryStore implements QueueStore<TestMessage> {
  readonly kind = 'memory';
  onReadable = () => undefined as void;
  onProblem = () => undefined as void;
  waiting: TestMessage[] = [];
  live = new Map<number, TestMessage>();
  attemptsNoted: Array<[number, number]> = [];
  flushes = 0;
  private seq = 0;

  get messages() {
    return this.live.size;
  }
  get bytes() {
    return [...this.live.values()].reduce((n, m) => n + m.size, 0);
  }
  async open() {
    return { messages: 0, bytes: 0, problems: [] };
  }
  sizeOf(_key: string, body: Buffer) {
    return body.length + 10;
  }
  append(key: string, body: Buffer, acceptedAt: number, done: StoreCallback) {
    const m = new TestMessage(++this.seq, key, acceptedAt, body);
    this.live.set(m.seq, m);
    setImmediate(() => {
      this.waiting.push(m);
      done(null);
      this.onReadable();
    });
  }
  take(max: number) {
    return this.waiting.splice(0, max);
  }
  nextAcceptedAt() {
    return this.waiting[0]?.acceptedAt;
  }
  settle(messages: TestMessage[], done: StoreCallback) {
    for (const m of messages) this.live.delete(m.seq);
    setImmediate(() => done(null));
  }
  noteAttempt(m: TestMessage) {
    this.attemptsNoted.push([m.seq, m.attempts]);
  }
  purge(done: (err: StoreError | null, removed: number) => void) {
    const removed = this.live.size;
    this.live.clear();
    this.waiting = [];
    setImmediate(() => done(null, removed));
  }
  flush() {
    this.flushes++;
  }
  async close() {}
}

const defaults: QueueOptions = {
  order: 'fifo',
  maxInFlight: 10,
  ratePerSecond: 0,
  batchSize: 1,
  batchWaitMs: 0,
  ackMode: 'settle',
  ackTimeoutMs: 30_000,
  maxAttempts: 5,
  retryDelayMs: 1_000,
  retryDelayMaxMs: 60_000,
  maxMessages: 0,
  maxBytes: 0,
  whenFull: 'refuse',
};

interface DeadLetter {
  texts: string[];
  reason: string;
  attempts: number;
}

function setup(options: Partial<QueueOptions> = {}, crashes?: CrashRecord) {
  const store = new MemoryStore();
  const deliveries: Array<Delivery<TestMessage>> = [];
  const dead: DeadLetter[] = [];
  const queue = new BufferQueue(
    store,
    { ...defaults, ...options },
    {
      deliver: (d) => deliveries.push({ ...d, messages: [...d.messages] }),
      deadLetter: (messages, reason, attempts) => dead.push({ texts: messages.map((m) => m.body.toString()), reason, attempts }),
      changed: () => undefined,
    },
    crashes,
  );
  const accept = (text: string, key = 'k') =>
    new Promise<StoreError | null>((resolve) => {
      queue.accept(key, Buffer.from(text), Date.now(), resolve);
    });
  const texts = (from = 0) => deliveries.slice(from).map((d) => d.messages.map((m) => m.body.toString()).join('+'));
  return { store, queue, deliveries, dead, accept, texts };
}

/** Lets chains of (real) immediates finish. */
async function turns(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Lets pending work run, then the (fake) clock move on by ms. */
async function run(ms = 0): Promise<void> {
  await turns();
  if (ms === 0) return;
  await vi.advanceTimersByTimeAsync(ms);
  await turns();
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the buffer queue', () => {
  it('delivers in order, keeping at most maxInFlight messages delivered and unsettled', async () => {
    const { queue, deliveries, accept, texts } = setup({ maxInFlight: 2 });
    for (const t of ['a', 'b', 'c', 'd']) void accept(t);
    await run();
    expect(texts()).toEqual(['a', 'b']);
    expect(queue.stats()).toMatchObject({ depth: 4, inFlight: 2, delivered: 2 });
    expect(queue.settle(deliveries[0].id, { ok: true })).toBe(true);
    // The slot frees once the settlement is durable, not before.
    expect(queue.stats().inFlight).toBe(2);
    await run();
    expect(texts()).toEqual(['a', 'b', 'c']);
    expect(queue.stats()).toMatchObject({ depth: 3, inFlight: 2, acknowledged: 1 });
  });

  it('keeps order per key: one delivery per key at a time, other keys go past', async () => {
    const { queue, deliveries, accept, texts } = setup({ order: 'key' });
    for (const [t, k] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b'], ['a3', 'a'], ['c1', 'c'], ['b2', 'b']]) void accept(t, k);
    await run();
    expect(texts()).toEqual(['a1', 'b1', 'c1']);
    expect(queue.stats().heldBack).toBe(3);
    queue.settle(deliveries[1].id, { ok: true });
    await run();
    expect(texts(3)).toEqual(['b2']);
    queue.settle(deliveries[0].id, { ok: false, reason: 'slow device', retry: true });
    await run(1_000);
    expect(texts(4)).toEqual(['a1']);
    queue.settle(deliveries[4].id, { ok: true });
    await run();
    expect(texts(5)).toEqual(['a2']);
    queue.settle(deliveries[5].id, { ok: true });
    await run();
    expect(texts(6)).toEqual(['a3']);
    expect(queue.stats().heldBack).toBe(0);
  });

  it('delivers again what is not acknowledged in time, counting attempts; a late ok still counts', async () => {
    const { queue, deliveries, accept, store } = setup({ ackTimeoutMs: 5_000 });
    void accept('a');
    await run();
    expect(deliveries.map((d) => d.attempt)).toEqual([1]);
    await run(4_999);
    expect(deliveries).toHaveLength(1);
    await run(1);
    expect(deliveries.map((d) => d.attempt)).toEqual([1, 2]);
    expect(deliveries[1].id).not.toBe(deliveries[0].id);
    expect(queue.stats()).toMatchObject({ delivered: 1, redelivered: 1 });
    expect(store.attemptsNoted).toEqual([[1, 1]]);
    expect(queue.settle(deliveries[0].id, { ok: true })).toBe(true);
    expect(queue.settle(deliveries[1].id, { ok: true })).toBe(false);
    await run(10_000);
    expect(deliveries).toHaveLength(2);
    expect(queue.stats()).toMatchObject({ depth: 0, inFlight: 0 });
  });

  it('retries a failure after a doubling delay, or after retryAfterMs when the sink says', async () => {
    const { queue, deliveries, accept } = setup({ retryDelayMs: 100, retryDelayMaxMs: 250 });
    void accept('a');
    await run();
    const failAndWait = async (expectedDelay: number, retryAfterMs?: number) => {
      const before = deliveries.length;
      queue.settle(deliveries[before - 1].id, { ok: false, reason: 'down', retry: true, retryAfterMs });
      await run(expectedDelay - 1);
      expect(deliveries).toHaveLength(before);
      await run(1);
      expect(deliveries).toHaveLength(before + 1);
    };
    await failAndWait(100);
    await failAndWait(200);
    await failAndWait(250);
    await failAndWait(1_500, 1_500);
    expect(deliveries.map((d) => d.attempt)).toEqual([1, 2, 3, 4, 5]);
  });

  it('in FIFO order keeps a failed delivery in its place: nothing newer goes first, retries go oldest first', async () => {
    const { queue, deliveries, accept, texts } = setup({ maxInFlight: 3, retryDelayMs: 100, retryDelayMaxMs: 10_000 });
    for (const t of ['a', 'b', 'c', 'd']) void accept(t);
    await run();
    expect(texts()).toEqual(['a', 'b', 'c']);
    // a fails twice (its next delay 200 ms), then b once (100 ms): b must still wait for a.
    queue.settle(deliveries[0].id, { ok: false, reason: 'down', retry: true });
    await run(100);
    queue.settle(deliveries[3].id, { ok: false, reason: 'down', retry: true });
    queue.settle(deliveries[1].id, { ok: false, reason: 'down', retry: true });
    queue.settle(deliveries[2].id, { ok: true });
    await run(150);
    expect(texts(4)).toEqual([]);
    await run(50);
    // Once the failed ones went again, in order, newer ones follow.
    expect(texts(4)).toEqual(['a', 'b', 'd']);
  });

  it('sends to the dead letters after the attempt limit, with the reason', async () => {
    const { queue, deliveries, dead, accept } = setup({ maxAttempts: 2, retryDelayMs: 10 });
    void accept('poison');
    await run();
    queue.settle(deliveries[0].id, { ok: false, reason: 'HTTP 500', retry: true });
    await run(10);
    queue.settle(deliveries[1].id, { ok: false, reason: 'HTTP 500', retry: true });
    await run();
    expect(dead).toEqual([{ texts: ['poison'], reason: 'HTTP 500 (after 2 attempts)', attempts: 2 }]);
    expect(queue.stats()).toMatchObject({ depth: 0, deadLettered: 1, inFlight: 0 });
  });

  it('sends a failure that will never succeed straight to the dead letters', async () => {
    const { queue, deliveries, dead, accept } = setup();
    void accept('invalid record');
    await run();
    queue.settle(deliveries[0].id, { ok: false, reason: 'FIELD_INTEGRITY_EXCEPTION', retry: false });
    await run();
    expect(dead).toEqual([{ texts: ['invalid record'], reason: 'failed for good: FIELD_INTEGRITY_EXCEPTION', attempts: 1 }]);
    expect(deliveries).toHaveLength(1);
  });

  it('counts the first settlement of a delivery only', async () => {
    const { queue, deliveries, dead, accept } = setup({ retryDelayMs: 1_000 });
    void accept('a');
    void accept('b');
    await run();
    expect(queue.settle(deliveries[0].id, { ok: true })).toBe(true);
    expect(queue.settle(deliveries[0].id, { ok: false, reason: 'second sink failed', retry: false })).toBe(false);
    expect(queue.settle(deliveries[1].id, { ok: false, reason: 'x', retry: true })).toBe(true);
    expect(queue.settle(deliveries[1].id, { ok: true })).toBe(false);
    expect(queue.settle('unknown', { ok: true })).toBe(false);
    await run(1_000);
    expect(dead).toEqual([]);
    expect(deliveries.map((d) => d.messages[0].body.toString())).toEqual(['a', 'b', 'b']);
  });

  it('paces deliveries to the drain rate', async () => {
    const { deliveries, accept, queue } = setup({ ratePerSecond: 20, maxInFlight: 1000 });
    for (let i = 0; i < 100; i++) void accept(`m${i}`);
    await run();
    const first = deliveries.length;
    await run(1_000);
    expect(first).toBeLessThanOrEqual(1);
    expect(deliveries.length - first).toBeGreaterThanOrEqual(19);
    expect(deliveries.length - first).toBeLessThanOrEqual(21);
    for (const d of deliveries) queue.settle(d.id, { ok: true });
  });

  it('gathers batches of up to N, or what arrived within T ms', async () => {
    const { deliveries, accept, texts, queue } = setup({ batchSize: 3, batchWaitMs: 100 });
    void accept('a');
    void accept('b');
    await run(99);
    expect(deliveries).toHaveLength(0);
    await run(1);
    expect(texts()).toEqual(['a+b']);
    for (const t of ['c', 'd', 'e', 'f', 'g']) void accept(t);
    await run();
    expect(texts(1)).toEqual(['c+d+e']);
    await run(100);
    expect(texts(1)).toEqual(['c+d+e', 'f+g']);
    expect(queue.settle(deliveries[1].id, { ok: true })).toBe(true);
    await run();
    expect(queue.stats()).toMatchObject({ depth: 4, inFlight: 4, acknowledged: 3 });
  });

  it('refuses a message when full, with a clear code, and accepts again once there is room', async () => {
    const { queue, accept, deliveries } = setup({ maxMessages: 2 });
    expect(await accept('a')).toBeNull();
    expect(await accept('b')).toBeNull();
    const refused = await accept('c');
    expect(refused).toMatchObject({ code: 'queue_full', message: 'the queue is full (2 of 2 messages)' });
    expect(queue.stats()).toMatchObject({ depth: 2, refused: 1 });
    queue.settle(deliveries[0].id, { ok: true });
    await run();
    expect(await accept('c')).toBeNull();
  });

  it('refuses by size as well, and a message larger than the whole queue', async () => {
    const { accept } = setup({ maxBytes: 50 });
    expect(await accept('x'.repeat(20))).toBeNull();
    expect(await accept('x'.repeat(20))).toMatchObject({ code: 'queue_full' });
    expect(await accept('x'.repeat(60))).toMatchObject({ code: 'too_large' });
  });

  it('drops the oldest waiting message when full in drop-oldest mode, and counts it', async () => {
    const { queue, accept, texts, store } = setup({ maxMessages: 3, maxInFlight: 1, whenFull: 'drop-oldest' });
    for (const t of ['a', 'b', 'c']) await accept(t);
    expect(texts()).toEqual(['a']);
    expect(await accept('d')).toBeNull();
    expect(await accept('e')).toBeNull();
    expect(queue.stats()).toMatchObject({ dropped: 2, depth: 3 });
    expect([...store.live.values()].map((m) => m.body.toString())).toEqual(['a', 'd', 'e']);
  });

  it('still refuses in drop-oldest mode when every message is in flight', async () => {
    const { accept } = setup({ maxMessages: 1, whenFull: 'drop-oldest' });
    await accept('a');
    await run();
    expect(await accept('b')).toMatchObject({ code: 'queue_full', message: expect.stringContaining('every message in it is in flight') });
  });

  it('pauses, resumes and purges; late settlements of purged deliveries are ignored', async () => {
    const { queue, accept, deliveries } = setup({ maxInFlight: 2 });
    queue.pause();
    for (const t of ['a', 'b', 'c']) await accept(t);
    await run(1_000);
    expect(deliveries).toHaveLength(0);
    expect(queue.stats()).toMatchObject({ paused: true, depth: 3 });
    queue.resume();
    await run();
    expect(deliveries).toHaveLength(2);
    const removed = await new Promise<number>((resolve) => queue.purge((_err, n) => resolve(n)));
    expect(removed).toBe(3);
    expect(queue.settle(deliveries[0].id, { ok: true })).toBe(false);
    expect(queue.stats()).toMatchObject({ depth: 0, inFlight: 0, purged: 3 });
    await accept('after');
    await run();
    expect(deliveries.map((d) => d.messages[0].body.toString())).toEqual(['a', 'b', 'after']);
  });

  it('acknowledges on send in fire-and-forget mode', async () => {
    const { queue, accept, deliveries } = setup({ ackMode: 'send', maxInFlight: 1 });
    for (const t of ['a', 'b', 'c']) void accept(t);
    await run(10);
    expect(deliveries).toHaveLength(3);
    expect(queue.settle(deliveries[0].id, { ok: false, reason: 'ignored', retry: true })).toBe(false);
    expect(queue.stats()).toMatchObject({ depth: 0, acknowledged: 3 });
  });

  it('makes settlements durable at once when the in-flight window is full', async () => {
    const { queue, accept, deliveries, store } = setup({ maxInFlight: 1 });
    void accept('a');
    await run();
    queue.settle(deliveries[0].id, { ok: true });
    await run();
    expect(store.flushes).toBeGreaterThan(0);
  });

  it('reports the age of the oldest message', async () => {
    const { queue, accept } = setup();
    queue.pause();
    await accept('a');
    await run(3_000);
    expect(queue.stats().oldestAgeMs).toBeGreaterThanOrEqual(3_000);
  });
});

describe('the window', () => {
  const textsOf = (deliveries: Array<Delivery<TestMessage>>) => deliveries.map((d) => d.messages.map((m) => m.body.toString()).join('+'));

  it('marks the last delivery of a turn after which nothing more can go now', async () => {
    const { queue, deliveries, accept } = setup({ maxInFlight: 2 });
    for (const t of ['a', 'b', 'c']) void accept(t);
    await run();
    // The window (2) is full after b: a sink gathering a batch should write now.
    expect(deliveries.map((d) => d.last)).toEqual([false, true]);
    queue.settle(deliveries[0].id, { ok: true });
    await run();
    // c is all there is.
    expect(deliveries.map((d) => d.last)).toEqual([false, true, true]);
  });

  it('does not mark a turn that stopped at its size with more to come', async () => {
    const { deliveries, accept } = setup({ maxInFlight: 1_000 });
    for (let i = 0; i < 600; i++) void accept(`m${i}`);
    await run();
    expect(deliveries).toHaveLength(600);
    // The first turn stopped at its size (512): more came right after, so only the very last is marked.
    expect(deliveries.flatMap((d, i) => (d.last ? [i] : []))).toEqual([599]);
  });

  it('marks the last batch of a turn too', async () => {
    const { deliveries, accept } = setup({ maxInFlight: 100, batchSize: 3, batchWaitMs: 0 });
    for (const t of ['a', 'b', 'c', 'd']) void accept(t);
    await run();
    expect(textsOf(deliveries)).toEqual(['a+b+c', 'd']);
    expect(deliveries.map((d) => d.last)).toEqual([false, true]);
  });

  it('automatic: follows the sum of what the sinks announce, and forgets a sink that stops announcing', async () => {
    const { queue, deliveries, accept } = setup({ maxInFlight: 'auto' });
    queue.announceCapacity('writer', 30);
    queue.announceCapacity('crm', 20);
    for (let i = 0; i < 200; i++) void accept(`m${i}`);
    await run();
    expect(deliveries).toHaveLength(50);
    expect(queue.stats().window).toBe(50);
    // The writer says it holds more now: more goes at once.
    queue.announceCapacity('writer', 60);
    await run();
    expect(deliveries).toHaveLength(80);
    await run(29_000);
    queue.announceCapacity('writer', 60);
    await run(2_000);
    // The CRM sink said nothing for 31 s: its 20 no longer count.
    expect(queue.stats().window).toBe(60);
  });

  it('automatic without announcements: starts at 100, grows while settlements come back as fast, halves on a failure', async () => {
    const { queue, deliveries, accept } = setup({ maxInFlight: 'auto', maxAttempts: 0 });
    for (let i = 0; i < 2_000; i++) void accept(`m${i}`);
    await run();
    expect(deliveries).toHaveLength(100);
    // A sink that settles everything after 5 ms, every time.
    const settleAll = async () => {
      const open = deliveries.filter((d) => !settledIds.has(d.id));
      await run(5);
      for (const d of open) {
        settledIds.add(d.id);
        queue.settle(d.id, { ok: true });
      }
      await run();
    };
    const settledIds = new Set<string>();
    await settleAll();
    expect(queue.stats().window).toBe(200);
    await settleAll();
    expect(queue.stats().window).toBe(400);
    const open = deliveries.filter((d) => !settledIds.has(d.id));
    queue.settle(open[0].id, { ok: false, reason: 'busy', retry: true });
    expect(queue.stats().window).toBe(200);
  });

  it('automatic without announcements: stops growing when the round trip grows (messages only queue up downstream)', async () => {
    const { queue, deliveries, accept } = setup({ maxInFlight: 'auto' });
    for (let i = 0; i < 5_000; i++) void accept(`m${i}`);
    await run();
    const settled = new Set<string>();
    let delay = 5;
    for (let round = 0; round < 4; round++) {
      const open = deliveries.filter((d) => !settled.has(d.id));
      await run(delay);
      for (const d of open) {
        settled.add(d.id);
        queue.settle(d.id, { ok: true });
      }
      await run();
      // The sink takes twice as long for twice as many: the window is past what helps.
      delay *= 2;
    }
    expect(queue.stats().window).toBeLessThan(1_600);
  });
});

describe('crash-loop protection', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'iot-buffer-crashes-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A crash record as a death left it: these refs (sequence numbers) out, this often before. */
  function recordAfterDeath(suspects: Record<string, number>, out: string[] = []): CrashRecord {
    const file = join(dir, 'crashes.json');
    const entries = Object.entries(suspects).map(([ref, deaths]) => [ref, { deaths, error: 'RangeError: Maximum call stack size exceeded' }]);
    writeFileSync(file, JSON.stringify({ suspects: Object.fromEntries(entries), died: { at: 1, error: 'RangeError: Maximum call stack size exceeded', out } }));
    const record = new CrashRecord(file, 3);
    record.load();
    return record;
  }

  it('delivers a message that was out at a death alone, once nothing else is out, and clears it when its delivery is over', async () => {
    const record = recordAfterDeath({}, ['2']);
    expect(record.deathsOf('2')).toBe(1);
    const { queue, deliveries, accept, texts } = setup({ maxInFlight: 10 }, record);
    for (const t of ['a', 'b', 'c', 'd']) void accept(t);
    await run();
    expect(texts()).toEqual(['a']);
    queue.settle(deliveries[0].id, { ok: true });
    await run();
    expect(texts()).toEqual(['a', 'b']);
    expect(deliveries[1].last).toBe(true);
    expect(queue.outRefs()).toEqual(['2']);
    queue.settle(deliveries[1].id, { ok: true });
    await run();
    expect(texts()).toEqual(['a', 'b', 'c', 'd']);
    expect(record.deathsOf('2')).toBe(0);
    expect(new CrashRecord(join(dir, 'crashes.json'), 3).load().suspects).toBe(0);
  });

  it('clears a message whose lone delivery failed or timed out: it did not kill the process', async () => {
    const record = recordAfterDeath({ '1': 1 });
    const { queue, deliveries, accept, texts } = setup({ retryDelayMs: 10 }, record);
    for (const t of ['a', 'b']) void accept(t);
    await run();
    expect(texts()).toEqual(['a']);
    queue.settle(deliveries[0].id, { ok: false, reason: 'sink down', retry: true });
    expect(record.deathsOf('1')).toBe(0);
    await run(10);
    expect(texts()).toEqual(['a', 'a', 'b']);
  });

  it('sets aside, as a dead letter, a message out at as many deaths in a row as the limit', async () => {
    const record = recordAfterDeath({ '2': 2 }, ['2']);
    const { dead, accept, texts, queue } = setup({}, record);
    for (const t of ['a', 'poison', 'c']) void accept(t);
    await run();
    expect(texts()).toEqual(['a', 'c']);
    expect(dead).toEqual([{ texts: ['poison'], reason: 'the process died 3 times in a row while this message was being delivered (last: RangeError: Maximum call stack size exceeded)', attempts: 0 }]);
    await run();
    expect(queue.stats()).toMatchObject({ deadLettered: 1, depth: 2 });
  });

  it('writes the messages out at a death, which count at the next start; a death the process lived through is taken back', async () => {
    const file = join(dir, 'crashes.json');
    const record = new CrashRecord(file, 3);
    record.load();
    const { queue, accept } = setup({ maxInFlight: 2 }, record);
    for (const t of ['a', 'b', 'c']) void accept(t);
    await run();
    record.recordDeath(queue.outRefs(), new RangeError('Maximum call stack size exceeded'));
    const next = new CrashRecord(file, 3);
    expect(next.load().suspects).toBe(2);
    expect([next.deathsOf('1'), next.deathsOf('2'), next.deathsOf('3')]).toEqual([1, 1, 0]);
    next.recordDeath(['3'], new Error('handled elsewhere'));
    next.retractDeath();
    const after = new CrashRecord(file, 3);
    after.load();
    expect([after.deathsOf('1'), after.deathsOf('3')]).toEqual([1, 0]);
  });
});
