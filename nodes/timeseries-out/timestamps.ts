/**
 * Timestamps as line protocol wants them: an integer count of the configured precision since the
 * epoch, as text (nanoseconds do not fit a JavaScript number). Readings bring their time as
 * numbers in a configured unit, Date objects, ISO 8601 text (with up to nanosecond digits),
 * integer text or BigInt.
 */

export type Precision = 'ns' | 'us' | 'ms' | 's';

export const PRECISIONS: readonly Precision[] = ['ns', 'us', 'ms', 's'];

const NS_PER: Record<Precision, bigint> = { ns: 1n, us: 1_000n, ms: 1_000_000n, s: 1_000_000_000n };
const INT64_MAX = 9_223_372_036_854_775_807n;
const INT64_MIN = -9_223_372_036_854_775_808n;
const INTEGER_TEXT = /^-?\d+$/;
/** The fractional seconds of an ISO 8601 time, to keep the digits Date.parse drops. */
const FRACTION = /T\d{2}:?\d{2}:?\d{2}[.,](\d+)/;

export function isPrecision(value: unknown): value is Precision {
  return typeof value === 'string' && (PRECISIONS as readonly string[]).includes(value);
}

/** Milliseconds since the epoch (an integer, as Date.now() gives) in the given precision. */
export function fromMilliseconds(ms: number, precision: Precision): string {
  switch (precision) {
    case 'ms':
      return millisecondsText(ms);
    case 's':
      return String(Math.floor(ms / 1000));
    case 'us':
      return `${millisecondsText(ms)}000`;
    case 'ns':
      return `${millisecondsText(ms)}000000`;
  }
}

/** "000" to "999": the milliseconds within a second. */
const MILLISECOND_DIGITS = Array.from({ length: 1000 }, (_, ms) => String(ms).padStart(3, '0'));
/** The second written last and its text. */
let lastSecond = -1;
let lastSecondText = '';

/**
 * An epoch time in ms as text. A time of today is too large for a small integer, and V8 turns such
 * a number into text the slow way (about 150 ns, a fifth of what the client's Point costs); times
 * written one after another mostly fall in the same second, so its text is kept and only the
 * milliseconds are appended (about 15 ns).
 */
function millisecondsText(ms: number): string {
  if (ms < 1000 || ms >= 1e15 || !Number.isInteger(ms)) return String(ms);
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    lastSecondText = String(second);
  }
  return lastSecondText + MILLISECOND_DIGITS[ms - second * 1000];
}

/**
 * A time value in the given precision, or undefined when it is no time at all. `unit` says what
 * a plain number (or integer text) counts.
 */
export function toPrecision(value: unknown, unit: Precision, precision: Precision): string | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    // The common case, kept free of BigInt: whole milliseconds.
    if (unit === 'ms' && Number.isInteger(value) && Math.abs(value) < 1e15) return fromMilliseconds(value, precision);
    const whole = Math.trunc(value);
    const fraction = value - whole;
    return fromNanoseconds(BigInt(whole) * NS_PER[unit] + BigInt(Math.round(fraction * Number(NS_PER[unit]))), precision);
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) ? fromMilliseconds(ms, precision) : undefined;
  }
  if (typeof value === 'bigint') return fromNanoseconds(value * NS_PER[unit], precision);
  if (typeof value === 'string') {
    const text = value.trim();
    if (INTEGER_TEXT.test(text)) return fromNanoseconds(BigInt(text) * NS_PER[unit], precision);
    return isoToPrecision(text, precision);
  }
  return undefined;
}

function isoToPrecision(text: string, precision: Precision): string | undefined {
  // Only dates with a year, month and day: Date.parse also takes "1" or "May" as dates.
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return undefined;
  const digits = FRACTION.exec(text)?.[1] ?? '';
  // Date.parse keeps whole milliseconds; the digits after the third are the nanoseconds below.
  const belowMs = digits.length > 3 ? BigInt(digits.slice(3, 9).padEnd(6, '0')) : 0n;
  return fromNanoseconds(BigInt(ms) * NS_PER.ms + belowMs, precision);
}

function fromNanoseconds(ns: bigint, precision: Precision): string | undefined {
  if (ns > INT64_MAX || ns < INT64_MIN) return undefined;
  const divisor = NS_PER[precision];
  let count = ns / divisor;
  // BigInt division truncates toward zero; times before 1970 round down like positive ones do.
  if (ns < 0n && count * divisor !== ns) count -= 1n;
  return count.toString();
}
