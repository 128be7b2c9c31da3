/**
 * What the buffer's status line says, and in which colour: green while it works, yellow while it
 * works degraded or retrying (deliveries failing and going again, held by a sink's Retry-After,
 * the oldest message waiting longer than a minute, paused, messages dropped to make room, more
 * arriving than the disk takes), saying what and until when, red while it fails (the store does
 * not open, the disk is full, no permission, Redis is gone, the queue is full and refusing).
 */
import { formatDuration, formatTimeOfDay } from '../shared/duration';
import type { QueueStats } from './queue';

export interface StatusLine {
  fill: 'green' | 'yellow' | 'red' | 'grey';
  shape: 'dot' | 'ring';
  text: string;
}

/** Problem codes that mean messages are not being stored: red while they are recent. */
const FAILING = new Set(['disk_full', 'no_permission', 'io_error', 'backend_unavailable', 'store_locked', 'queue_full']);

/** Beyond this age the oldest waiting message makes the status yellow. */
const OLD_AFTER_MS = 60_000;

export interface StatusFacts {
  stats: QueueStats;
  /** The code of the last problem of the store, if it is recent. */
  problem?: string;
  /** Whether messages were dropped recently to make room (drop-oldest). */
  droppedRecently: boolean;
  /** Redis: whether the connection is down. */
  disconnected: boolean;
}

export type Translate = (key: string, values?: Record<string, string | number>) => string;

export function statusLine(facts: StatusFacts, t: Translate): StatusLine {
  const { stats: s, problem } = facts;
  const count = (n: number) => n.toLocaleString('en-US');
  const parts = [t('status.queued', { count: count(s.depth) }), t('status.in-flight', { count: count(s.inFlight) })];
  const failing: string[] = [];
  const degraded: string[] = [];
  if (facts.disconnected) failing.push(t('status.disconnected'));
  if (problem && FAILING.has(problem) && !facts.disconnected) failing.push(problem);
  if (problem && !FAILING.has(problem)) degraded.push(problem);
  if (s.paused) degraded.push(t('status.paused'));
  if (s.retrying > 0 && s.nextRetryAt !== undefined) {
    const until = formatTimeOfDay(s.nextRetryAt);
    degraded.push(s.heldBySink ? t('status.held', { count: count(s.retrying), until }) : t('status.retrying', { count: count(s.retrying), until }));
  }
  if (s.depth > 0 && s.oldestAgeMs > 0) {
    const oldest = t('status.oldest', { age: formatDuration(s.oldestAgeMs) });
    if (s.oldestAgeMs > OLD_AFTER_MS) degraded.push(oldest);
    else parts.push(oldest);
  }
  if (s.dropped > 0) (facts.droppedRecently ? degraded : parts).push(t('status.dropped', { count: count(s.dropped) }));
  const fill = failing.length > 0 ? 'red' : degraded.length > 0 ? 'yellow' : 'green';
  return { fill, shape: s.depth > 0 ? 'dot' : 'ring', text: [...parts, ...failing, ...degraded].join(' · ') };
}
