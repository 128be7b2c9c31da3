/**
 * The batcher (nodes/timeseries-out/batcher.ts) against a scripted database: batches by size and
 * by time, requests in flight, the pending bound, one backoff for the writer, Retry-After, giving
 * up, 413 splits, 400 isolation (bisection and named lines), 401, and closing.
 */
import { HttpError } from '@influxdata/influxdb-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Batcher, MAX_BODY_LENGTH, type BatcherOptions } from '../../nodes/timeseries-out/batcher';
import type { Failure } from '../../nodes/timeseries-out/write-outcome';

type Answer = (lines: string[]) => Promise<void>;

interface Harness {
  batcher: Batcher<string>;
  /** Request bodies, as lines, in the order they were sent. */
  requests: string[][];
  written: string[];
  failed: Array<{ owner: string; line: string; failure: Failure }>;
  retries: Array<{ reason: string; delayMs: number }>;
  inFlight: () => number;
  maxInFlightSeen: () => number;
}

const base: BatcherOptions = {
  batchSize: 3,
  // As long as the flush interval: these tests are about the other triggers (see 'linger' below).
  lingerMs: 1000,
  flushIntervalMs: 1000,
  maxInFlight: 2,
  maxPending: 100,
  retry: { initialDelayMs: 1000, maxDelayMs: 8000, giveUpAfterMs: 0 },
  random: () => 1,
};

function harness(answer: Answer, options: Partial<BatcherOptions> = {}): Harness {
  const requests: string[][] = [];
  const written: string[] = [];
  const failed: Harness['failed'] = [];
  const retries: Harness['retries'] = [];
  let active = 0;
  let most = 0;
  const batcher = new Batcher<string>(
    { ...base, ...options },
    async (body, signal) => {
      const lines = body.split('\n');
      requests.push(lines);
      active++;
      most = Math.max(most, active);
      try {
        await Promise.race([
          answer(lines),
          new Promise<never>((_resolve, rejectAbort) => signal.addEventListener('abort', () => rejectAbort(new Error('aborted')))),
        ]);
      } finally {
        active--;
      }
    },
    {
      written: (owners) => written.push(...owners),
      failed: (owners, lines, failure) => owners.forEach((owner, i) => failed.push({ owner, line: lines[i], failure })),
      retrying: (reason, delayMs) => retries.push({ reason, delayMs }),
    },
  );
  return { batcher, requests, written, failed, retries, inFlight: () => active, maxInFlightSeen: () => most };
}

const ok: Answer = () => Promise.resolve();
const later = (ms: number): Answer => () => new Promise((resolve) => setTimeout(resolve, ms));
const http = (status: number, body = '', headers: Record<string, string> = {}) => new HttpError(status, 'Status', body, headers['retry-after'], 'application/json', undefined, headers);
const lines = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('linger: writing when the input goes quiet', () => {
  it('sends what waits once the input has been quiet for the linger, long before the flush interval', async () => {
    const h = harness(ok, { batchSize: 5000, lingerMs: 5, flushIntervalMs: 1000 });
    h.batcher.add(lines('a', 40), 'm1');
    h.batcher.add(lines('b', 40), 'm2');
    await vi.advanceTimersByTimeAsync(4);
    expect(h.requests).toEqual([]);
    await vi.advanceTimersByTimeAsync(6);
    expect(h.requests.map((r) => r.length)).toEqual([80]);
    expect(h.written).toHaveLength(80);
  });

  it('goes on filling while the input is busy, and sends at the latest after the flush interval', async () => {
    const h = harness(ok, { batchSize: 5000, lingerMs: 5, flushIntervalMs: 100 });
    for (let i = 0; i < 60; i++) {
      h.batcher.add([`m${i}`], `m${i}`);
      await vi.advanceTimersByTimeAsync(2);
    }
    // Never 5 ms quiet: one batch at the flush interval, then the rest once the input stops.
    await vi.advanceTimersByTimeAsync(10);
    expect(h.requests.map((r) => r.length)).toEqual([50, 10]);
  });

  it('sends at once when asked (a buffer had nothing more to deliver)', async () => {
    const h = harness(ok, { batchSize: 5000, lingerMs: 5, flushIntervalMs: 1000 });
    h.batcher.add(lines('a', 7), 'm1');
    h.batcher.flush();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.requests.map((r) => r.length)).toEqual([7]);
  });

  it('keeps filling while every request slot is taken, and sends as soon as one is free', async () => {
    const h = harness(later(50), { batchSize: 5000, lingerMs: 5, flushIntervalMs: 1000, maxInFlight: 1 });
    h.batcher.add(lines('a', 10), 'm1');
    await vi.advanceTimersByTimeAsync(10);
    expect(h.requests.map((r) => r.length)).toEqual([10]);
    // Quiet gaps while the request is under way: no second request of a few points each.
    for (let i = 0; i < 4; i++) {
      h.batcher.add(lines(`b${i}-`, 5), `b${i}`);
      await vi.advanceTimersByTimeAsync(8);
    }
    expect(h.requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30);
    expect(h.requests.map((r) => r.length)).toEqual([10, 20]);
  });
});

describe('batching', () => {
  it('sends full batches at once and the rest after the flush interval', async () => {
    const h = harness(ok);
    h.batcher.add(lines('a', 4), 'm1');
    h.batcher.add(lines('b', 3), 'm2');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.requests).toEqual([
      ['a0', 'a1', 'a2'],
      ['a3', 'b0', 'b1'],
    ]);
    await vi.advanceTimersByTimeAsync(999);
    expect(h.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.requests[2]).toEqual(['b2']);
    expect(h.written).toEqual([...Array(4).fill('m1'), ...Array(3).fill('m2')]);
    expect(h.batcher.pending).toBe(0);
  });

  it('sends a batch once its body reaches the most a request holds, whatever its count', async () => {
    const h = harness(ok, { batchSize: 5000 });
    const big = 'x'.repeat(MAX_BODY_LENGTH / 4);
    for (let i = 0; i < 9; i++) h.batcher.add([`${big}${i}`], `m${i}`);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.requests.map((r) => r.length)).toEqual([3, 3, 3]);
    expect(Math.max(...h.requests.map((r) => r.join('\n').length))).toBeLessThan(MAX_BODY_LENGTH);
    expect(h.written).toHaveLength(9);
  });

  it('keeps at most maxInFlight requests under way', async () => {
    const h = harness(later(50), { maxInFlight: 2 });
    for (let i = 0; i < 10; i++) h.batcher.add(lines(`m${i}-`, 3), `m${i}`);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.inFlight()).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.requests).toHaveLength(10);
    expect(h.maxInFlightSeen()).toBe(2);
    expect(h.written).toHaveLength(30);
  });

  it('refuses points past the pending bound, whole messages only, and takes them again once written', async () => {
    const h = harness(later(100), { maxPending: 5 });
    expect(h.batcher.add(lines('a', 3), 'a')).toBe(true);
    expect(h.batcher.add(lines('b', 3), 'b')).toBe(false);
    expect(h.batcher.add(lines('c', 2), 'c')).toBe(true);
    expect(h.batcher.pending).toBe(5);
    expect(h.batcher.add(['d'], 'd')).toBe(false);
    await vi.advanceTimersByTimeAsync(1200);
    expect(h.batcher.pending).toBe(0);
    expect(h.batcher.add(lines('b', 3), 'b')).toBe(true);
  });
});

describe('retries', () => {
  it('pauses all writing after a failure, backs off exponentially, and writes everything once the database is back', async () => {
    let down = true;
    const h = harness(() => (down ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) : Promise.resolve()), { maxInFlight: 1 });
    h.batcher.add(lines('a', 3), 'a');
    h.batcher.add(lines('b', 3), 'b');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(h.requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(5999);
    expect(h.retries.map((r) => r.delayMs)).toEqual([1000, 2000, 4000]);
    down = false;
    await vi.advanceTimersByTimeAsync(8000);
    // Every attempt was the first batch (back at the head), then the second after it.
    expect(h.requests.map((r) => r[0])).toEqual(['a0', 'a0', 'a0', 'a0', 'b0']);
    expect(h.written).toEqual([...Array(3).fill('a'), ...Array(3).fill('b')]);
    expect(h.failed).toEqual([]);
    expect(h.retries[0].reason).toContain('ECONNREFUSED');
  });

  it('counts requests that fail together as one failure', async () => {
    const h = harness(() => Promise.reject(http(503)), { maxInFlight: 3 });
    for (const name of ['a', 'b', 'c']) h.batcher.add(lines(name, 3), name);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.retries.map((r) => r.delayMs)).toEqual([1000]);
    expect(h.batcher.retryAt).toBeGreaterThan(Date.now());
  });

  it('honours Retry-After', async () => {
    let calls = 0;
    const h = harness(() => (++calls === 1 ? Promise.reject(http(429, '', { 'retry-after': '5' })) : Promise.resolve()));
    h.batcher.add(lines('a', 3), 'a');
    await vi.advanceTimersByTimeAsync(4999);
    expect(h.requests).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(h.requests).toHaveLength(2);
    expect(h.written).toHaveLength(3);
  });

  it('gives up what has waited too long, all of it at once', async () => {
    const h = harness(() => Promise.reject(http(503)), { maxInFlight: 1, retry: { initialDelayMs: 1000, maxDelayMs: 1000, giveUpAfterMs: 3000 } });
    h.batcher.add(lines('a', 3), 'a');
    h.batcher.add(lines('b', 3), 'b');
    h.batcher.add(['c0'], 'c');
    await vi.advanceTimersByTimeAsync(2500);
    expect(h.failed).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.failed.map((f) => f.owner)).toEqual(['b', 'b', 'b', 'a', 'a', 'a']);
    expect(h.failed[0].failure).toMatchObject({ code: 'write_failed', retry: true });
    expect(h.failed[0].failure.message).toMatch(/^not written after 3 s of retrying: 503/);
    expect(h.batcher.pending).toBe(1);
  });
});

describe('failures that are not retried', () => {
  it('splits a batch the database finds too large, down to a single point', async () => {
    const h = harness((batch) => (batch.length > 2 || batch.includes('huge') ? Promise.reject(http(413)) : Promise.resolve()), { batchSize: 8 });
    h.batcher.add(['a', 'b', 'c', 'huge', 'd', 'e', 'f', 'g'], 'm');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.written.length).toBe(7);
    expect(h.failed).toEqual([{ owner: 'm', line: 'huge', failure: { code: 'too_large', message: 'the point is too large for the database: 413 Status', retry: false } }]);
  });

  it('isolates the points a 400 refuses by splitting, and writes the others', async () => {
    const refused = new Set(['p3', 'p6']);
    const h = harness(
      (batch) => {
        const bad = batch.find((line) => refused.has(line));
        return bad ? Promise.reject(http(400, JSON.stringify({ error: `partial write: field type conflict on ${bad} dropped=1` }))) : Promise.resolve();
      },
      { batchSize: 8 },
    );
    h.batcher.add(lines('p', 8), 'm');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.written).toHaveLength(6);
    expect(h.failed.map((f) => [f.line, f.failure.code, f.failure.retry]).sort()).toEqual([
      ['p3', 'point_rejected', false],
      ['p6', 'point_rejected', false],
    ]);
    expect(h.failed.find((f) => f.line === 'p3')?.failure.message).toBe('400 Status: partial write: field type conflict on p3 dropped=1');
    // Bisection: 1 + 2 + 4 + 4 requests at most for 8 points and 2 bad ones.
    expect(h.requests.length).toBeLessThanOrEqual(11);
  });

  it('reports a refused line whole when a string field holds a newline', async () => {
    const h = harness((batch) => (batch.some((line) => line.startsWith('bad')) ? Promise.reject(http(400, '{"error":"bad point"}')) : Promise.resolve()), { batchSize: 4 });
    h.batcher.add(['p0'], 'm0');
    h.batcher.add(['bad s="one\ntwo"'], 'm1');
    h.batcher.add(['p2'], 'm2');
    h.batcher.add(['p3'], 'm3');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.failed).toEqual([{ owner: 'm1', line: 'bad s="one\ntwo"', failure: { code: 'point_rejected', message: '400 Status: bad point', retry: false } }]);
    expect(h.written.sort()).toEqual(['m0', 'm2', 'm3']);
  });

  it('uses the line numbers InfluxDB 3 names instead of bisecting', async () => {
    let first = true;
    const h = harness(
      () => {
        if (!first) return Promise.resolve();
        first = false;
        return Promise.reject(http(400, JSON.stringify({ error: 'partial write of line protocol occurred', data: [{ original_line: 'p1', line_number: 2, error_message: 'invalid column type for column v' }] })));
      },
      { batchSize: 4 },
    );
    h.batcher.add(lines('p', 4), 'm');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.requests).toEqual([
      ['p0', 'p1', 'p2', 'p3'],
      ['p0', 'p2', 'p3'],
    ]);
    expect(h.failed).toEqual([{ owner: 'm', line: 'p1', failure: { code: 'point_rejected', message: 'invalid column type for column v', retry: false } }]);
    expect(h.written).toHaveLength(3);
  });

  it('stops on 401: each batch is tried once and fails as unauthorized', async () => {
    const h = harness(() => Promise.reject(http(401, '{"message":"token invalid"}')));
    h.batcher.add(lines('a', 3), 'a');
    h.batcher.add(lines('b', 3), 'b');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.requests).toHaveLength(2);
    expect(h.retries).toEqual([]);
    expect(h.failed).toHaveLength(6);
    expect(h.failed[0].failure).toEqual({ code: 'unauthorized', message: '401 Status: token invalid', retry: true });
  });
});

describe('closing', () => {
  it('writes what it holds before it stops, and takes nothing more', async () => {
    const h = harness(later(100));
    h.batcher.add(lines('a', 2), 'a');
    const closed = h.batcher.close(5000);
    expect(h.batcher.add(['late'], 'late')).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    await closed;
    expect(h.written).toEqual(['a', 'a']);
    expect(h.failed).toEqual([]);
  });

  it('fails at once what it holds while the database is failing', async () => {
    const h = harness(() => Promise.reject(http(503)), { maxInFlight: 1 });
    h.batcher.add(lines('a', 3), 'a');
    await vi.advanceTimersByTimeAsync(0);
    h.batcher.add(lines('b', 2), 'b');
    await h.batcher.close(5000);
    expect(h.failed.map((f) => [f.owner, f.failure.code])).toEqual([
      ['a', 'not_written'],
      ['a', 'not_written'],
      ['a', 'not_written'],
      ['b', 'not_written'],
      ['b', 'not_written'],
    ]);
    expect(h.batcher.pending).toBe(0);
  });

  it('aborts requests still under way at the deadline', async () => {
    const h = harness(() => new Promise(() => undefined));
    h.batcher.add(lines('a', 3), 'a');
    const closed = h.batcher.close(2000);
    await vi.advanceTimersByTimeAsync(2000);
    await closed;
    expect(h.failed.map((f) => f.failure.code)).toEqual(['not_written', 'not_written', 'not_written']);
    expect(h.failed[0].failure.message).toBe('the node stopped: aborted');
  });
});
