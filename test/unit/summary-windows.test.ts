/**
 * Per-key windows of readings: aligned time windows, count windows, late readings, restarts.
 */
import { describe, expect, it } from 'vitest';
import { windowConfig } from '../../nodes/summary/node-config';
import { WindowAggregator, type Summary, type WindowConfig, type WindowsJournalEntry } from '../../nodes/summary/windows';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 21, 22, 0, 0);

function aggregator(over: Partial<WindowConfig> = {}): WindowAggregator {
  return new WindowAggregator({ mode: 'time', windowMs: 15 * MIN, count: 10, fields: [], readingName: 'value', graceMs: 0, ...over });
}

function added(agg: WindowAggregator, key: string, values: Record<string, number>, at: number): Summary[] {
  const result = agg.add(key, values, at);
  if (!Array.isArray(result)) throw new Error(result.message);
  return result;
}

describe('time windows', () => {
  it('summarises each key per window aligned to the clock, closed together at the window end', () => {
    const agg = aggregator();
    added(agg, 'pump-1', { temperature: 20, battery: 3.6 }, T0 + 1 * MIN);
    added(agg, 'pump-1', { temperature: 24 }, T0 + 7 * MIN);
    added(agg, 'pump-1', { temperature: 22, battery: 3.5 }, T0 + 14 * MIN);
    added(agg, 'pump-2', { temperature: 30 }, T0 + 3 * MIN);
    expect(agg.nextClose()).toBe(T0 + 15 * MIN);
    expect(agg.closeDue(T0 + 15 * MIN - 1)).toEqual([]);
    const closed = agg.closeDue(T0 + 15 * MIN);
    expect(closed.map((s) => s.key)).toEqual(['pump-1', 'pump-2']);
    expect(closed[0]).toEqual({
      id: 'pump-1@2026-11-21T22:00:00.000Z',
      key: 'pump-1',
      start: T0,
      end: T0 + 15 * MIN,
      count: 3,
      readings: {
        temperature: { count: 3, sum: 66, min: 20, max: 24, mean: 22, first: 20, last: 22 },
        battery: { count: 2, sum: 7.1, min: 3.5, max: 3.6, mean: 3.55, first: 3.6, last: 3.5 },
      },
    });
    expect(agg.keyCount).toBe(0);
    expect(agg.nextClose()).toBe(Infinity);
  });

  it('closes a key window as soon as a reading for a later window arrives', () => {
    const agg = aggregator();
    added(agg, 'k', { v: 1 }, T0 + MIN);
    const closed = added(agg, 'k', { v: 5 }, T0 + 16 * MIN);
    expect(closed.map((s) => [s.start, s.count, s.readings.v.max])).toEqual([[T0, 1, 1]]);
    expect(agg.closeDue(T0 + 30 * MIN).map((s) => s.readings.v.first)).toEqual([5]);
  });

  it('refuses a reading for a window already summarised, and one older than the open window', () => {
    const agg = aggregator();
    added(agg, 'k', { v: 1 }, T0 + MIN);
    agg.closeDue(T0 + 15 * MIN);
    expect(agg.add('k', { v: 2 }, T0 + 2 * MIN)).toMatchObject({ code: 'late_reading' });
    added(agg, 'k', { v: 3 }, T0 + 31 * MIN);
    expect(agg.add('k', { v: 4 }, T0 + 20 * MIN)).toMatchObject({ code: 'late_reading' });
    expect(agg.pendingReadings).toBe(1);
  });

  it('keeps a window open for late readings during its grace period', () => {
    const agg = aggregator({ graceMs: 30_000 });
    added(agg, 'k', { v: 1 }, T0 + MIN);
    expect(agg.nextClose()).toBe(T0 + 15 * MIN + 30_000);
    expect(agg.closeDue(T0 + 15 * MIN + 10_000)).toEqual([]);
    added(agg, 'k', { v: 9 }, T0 + 14 * MIN);
    expect(agg.closeDue(T0 + 15 * MIN + 30_000)[0].readings.v).toMatchObject({ count: 2, max: 9 });
  });
});

describe('count windows', () => {
  it('closes after N readings of a key', () => {
    const agg = aggregator({ mode: 'count', count: 3 });
    expect(added(agg, 'a', { v: 1 }, 100)).toEqual([]);
    expect(added(agg, 'b', { v: 7 }, 150)).toEqual([]);
    expect(added(agg, 'a', { v: 2 }, 200)).toEqual([]);
    const [summary] = added(agg, 'a', { v: 6 }, 300);
    expect(summary).toMatchObject({ key: 'a', start: 100, end: 300, count: 3, readings: { v: { mean: 3, min: 1, max: 6 } } });
    expect(agg.closeDue(1e15)).toEqual([]);
    expect(agg.closeAll().map((s) => s.key)).toEqual(['b']);
  });
});

describe('readings from payloads', () => {
  const agg = aggregator({ readingName: 'temperature' });
  it.each([
    [21.5, { temperature: 21.5 }],
    ['21.5', { temperature: 21.5 }],
    [{ temperature: 21, door: 'open', ok: true, battery: 3.4 }, { temperature: 21, battery: 3.4 }],
  ])('%j gives %j', (payload, values) => {
    expect(agg.valuesOf(payload)).toEqual(values);
  });

  it.each([[{ door: 'open' }], ['hot'], [null], [[1, 2]], [{ t: Number.NaN }]])('rejects %j', (payload) => {
    expect(agg.valuesOf(payload)).toMatchObject({ code: 'no_numeric_reading' });
  });

  it('rejects Infinity as not finite, and keeps to the listed fields', () => {
    expect(agg.valuesOf('Infinity')).toMatchObject({ code: 'not_finite' });
    const only = aggregator({ fields: ['battery'] });
    expect(only.valuesOf({ temperature: 1, battery: 2 })).toEqual({ battery: 2 });
    expect(only.valuesOf({ temperature: 1 })).toMatchObject({ code: 'no_numeric_reading', message: 'the payload has none of battery' });
  });
});

describe('restarts', () => {
  it('takes back the open windows and replays the journal, sending again what replay closed', () => {
    const first = aggregator();
    const journal: WindowsJournalEntry[] = [];
    added(first, 'a', { v: 1 }, T0 + MIN);
    const snapshot = JSON.parse(JSON.stringify(first.snapshot()));
    added(first, 'a', { v: 5 }, T0 + 2 * MIN);
    journal.push({ k: 'a', v: { v: 5 }, t: T0 + 2 * MIN });
    added(first, 'b', { v: 2 }, T0 + 3 * MIN);
    journal.push({ k: 'b', v: { v: 2 }, t: T0 + 3 * MIN });
    const [closedB] = first.closeDue(T0 + 15 * MIN).filter((s) => s.key === 'b');
    journal.push({ k: 'b', c: closedB.start });

    const second = aggregator();
    const replayed = second.restore(snapshot, journal);
    expect(replayed.map((s) => s.id)).toEqual(['b@2026-11-21T22:00:00.000Z']);
    expect(replayed[0]).toEqual(closedB);
    const [a] = second.closeDue(T0 + 15 * MIN);
    expect(a.readings.v).toMatchObject({ count: 2, min: 1, max: 5 });
    expect(second.add('b', { v: 1 }, T0 + 4 * MIN)).toMatchObject({ code: 'late_reading' });
  });

  it('ignores a snapshot of other windows', () => {
    const first = aggregator();
    added(first, 'a', { v: 1 }, T0);
    const other = aggregator({ windowMs: 5 * MIN });
    other.restore(first.snapshot(), []);
    expect(other.keyCount).toBe(0);
  });
});

describe('editor properties', () => {
  it('turns units and modes into settings', () => {
    expect(windowConfig({ mode: 'time', windowValue: '15', windowUnit: 'min', fields: 'temperature, battery' })).toMatchObject({ mode: 'time', windowMs: 900_000, fields: ['temperature', 'battery'] });
    expect(windowConfig({ mode: 'count', count: '5', reading: 'level' })).toMatchObject({ mode: 'count', count: 5, readingName: 'level' });
    expect(windowConfig({ timeSource: 'message', graceValue: '30' }).graceMs).toBe(30_000);
  });

  it('refuses settings that cannot run', () => {
    expect(() => windowConfig({ mode: 'time', windowValue: '0' })).toThrow(/must be a positive duration/);
    expect(() => windowConfig({ mode: 'count', count: '2.5' })).toThrow(/whole number/);
  });
});
