/**
 * When a reading was measured: `msg.timestamp` in the pack's message contract is ms since epoch;
 * ISO 8601 text and Date objects are taken too. iot-device-auth sets it once, at the edge, from
 * the reading's own time (`readingTime`) or the time it accepted the reading.
 */
import type { NodeMessage } from 'node-red';

/** The largest distance from the epoch a Date can hold, in ms: beyond it no time exists. */
const DATE_RANGE_MS = 8.64e15;

/** msg.timestamp in ms, `fallback` when there is none, NaN when it cannot be read. */
export function messageTime(msg: NodeMessage, fallback: number): number {
  const stamp = msg.timestamp as unknown;
  if (stamp === undefined || stamp === null) return fallback;
  if (typeof stamp === 'number') return Math.abs(stamp) <= DATE_RANGE_MS ? stamp : NaN;
  if (stamp instanceof Date) return stamp.getTime();
  if (typeof stamp === 'string') return Date.parse(stamp);
  return NaN;
}

export function badTimestampMessage(msg: NodeMessage): string {
  return `msg.timestamp ${describe(msg.timestamp)} is not a time (ms since epoch, ISO 8601 or Date)`;
}

/** A short picture of a value for a message; never throws (a BigInt or a cycle is not JSON). */
function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return typeof value;
  }
}

/** Below this a number is taken as seconds since the epoch (as ms it would be before March 1973). */
const SECONDS_BELOW = 1e11;
/** An instant in ISO 8601: date, time and a zone (without one the time would mean the server's own zone). */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/**
 * The time a device gave a reading, in ms since the epoch: a number of ms or of seconds (told
 * apart by size), or ISO 8601 text with a zone. NaN for anything else.
 */
export function readingTime(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) return NaN;
    return value < SECONDS_BELOW ? Math.round(value * 1000) : Math.round(value);
  }
  if (typeof value === 'string' && ISO_INSTANT.test(value)) return Date.parse(value.replace(',', '.'));
  return NaN;
}
