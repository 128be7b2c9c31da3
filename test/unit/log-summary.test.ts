/**
 * Logging a repeated problem once per interval with a count (nodes/shared/log-summary.ts).
 */
import { describe, expect, it } from 'vitest';
import { LogSummary } from '../../nodes/shared/log-summary';

function harness() {
  const lines: string[] = [];
  const log = (text: string) => lines.push(text);
  return { lines, log, summary: new LogSummary(60_000) };
}

describe('log summary', () => {
  it('logs the first occurrence at once and the repeats as one line per interval', () => {
    const { lines, log, summary } = harness();
    summary.report('retrying', 'write failed (1)', log, 0);
    for (let i = 2; i <= 1000; i++) summary.report('retrying', `write failed (${i})`, log, i * 10);
    expect(lines).toEqual(['write failed (1)']);
    summary.tick(59_999);
    expect(lines).toHaveLength(1);
    summary.tick(60_000);
    expect(lines).toEqual(['write failed (1)', 'write failed (1000) (and 999 more times in the last 60 s)']);
    summary.report('retrying', 'write failed (1001)', log, 61_000);
    summary.tick(120_000);
    expect(lines[2]).toBe('write failed (1001) (and 1 more time in the last 60 s)');
  });

  it('keeps kinds apart, so a new problem is never hidden behind an old one', () => {
    const { lines, log, summary } = harness();
    summary.report('a', 'problem a', log, 0);
    summary.report('a', 'problem a', log, 1);
    summary.report('b', 'problem b', log, 2);
    expect(lines).toEqual(['problem a', 'problem b']);
  });

  it('logs at once again after a quiet interval', () => {
    const { lines, log, summary } = harness();
    summary.report('a', 'first', log, 0);
    summary.tick(60_000);
    summary.report('a', 'again', log, 200_000);
    expect(lines).toEqual(['first', 'again']);
  });

  it('writes the outstanding counts when flushed', () => {
    const { lines, log, summary } = harness();
    summary.report('a', 'x', log, 0);
    summary.report('a', 'x', log, 5_000);
    summary.report('a', 'x', log, 10_000);
    summary.flush(12_000);
    expect(lines).toEqual(['x', 'x (and 2 more times in the last 12 s)']);
    summary.report('a', 'y', log, 13_000);
    expect(lines[2]).toBe('y');
  });
});
