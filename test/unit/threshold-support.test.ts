/**
 * The threshold node's smaller pure parts: the deadline heap, the alert wording, the editor's
 * properties turned into a rule.
 */
import { describe, expect, it } from 'vitest';
import { describeAlert } from '../../nodes/threshold/alert-text';
import { DeadlineQueue } from '../../nodes/threshold/deadline-queue';
import type { AlertEvent } from '../../nodes/threshold/engine';
import { expectedKeyList, readingName, ruleFromProperties } from '../../nodes/threshold/node-config';

describe('DeadlineQueue', () => {
  it('pops 10,000 random deadlines in time order', () => {
    const queue = new DeadlineQueue();
    const times: number[] = [];
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 10_000; i++) {
      const t = Math.floor(random() * 1_000_000);
      times.push(t);
      queue.push(t, i);
    }
    const popped: number[] = [];
    while (queue.size > 0) {
      popped.push(queue.peekTime());
      queue.popSlot();
    }
    expect(popped).toEqual([...times].sort((a, b) => a - b));
    expect(queue.peekTime()).toBe(Infinity);
  });

  it('returns the slot of each deadline', () => {
    const queue = new DeadlineQueue();
    queue.push(30, 3);
    queue.push(10, 1);
    queue.push(20, 2);
    expect([queue.popSlot(), queue.popSlot(), queue.popSlot()]).toEqual([1, 2, 3]);
  });
});

describe('alert wording', () => {
  const event = (over: Partial<AlertEvent>): AlertEvent => ({
    id: 'x',
    key: 'pump-17',
    change: 'raised',
    state: 'raised',
    severity: 'warning',
    since: 0,
    at: 0,
    value: 82.5,
    threshold: 80,
    ...over,
  });
  const words = { reading: 'temperature', rule: 'above' as const, measure: 'value' as const, rateUnit: '/min' };

  it.each([
    [event({}), words, 'temperature above 80 on pump-17 (82.5)'],
    [event({ change: 'cleared', state: 'cleared', value: 74, threshold: 75 }), words, 'temperature back below 75 on pump-17 (74)'],
    [event({ change: 'deescalated', severity: 'warning', value: 84, threshold: 85 }), words, 'temperature back below 85 on pump-17 (84), now warning'],
    [event({ threshold: { low: 10, high: 70 }, value: 75 }), { ...words, rule: 'outside' as const }, 'temperature outside 10 to 70 on pump-17 (75)'],
    [event({ threshold: 'open', value: 'open' }), { ...words, reading: 'door', rule: 'equals' as const }, 'door is open on pump-17'],
    [event({ threshold: 2, value: 3.41234 }), { ...words, measure: 'rate' as const }, 'temperature rate above 2/min on pump-17 (3.4123/min)'],
    [event({ threshold: 600_000, value: 600_000 }), { ...words, rule: 'silence' as const }, 'pump-17 silent for 10 min'],
    [event({ change: 'cleared', state: 'cleared', threshold: 600_000, value: 725_000 }), { ...words, rule: 'silence' as const }, 'pump-17 reporting again after 12 min 5 s'],
    [event({ reason: 'reset', change: 'cleared' }), words, 'temperature alert reset on pump-17'],
    [event({ key: '' }), words, 'temperature above 80 (82.5)'],
  ])('%#: %s', (e, w, text) => {
    expect(describeAlert(e, w)).toBe(text);
  });
});

describe('editor properties to rule', () => {
  it('converts strings, units and confirmation settings', () => {
    const rule = ruleFromProperties({
      rule: 'above',
      hysteresis: 'explicit',
      levels: [
        { severity: 'critical', value: ' 90 ', clear: '85' },
        { severity: 'warning', value: '70', clear: '65' },
      ],
      raiseMode: 'duration',
      raiseValue: '10',
      raiseUnit: 'min',
      clearMode: 'count',
      clearValue: '3',
      measure: 'rate',
      rateUnit: 'second',
    });
    expect(rule.levels).toEqual([
      { severity: 'critical', value: 90, clear: 85 },
      { severity: 'warning', value: 70, clear: 65 },
    ]);
    expect(rule.raise).toEqual({ mode: 'duration', ms: 600_000 });
    expect(rule.clear).toEqual({ mode: 'count', count: 3 });
    expect(rule.rateUnitMs).toBe(1000);
  });

  it('reads silence durations and equality values', () => {
    expect(ruleFromProperties({ rule: 'silence', levels: [{ severity: 'warning', value: '10min' }, { severity: 'critical', value: '2h' }] }).levels.map((l) => l.value)).toEqual([600_000, 7_200_000]);
    expect(ruleFromProperties({ rule: 'equals', levels: [{ severity: 'warning', value: 'open' }, { severity: 'major', value: '42' }, { severity: 'critical', value: 'true' }] }).levels.map((l) => l.value)).toEqual(['open', 42, true]);
  });

  it('rejects what cannot run, saying why', () => {
    expect(() => ruleFromProperties({ rule: 'above', levels: [{ severity: 'warning', value: 'x' }] })).toThrow(/warning threshold must be a number/);
    expect(() => ruleFromProperties({ rule: 'above', levels: [] })).toThrow(/at least one/);
    expect(() => ruleFromProperties({ rule: 'above', levels: [{ severity: 'warning', value: '1' }], raiseMode: 'count', raiseValue: '0' })).toThrow(/whole number/);
    expect(() => ruleFromProperties({ rule: 'silence', levels: [{ severity: 'warning', value: 'soon' }] })).toThrow(/positive duration/);
  });

  it('names the reading after the field or the property path', () => {
    expect(readingName({ field: 'temperature' })).toBe('temperature');
    expect(readingName({ property: 'payload.humidity' })).toBe('humidity');
    expect(readingName({ property: 'payload' })).toBe('value');
    expect(readingName({ reading: 'oil pressure', field: 'p' })).toBe('oil pressure');
  });

  it('splits expected keys on commas, spaces and new lines', () => {
    expect(expectedKeyList('pump-1, pump-2\npump-3  pump-4,')).toEqual(['pump-1', 'pump-2', 'pump-3', 'pump-4']);
  });
});
