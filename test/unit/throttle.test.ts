/**
 * The throttle behind every status line (nodes/shared/throttle.ts) and the one timer of nodes that
 * keep deadlines for many keys (nodes/shared/deadline-timer.ts), on fake timers: time passes only
 * when a test says so.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineTimer } from '../../nodes/shared/deadline-timer';
import { throttled } from '../../nodes/shared/throttle';

beforeEach(() => {
  vi.useFakeTimers({ now: new Date(2026, 11, 2, 10, 0, 0) });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('throttled', () => {
  it('runs once within the interval however often it is scheduled, and not before', () => {
    const fn = vi.fn();
    const throttle = throttled(fn, 500);
    for (let i = 0; i < 1000; i++) throttle.schedule();
    vi.advanceTimersByTime(499);
    expect(fn).toHaveBeenCalledTimes(0);
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(5_000);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('keeps the first schedule: a steady stream of changes still shows once per interval', () => {
    const fn = vi.fn();
    const throttle = throttled(fn, 500);
    // A change every 100 ms for 2 s: a debounce would never run; the throttle runs every 500 ms.
    for (let t = 0; t < 2_000; t += 100) {
      throttle.schedule();
      vi.advanceTimersByTime(100);
    }
    expect(fn).toHaveBeenCalledTimes(4);
  });

  it('can be scheduled again from inside the call (a line that changes with time alone)', () => {
    let calls = 0;
    const throttle = throttled(() => {
      calls++;
      if (calls < 3) throttle.schedule();
    }, 500);
    throttle.schedule();
    vi.advanceTimersByTime(10_000);
    expect(calls).toBe(3);
  });

  it('runs now, dropping what was scheduled, and runs again only when scheduled again', () => {
    const fn = vi.fn();
    const throttle = throttled(fn, 500);
    throttle.schedule();
    throttle.now();
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1_000);
    expect(fn).toHaveBeenCalledTimes(1);
    throttle.schedule();
    vi.advanceTimersByTime(500);
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('never runs once cancelled (a node that closed), and leaves no timer behind', () => {
    const fn = vi.fn();
    const throttle = throttled(fn, 500);
    throttle.schedule();
    throttle.cancel();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(fn).not.toHaveBeenCalled();
  });
});

describe('DeadlineTimer', () => {
  it('calls at the deadline, not before', () => {
    const due = vi.fn();
    const timer = new DeadlineTimer(due);
    timer.arm(Date.now() + 1_000);
    vi.advanceTimersByTime(999);
    expect(due).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(due).toHaveBeenCalledTimes(1);
  });

  it('keeps the earliest deadline: a later one does not postpone it, an earlier one brings it forward', () => {
    const calls: number[] = [];
    const start = Date.now();
    const timer = new DeadlineTimer(() => calls.push(Date.now() - start));
    timer.arm(start + 1_000);
    timer.arm(start + 300);
    timer.arm(start + 5_000);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(10_000);
    expect(calls).toEqual([300]);
  });

  it('may be armed again from its own call, for the next deadline', () => {
    const start = Date.now();
    const deadlines = [start + 100, start + 250, start + 600];
    const calls: number[] = [];
    const timer = new DeadlineTimer(() => {
      calls.push(Date.now() - start);
      const next = deadlines.find((at) => at > Date.now());
      if (next !== undefined) timer.arm(next);
    });
    timer.arm(deadlines[0]);
    vi.advanceTimersByTime(1_000);
    expect(calls).toEqual([100, 250, 600]);
  });

  it('calls at once for a deadline already past', () => {
    const due = vi.fn();
    new DeadlineTimer(due).arm(Date.now() - 60_000);
    vi.advanceTimersByTime(0);
    expect(due).toHaveBeenCalledTimes(1);
  });

  it('waits no longer than setTimeout can for a deadline weeks away, and not at once: its owner looks again then', () => {
    const due = vi.fn();
    const timer = new DeadlineTimer(due);
    timer.arm(Date.now() + 28 * 86_400_000);
    // Node fires a timer of more than 2^31-1 ms at once (with a warning): a silence of four weeks must not.
    vi.advanceTimersByTime(1_000);
    expect(due).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2 ** 31 - 1 - 1_000);
    expect(due).toHaveBeenCalledTimes(1);
  });

  it('does nothing once cancelled, and can be armed afresh after', () => {
    const due = vi.fn();
    const timer = new DeadlineTimer(due);
    timer.arm(Date.now() + 1_000);
    timer.cancel();
    vi.advanceTimersByTime(2_000);
    expect(due).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
    // A later deadline than the cancelled one is armed (cancel forgot the old one).
    timer.arm(Date.now() + 5_000);
    vi.advanceTimersByTime(5_000);
    expect(due).toHaveBeenCalledTimes(1);
  });
});
