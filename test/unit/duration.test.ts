/** Durations and times of day as the pack writes them (nodes/shared/duration.ts). */
import { describe, expect, it } from 'vitest';
import { formatDuration, formatTimeOfDay } from '../../nodes/shared/duration';

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [450, '450 ms'],
    [999.6, '1000 ms'],
    [1_000, '1 s'],
    [45_000, '45 s'],
    [59_499, '59 s'],
    [60_000, '1 min'],
    [330_000, '5 min 30 s'],
    [3_600_000, '1 h'],
    [5_400_000, '1 h 30 min'],
    [86_400_000, '1 d'],
    [90_000_000, '1 d 1 h'],
    [-1, '?'],
    [Number.NaN, '?'],
    [Number.POSITIVE_INFINITY, '?'],
  ])('%s ms reads %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('formatTimeOfDay', () => {
  it('gives the local hours, minutes and seconds', () => {
    const at = new Date(2026, 11, 2, 14, 5, 9, 700).getTime();
    expect(formatTimeOfDay(at)).toBe('14:05:09');
  });
});
