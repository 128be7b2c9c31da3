/**
 * The pack's status line (nodes/shared/node-status.ts): the colour convention, and a line redrawn
 * at most once per interval and only when it changed, on fake timers.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { degraded, failing, idle, StatusLine, working, type NodeStatus } from '../../nodes/shared/node-status';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the colour convention', () => {
  it.each([
    [working('12 pts/s'), { fill: 'green', shape: 'dot', text: '12 pts/s' }],
    [degraded('retrying at 10:42:05'), { fill: 'yellow', shape: 'ring', text: 'retrying at 10:42:05' }],
    [failing('invalid configuration'), { fill: 'red', shape: 'ring', text: 'invalid configuration' }],
    [idle('waiting for readings'), { fill: 'grey', shape: 'ring', text: 'waiting for readings' }],
  ])('%o', (status, expected) => {
    expect(status).toEqual(expected);
  });
});

function harness(initial: NodeStatus) {
  const drawn: NodeStatus[] = [];
  let now = initial;
  const line = new StatusLine({ status: (s) => drawn.push(s) }, () => now, 500);
  return { drawn, line, set: (s: NodeStatus) => (now = s) };
}

describe('StatusLine', () => {
  it('draws at once when asked, then once per interval for any number of changes', () => {
    const { drawn, line, set } = harness(idle('waiting'));
    line.now();
    expect(drawn).toEqual([idle('waiting')]);
    for (let i = 1; i <= 1000; i++) {
      set(working(`${i} written`));
      line.changed();
    }
    expect(drawn).toHaveLength(1);
    vi.advanceTimersByTime(500);
    expect(drawn).toEqual([idle('waiting'), working('1000 written')]);
  });

  it('does not draw the same line twice', () => {
    const { drawn, line } = harness(working('ok'));
    line.now();
    line.now();
    line.changed();
    vi.advanceTimersByTime(1_000);
    expect(drawn).toEqual([working('ok')]);
  });

  it('looks again after the interval when asked from inside (a line that changes with time alone)', () => {
    const drawn: NodeStatus[] = [];
    let seconds = 3;
    const line: StatusLine = new StatusLine(
      { status: (s) => drawn.push(s) },
      () => {
        if (seconds > 0) line.changed();
        return seconds > 0 ? degraded(`retrying in ${seconds--} s`) : working('written');
      },
      1_000,
    );
    line.now();
    vi.advanceTimersByTime(10_000);
    expect(drawn.map((s) => s.text)).toEqual(['retrying in 3 s', 'retrying in 2 s', 'retrying in 1 s', 'written']);
  });

  it('keeps a line when it is told nothing (undefined)', () => {
    const drawn: NodeStatus[] = [];
    const line = new StatusLine({ status: (s) => drawn.push(s) }, () => undefined, 500);
    line.now();
    expect(drawn).toEqual([]);
  });

  it('draws nothing once stopped (the node closed)', () => {
    const { drawn, line, set } = harness(working('ok'));
    line.changed();
    line.stop();
    set(failing('gone'));
    line.now();
    line.changed();
    vi.advanceTimersByTime(1_000);
    expect(drawn).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
