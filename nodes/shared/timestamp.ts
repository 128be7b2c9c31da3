/**
 * When a reading was measured: `msg.timestamp` in the pack's message contract is ms since epoch;
 * ISO 8601 text and Date objects are taken too.
 */
import type { NodeMessage } from 'node-red';

/** msg.timestamp in ms, `fallback` when there is none, NaN when it cannot be read. */
export function messageTime(msg: NodeMessage, fallback: number): number {
  const stamp = msg.timestamp as unknown;
  if (stamp === undefined || stamp === null) return fallback;
  if (typeof stamp === 'number') return Number.isFinite(stamp) ? stamp : NaN;
  if (stamp instanceof Date) return stamp.getTime();
  if (typeof stamp === 'string') return Date.parse(stamp);
  return NaN;
}

export function badTimestampMessage(msg: NodeMessage): string {
  return `msg.timestamp ${JSON.stringify(msg.timestamp)} is not a time (ms since epoch, ISO 8601 or Date)`;
}
