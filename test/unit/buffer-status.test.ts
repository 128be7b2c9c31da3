/**
 * The buffer's status line (nodes/buffer/status.ts): the colour tells the state, the text says
 * what and until when.
 */
import { describe, expect, it } from 'vitest';
import type { QueueStats } from '../../nodes/buffer/queue';
import { statusLine, type StatusFacts } from '../../nodes/buffer/status';
import { formatTimeOfDay } from '../../nodes/shared/duration';

const quiet: QueueStats = {
  backend: 'local',
  depth: 0,
  bytes: 0,
  inFlight: 0,
  window: 100,
  heldBack: 0,
  paused: false,
  oldestAgeMs: 0,
  retrying: 0,
  heldBySink: false,
  accepted: 0,
  refused: 0,
  delivered: 0,
  redelivered: 0,
  acknowledged: 0,
  deadLettered: 0,
  dropped: 0,
  purged: 0,
};

/** Text as the node's catalog would give it, placeholders shown as name=value. */
const t = (key: string, values: Record<string, string | number> = {}) => [key.replace('status.', ''), ...Object.entries(values).map(([k, v]) => `${k}=${v}`)].join(' ');

const at = new Date(2026, 11, 2, 14, 5, 9).getTime();
const line = (stats: Partial<QueueStats>, facts: Partial<StatusFacts> = {}) => statusLine({ stats: { ...quiet, ...stats }, droppedRecently: false, disconnected: false, ...facts }, t);

describe('the buffer status line', () => {
  it.each<[string, Partial<QueueStats>, Partial<StatusFacts>, string, string]>([
    ['empty and working', {}, {}, 'green', 'queued count=0 · in-flight count=0'],
    ['working through a queue', { depth: 1200, inFlight: 20, oldestAgeMs: 4_000 }, {}, 'green', 'queued count=1,200 · in-flight count=20 · oldest age=4 s'],
    ['paused', { depth: 3, paused: true, oldestAgeMs: 1_000 }, {}, 'yellow', 'queued count=3 · in-flight count=0 · oldest age=1 s · paused'],
    ['deliveries failing and going again', { depth: 5, retrying: 2, nextRetryAt: at, oldestAgeMs: 2_000 }, {}, 'yellow', `queued count=5 · in-flight count=0 · oldest age=2 s · retrying count=2 until=${formatTimeOfDay(at)}`],
    ['held by a sink that said when to try again', { depth: 5, retrying: 5, nextRetryAt: at, heldBySink: true }, {}, 'yellow', `queued count=5 · in-flight count=0 · held count=5 until=${formatTimeOfDay(at)}`],
    ['the oldest message older than a minute', { depth: 915, oldestAgeMs: 300_000 }, {}, 'yellow', 'queued count=915 · in-flight count=0 · oldest age=5 min'],
    ['messages dropped just now to make room', { depth: 10, dropped: 4 }, { droppedRecently: true }, 'yellow', 'queued count=10 · in-flight count=0 · dropped count=4'],
    ['messages dropped a while ago', { depth: 10, dropped: 4 }, {}, 'green', 'queued count=10 · in-flight count=0 · dropped count=4'],
    ['more arriving than the disk takes', {}, { problem: 'overloaded' }, 'yellow', 'queued count=0 · in-flight count=0 · overloaded'],
    ['a damaged record found and skipped', {}, { problem: 'store_corrupt' }, 'yellow', 'queued count=0 · in-flight count=0 · store_corrupt'],
    ['the disk full', { depth: 2 }, { problem: 'disk_full' }, 'red', 'queued count=2 · in-flight count=0 · disk_full'],
    ['the queue full and refusing', { depth: 2 }, { problem: 'queue_full' }, 'red', 'queued count=2 · in-flight count=0 · queue_full'],
    ['Redis gone', {}, { disconnected: true, problem: 'backend_unavailable' }, 'red', 'queued count=0 · in-flight count=0 · disconnected'],
    ['failing and degraded at once', { paused: true }, { problem: 'io_error' }, 'red', 'queued count=0 · in-flight count=0 · io_error · paused'],
  ])('%s: %s', (_what, stats, facts, fill, text) => {
    expect(line(stats, facts)).toEqual({ fill, shape: (stats.depth ?? 0) > 0 ? 'dot' : 'ring', text });
  });
});
