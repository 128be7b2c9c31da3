/**
 * What a failed write means and what to do next. The database answers a batch as a whole; this
 * decides whether to send it again later (overload, outage), to cut it in two (too large, or a
 * few bad points among good ones), or to give it up (refused credentials, a request the database
 * will never take).
 */
import { backoffMs } from '../shared/backoff';
import { canRetryHttpCall, HttpError } from '@influxdata/influxdb-client';

export interface RetryOptions {
  /** First delay after a failure. */
  initialDelayMs: number;
  /** Longest delay between attempts, however many failures (a Retry-After header may ask for more). */
  maxDelayMs: number;
  /** Give a batch up once it has waited this long since it was ready (0: never). */
  giveUpAfterMs: number;
}

/** Why points were not written, as the node reports it. */
export interface Failure {
  /** point_rejected, too_large, unauthorized, write_failed, not_written. */
  code: string;
  message: string;
  /** Whether writing the same points again later can succeed (the buffer then delivers them again). */
  retry: boolean;
}

export type Decision =
  /** Send the same batch again after delayMs. */
  | { action: 'retry'; delayMs: number; reason: string }
  /** The request was too large: send each half on its own. */
  | { action: 'split'; reason: string }
  /**
   * Some points were refused. `lines` maps the 0-based line numbers the database named to its
   * message for each, when it named them (InfluxDB 3); otherwise the batch is cut in two until
   * each bad point stands alone.
   */
  | { action: 'isolate'; reason: string; lines?: Map<number, string> }
  /** Nothing in this batch will be written by sending it again now. */
  | { action: 'fail'; failure: Failure };

/** Network errors that a later attempt can overcome, besides what the client library names. */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);

export function decide(error: unknown, attempt: number, options: RetryOptions, random: () => number = Math.random): Decision {
  const reason = describeError(error);
  if (error instanceof HttpError) {
    const status = error.statusCode;
    if (status === 401 || status === 403) return { action: 'fail', failure: { code: 'unauthorized', message: reason, retry: true } };
    if (status === 413) return { action: 'split', reason };
    if (status === 400 || status === 422) return { action: 'isolate', reason, lines: namedLines(error) };
  }
  if (canRetryHttpCall(error) || TRANSIENT_CODES.has((error as { code?: unknown } | undefined)?.code as string)) {
    const asked = retryAfterMs(error);
    return { action: 'retry', delayMs: asked !== undefined ? asked + Math.round(random() * 100) : backoffDelay(attempt, options, random), reason };
  }
  return { action: 'fail', failure: { code: 'write_failed', message: reason, retry: true } };
}

/**
 * Exponential backoff with jitter: the n-th consecutive failure waits between half and all of
 * initial × 2^(n-1), capped at the maximum, so that many writers do not come back in step.
 */
export function backoffDelay(attempt: number, options: RetryOptions, random: () => number = Math.random): number {
  return backoffMs(attempt, options.initialDelayMs, options.maxDelayMs, random);
}

/** The delay a Retry-After header asks for (seconds or an HTTP date), in ms. */
export function retryAfterMs(error: unknown, now = Date.now()): number | undefined {
  if (!(error instanceof HttpError)) return undefined;
  const header = error.headers?.['retry-after'];
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** The database's own words for a failed write, as short as they can be. */
export function describeError(error: unknown): string {
  if (error instanceof HttpError) {
    const status = `${error.statusCode}${error.statusMessage ? ` ${error.statusMessage}` : ''}`;
    const own = messageOfBody(error.body);
    return own ? `${status}: ${own}` : status;
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/** `{"error": "..."}` (InfluxDB 1.x, 3), `{"message": "..."}` (2.x), or the text itself. */
function messageOfBody(body: string | undefined): string | undefined {
  if (!body) return undefined;
  try {
    const parsed = JSON.parse(body) as { error?: unknown; message?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not JSON: the text is the message.
  }
  return body.trim();
}

/** InfluxDB 3 names the lines it refused: `{"data": [{"line_number": 2, "error_message": "..."}]}` (1-based). */
function namedLines(error: HttpError): Map<number, string> | undefined {
  if (!error.body) return undefined;
  let data: unknown;
  try {
    data = (JSON.parse(error.body) as { data?: unknown }).data;
  } catch {
    return undefined;
  }
  if (!Array.isArray(data) || data.length === 0) return undefined;
  const lines = new Map<number, string>();
  for (const entry of data as Array<{ line_number?: unknown; error_message?: unknown }>) {
    if (typeof entry?.line_number !== 'number' || !Number.isInteger(entry.line_number) || entry.line_number < 1) return undefined;
    lines.set(entry.line_number - 1, typeof entry.error_message === 'string' ? entry.error_message : 'refused by the database');
  }
  return lines;
}
