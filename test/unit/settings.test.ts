/**
 * Reading settings, one way for every node (nodes/shared/settings.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  choiceSetting,
  durationSetting,
  listSetting,
  numberSetting,
  optionalNumberSetting,
  SettingsError,
  SettingsReader,
  settingsOrProblem,
  type NumberRange,
} from '../../nodes/shared/settings';

describe('numberSetting', () => {
  it.each<[string, unknown, NumberRange, number]>([
    ['empty: the default', '', {}, 7],
    ['blank: the default', '  ', {}, 7],
    ['missing: the default', undefined, {}, 7],
    ['typed text', ' 12 ', {}, 12],
    ['a number as saved', 12, {}, 12],
    ['a fraction', '0.5', { min: 0 }, 0.5],
    ['the lowest allowed', '1', { min: 1, max: 10 }, 1],
    ['the highest allowed', '10', { min: 1, max: 10, integer: true }, 10],
  ])('%s', (_, value, range, expected) => {
    expect(numberSetting(value, 7, 'batch size', range)).toBe(expected);
  });

  it.each<[string, unknown, NumberRange, string]>([
    ['not a number', 'lots', {}, 'batch size must be a number (got "lots")'],
    ['below the least', '0', { min: 1 }, 'batch size must be a number of at least 1 (got "0")'],
    ['above the most', 11, { max: 10 }, 'batch size must be a number of at most 10 (got 11)'],
    ['out of range', '11', { min: 1, max: 10 }, 'batch size must be a number from 1 to 10 (got "11")'],
    ['a fraction where whole numbers go', '1.5', { min: 1, integer: true }, 'batch size must be a whole number of at least 1 (got "1.5")'],
    ['infinite', 'Infinity', {}, 'batch size must be a number (got "Infinity")'],
    ['a boolean', true, {}, 'batch size must be a number (got true)'],
  ])('refuses %s, naming the field and the value', (_, value, range, message) => {
    expect(() => numberSetting(value, 7, 'batch size', range)).toThrow(new SettingsError(message));
  });

  it('leaves an empty optional number undefined', () => {
    expect(optionalNumberSetting('', 'deadband')).toBeUndefined();
    expect(optionalNumberSetting('-2.5', 'deadband')).toBe(-2.5);
  });
});

describe('choiceSetting, listSetting, durationSetting', () => {
  it('reads a choice, its default when empty, and refuses others', () => {
    expect(choiceSetting('', ['fifo', 'key'] as const, 'fifo', 'order')).toBe('fifo');
    expect(choiceSetting('key', ['fifo', 'key'] as const, 'fifo', 'order')).toBe('key');
    expect(() => choiceSetting('lifo', ['fifo', 'key'] as const, 'fifo', 'order')).toThrow(new SettingsError('order must be one of fifo, key (got "lifo")'));
  });

  it.each([
    [undefined, []],
    ['', []],
    [' a, b ,,c ', ['a', 'b', 'c']],
    ['pump-1, pump-2\npump-3  pump-4,', ['pump-1', 'pump-2', 'pump-3', 'pump-4']],
  ])('lists %j', (text, expected) => {
    expect(listSetting(text)).toEqual(expected);
  });

  it.each([
    [450, 'ms', 450],
    [45, 's', 45_000],
    [10, 'm', 600_000],
    [15, 'min', 900_000],
    [1.5, 'h', 5_400_000],
    [2, 'd', 172_800_000],
  ])('%d %s is %d ms', (amount, unit, ms) => {
    expect(durationSetting(amount, unit, 'window')).toBe(ms);
  });

  it('refuses an unknown unit', () => {
    expect(() => durationSetting(1, 'week', 'window')).toThrow(new SettingsError('window must be in one of ms, s, m, min, h, d (got "week")'));
  });
});

describe('SettingsReader', () => {
  it('finds every problem at once and uses the defaults meanwhile', () => {
    const reader = new SettingsReader();
    expect(reader.number('lots', 5, 'batch size', { min: 1 })).toBe(5);
    expect(reader.choice('lifo', ['fifo', 'key'] as const, 'order')).toBe('fifo');
    reader.problem('set an absolute data folder');
    expect(() => reader.check()).toThrow(
      new SettingsError('batch size must be a number of at least 1 (got "lots"); order must be one of fifo, key (got "lifo"); set an absolute data folder'),
    );
  });

  it('passes other errors on', () => {
    expect(() => new SettingsReader().read(() => JSON.parse('{'), 0)).toThrow(SyntaxError);
  });

  it('has nothing to say about good settings', () => {
    const reader = new SettingsReader();
    expect(reader.number('3', 5, 'batch size')).toBe(3);
    expect(() => reader.check()).not.toThrow();
  });
});

describe('settingsOrProblem', () => {
  it('turns a SettingsError into the problem, and nothing else', () => {
    expect(settingsOrProblem(() => numberSetting('x', 1, 'the expiry (s)'))).toEqual({ problem: 'the expiry (s) must be a number (got "x")' });
    expect(settingsOrProblem(() => 3)).toBe(3);
    expect(() => settingsOrProblem(() => JSON.parse('{'))).toThrow(SyntaxError);
  });
});
