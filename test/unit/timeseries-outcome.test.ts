/**
 * What a failed write means (nodes/timeseries-out/write-outcome.ts): retry with backoff and
 * jitter honouring Retry-After, split on 413, isolate on 400/422, stop on 401/403.
 */
import { HttpError, RequestTimedOutError } from '@influxdata/influxdb-client';
import { describe, expect, it } from 'vitest';
import { backoffDelay, decide, describeError, retryAfterMs, type RetryOptions } from '../../nodes/timeseries-out/write-outcome';

const retry: RetryOptions = { initialDelayMs: 1000, maxDelayMs: 30_000, giveUpAfterMs: 0 };
const fixed = (value: number) => () => value;

function http(status: number, body = '', headers: Record<string, string> = {}): HttpError {
  return new HttpError(status, 'Status', body, headers['retry-after'], body.startsWith('{') ? 'application/json' : 'text/plain', undefined, headers);
}

function networkError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
}

describe('decisions', () => {
  it.each([
    ['429', http(429), 'retry'],
    ['503', http(503), 'retry'],
    ['500', http(500), 'retry'],
    ['504', http(504), 'retry'],
    ['a refused connection', networkError('ECONNREFUSED'), 'retry'],
    ['a reset connection', networkError('ECONNRESET'), 'retry'],
    ['an unknown host (DNS down)', networkError('EAI_AGAIN'), 'retry'],
    ['a timeout', new RequestTimedOutError(), 'retry'],
    ['413', http(413), 'split'],
    ['400', http(400, '{"error":"partial write: field type conflict"}'), 'isolate'],
    ['422', http(422, '{"code":"unprocessable entity","message":"failure writing points"}'), 'isolate'],
    ['401', http(401), 'fail'],
    ['403', http(403), 'fail'],
    ['405', http(405), 'fail'],
    ['a bug', new TypeError('x is undefined'), 'fail'],
  ] as const)('%s: %s', (_what, error, action) => {
    expect(decide(error, 1, retry, fixed(0.5)).action).toBe(action);
  });

  it('stops on 401 and 403 with the code unauthorized, retryable later (the token may be fixed)', () => {
    expect(decide(http(401, '{"code":"unauthorized","message":"unauthorized access"}'), 1, retry)).toEqual({
      action: 'fail',
      failure: { code: 'unauthorized', message: '401 Status: unauthorized access', retry: true },
    });
  });

  it('honours Retry-After in seconds and as an HTTP date', () => {
    expect(decide(http(429, '', { 'retry-after': '7' }), 1, retry, fixed(0))).toMatchObject({ action: 'retry', delayMs: 7000 });
    expect(decide(http(503, '', { 'retry-after': '120' }), 9, retry, fixed(0))).toMatchObject({ action: 'retry', delayMs: 120_000 });
    const now = Date.parse('2026-11-22T10:00:00Z');
    expect(retryAfterMs(http(503, '', { 'retry-after': 'Sun, 22 Nov 2026 10:00:30 GMT' }), now)).toBe(30_000);
    expect(retryAfterMs(http(503))).toBeUndefined();
    expect(retryAfterMs(networkError('ECONNREFUSED'))).toBeUndefined();
  });

  it('names the lines InfluxDB 3 refused', () => {
    const body = JSON.stringify({
      error: 'partial write of line protocol occurred',
      data: [
        { original_line: 'a v=x', line_number: 2, error_message: 'invalid column type' },
        { original_line: 'b', line_number: 5, error_message: 'No fields were provided' },
      ],
    });
    const decision = decide(http(400, body), 1, retry);
    expect(decision.action).toBe('isolate');
    expect(decision.action === 'isolate' && [...(decision.lines ?? [])]).toEqual([
      [1, 'invalid column type'],
      [4, 'No fields were provided'],
    ]);
    expect(decide(http(400, '{"error":"unable to parse"}'), 1, retry)).toMatchObject({ action: 'isolate', lines: undefined });
  });
});

describe('backoff', () => {
  it('doubles from the initial delay up to the maximum, with up to half of it as jitter', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map((n) => backoffDelay(n, retry, fixed(1)))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect([1, 2, 3].map((n) => backoffDelay(n, retry, fixed(0)))).toEqual([500, 1000, 2000]);
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(4, retry)));
    expect(spread.size).toBeGreaterThan(10);
    for (const delay of spread) expect(delay).toBeGreaterThanOrEqual(4000);
  });
});

describe("the database's own words", () => {
  it.each([
    [http(400, '{"error":"partial write: field type conflict: input field \\"v\\" on measurement \\"m\\" is type string, already exists as type integer dropped=1"}'), '400 Status: partial write: field type conflict: input field "v" on measurement "m" is type string, already exists as type integer dropped=1'],
    [http(422, '{"code":"unprocessable entity","message":"failure writing points to database"}'), '422 Status: failure writing points to database'],
    [http(400, 'cannot parse line\n'), '400 Status: cannot parse line'],
    [networkError('ECONNREFUSED'), 'connect ECONNREFUSED 127.0.0.1:1'],
    [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'ECONNRESET: socket hang up'],
  ])('%#', (error, words) => {
    expect(describeError(error)).toBe(words);
  });
});
