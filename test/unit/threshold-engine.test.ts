/**
 * The threshold state machine, driven by tables: sequences of readings and clock ticks, each
 * with the alert events it must produce ("raised warning", "escalated critical", ...).
 */
import { describe, expect, it } from 'vitest';
import { applyJournal, ThresholdEngine, type AlertEvent, type JournalEntry } from '../../nodes/threshold/engine';
import { Thresholds, type RuleConfig } from '../../nodes/threshold/rules';

type Step =
  | { at: number; read: unknown; key?: string; sampleAt?: number; override?: unknown; expect: string[] }
  | { at: number; tick: true; expect: string[] };

interface Case {
  name: string;
  rule: Partial<RuleConfig>;
  steps: Step[];
}

function config(partial: Partial<RuleConfig>): RuleConfig {
  return {
    rule: 'above',
    measure: 'value',
    rateUnitMs: 1000,
    hysteresis: 'none',
    deadband: 0,
    levels: [{ severity: 'warning', value: 80 }],
    raise: { mode: 'immediate' },
    clear: { mode: 'immediate' },
    ...partial,
  };
}

function engineWithLog(rule: RuleConfig, scope = 'node-1') {
  const events: AlertEvent[] = [];
  const journal: JournalEntry[] = [];
  const engine = new ThresholdEngine(rule, scope, {
    alert: (e) => events.push(e),
    stateChanged: (k, a, s) => journal.push({ k, a, s: Number.isNaN(s) ? null : s }),
  });
  return { engine, events, journal };
}

const describeEvent = (e: AlertEvent) => `${e.change} ${e.severity}`;

function play(rule: RuleConfig, steps: Step[]) {
  const { engine, events } = engineWithLog(rule);
  steps.forEach((step, i) => {
    const from = events.length;
    if ('tick' in step) {
      engine.tick(step.at);
    } else {
      const thresholds = step.override === undefined ? undefined : Thresholds.withOverrides(rule, [step.override]);
      const error = engine.read(step.key ?? 'dev-1', step.read, step.at, step.sampleAt ?? step.at, thresholds);
      expect(error, `step ${i}: reading ${JSON.stringify(step.read)} rejected`).toBeUndefined();
    }
    expect(events.slice(from).map(describeEvent), `step ${i} (${JSON.stringify(step)})`).toEqual(step.expect);
  });
  return { engine, events };
}

const r = (at: number, read: unknown, ...expected: string[]): Step => ({ at, read, expect: expected });
const tick = (at: number, ...expected: string[]): Step => ({ at, tick: true, expect: expected });

const cases: Case[] = [
  {
    name: 'above without hysteresis clears as soon as the value is not above',
    rule: {},
    steps: [r(0, 79), r(1, 81, 'raised warning'), r(2, 85), r(3, 80, 'cleared warning'), r(4, 80.01, 'raised warning')],
  },
  {
    name: 'explicit hysteresis: raise above 80, clear below 75 (75 itself holds)',
    rule: { hysteresis: 'explicit', levels: [{ severity: 'warning', value: 80, clear: 75 }] },
    steps: [r(0, 81, 'raised warning'), r(1, 78), r(2, 75), r(3, 74.9, 'cleared warning'), r(4, 79), r(5, 80), r(6, 80.5, 'raised warning')],
  },
  {
    name: 'deadband 5 on above 80 clears below 75',
    rule: { hysteresis: 'deadband', deadband: 5 },
    steps: [r(0, 90, 'raised warning'), r(1, 76), r(2, 74, 'cleared warning')],
  },
  {
    name: 'deadband 0 behaves as no hysteresis',
    rule: { hysteresis: 'deadband', deadband: 0 },
    steps: [r(0, 81, 'raised warning'), r(1, 80, 'cleared warning')],
  },
  {
    name: 'below with deadband',
    rule: { rule: 'below', hysteresis: 'deadband', deadband: 0.2, levels: [{ severity: 'warning', value: 3.3 }] },
    steps: [r(0, 3.4), r(1, 3.29, 'raised warning'), r(2, 3.45), r(3, 3.51, 'cleared warning')],
  },
  {
    name: 'outside a band, edges included in the normal zone, with deadband',
    rule: { rule: 'outside', hysteresis: 'deadband', deadband: 2, levels: [{ severity: 'major', low: 10, high: 70 }] },
    steps: [r(0, 70), r(1, 10), r(2, 71, 'raised major'), r(3, 69), r(4, 67.9, 'cleared major'), r(5, 9, 'raised major'), r(6, 11.5), r(7, 12.5, 'cleared major')],
  },
  {
    name: 'inside a band, edges included',
    rule: { rule: 'inside', levels: [{ severity: 'info', low: 40, high: 60 }] },
    steps: [r(0, 39), r(1, 40, 'raised info'), r(2, 60), r(3, 60.1, 'cleared info'), r(4, 50, 'raised info')],
  },
  {
    name: 'equals a state string',
    rule: { rule: 'equals', levels: [{ severity: 'warning', value: 'open' }] },
    steps: [r(0, 'closed'), r(1, 'open', 'raised warning'), r(2, 'open'), r(3, 'closed', 'cleared warning')],
  },
  {
    name: 'not equals, with numbers given as text',
    rule: { rule: 'notEquals', levels: [{ severity: 'minor', value: 0 }] },
    steps: [r(0, 0), r(1, '0'), r(2, 3, 'raised minor'), r(3, '0', 'cleared minor')],
  },
  {
    name: 'equals a boolean',
    rule: { rule: 'equals', levels: [{ severity: 'warning', value: true }] },
    steps: [r(0, false), r(1, true, 'raised warning'), r(2, 'true'), r(3, false, 'cleared warning')],
  },
  {
    name: 'two severities escalate and de-escalate through their own hysteresis',
    rule: {
      hysteresis: 'explicit',
      levels: [
        { severity: 'warning', value: 70, clear: 65 },
        { severity: 'critical', value: 90, clear: 85 },
      ],
    },
    steps: [
      r(0, 72, 'raised warning'),
      r(1, 95, 'escalated critical'),
      r(2, 87),
      r(3, 84, 'deescalated warning'),
      r(4, 68),
      r(5, 64, 'cleared warning'),
      r(6, 99, 'raised critical'),
      r(7, 10, 'cleared critical'),
    ],
  },
  {
    name: 'count confirmation: 3 in a row to raise, 2 to clear; a break restarts the count',
    rule: { raise: { mode: 'count', count: 3 }, clear: { mode: 'count', count: 2 } },
    steps: [r(0, 81), r(1, 82), r(2, 79), r(3, 81), r(4, 82), r(5, 83, 'raised warning'), r(6, 70), r(7, 90), r(8, 70), r(9, 71, 'cleared warning')],
  },
  {
    name: 'duration confirmation raises by timer when no reading contradicts',
    rule: { raise: { mode: 'duration', ms: 10_000 } },
    steps: [r(0, 81), r(5_000, 82), tick(9_999), tick(10_000, 'raised warning'), tick(20_000)],
  },
  {
    name: 'duration confirmation: a contradicting reading restarts the clock',
    rule: { raise: { mode: 'duration', ms: 10_000 } },
    steps: [r(0, 81), r(5_000, 79), tick(10_000), r(6_000, 81), tick(15_999), tick(16_000, 'raised warning')],
  },
  {
    name: 'duration confirmation is also met by a late reading',
    rule: { raise: { mode: 'duration', ms: 10_000 }, clear: { mode: 'duration', ms: 5_000 } },
    steps: [r(0, 81), r(12_000, 82, 'raised warning'), r(13_000, 70), r(18_000, 71, 'cleared warning')],
  },
  {
    name: 'duration confirmation per level: warning and critical confirm separately',
    rule: { raise: { mode: 'duration', ms: 10_000 }, levels: [{ severity: 'warning', value: 70 }, { severity: 'critical', value: 90 }] },
    steps: [r(0, 75), r(4_000, 95), tick(10_000, 'raised warning'), tick(14_000, 'escalated critical')],
  },
  {
    name: 'silence raises without any message, escalates, and clears on the next message',
    rule: { rule: 'silence', levels: [{ severity: 'warning', value: 10_000 }, { severity: 'critical', value: 30_000 }] },
    steps: [r(0, 'anything'), tick(9_999), tick(10_000, 'raised warning'), tick(29_999), tick(30_000, 'escalated critical'), r(31_000, 1, 'cleared critical'), tick(40_000), tick(41_000, 'raised warning')],
  },
  {
    name: 'silence is pushed back by every message',
    rule: { rule: 'silence', levels: [{ severity: 'warning', value: 10_000 }] },
    steps: [r(0, 1), r(8_000, 1), tick(10_000), r(16_000, 1), tick(17_999), tick(26_000, 'raised warning')],
  },
  {
    name: 'silence cleared only after 2 messages when so set',
    rule: { rule: 'silence', clear: { mode: 'count', count: 2 }, levels: [{ severity: 'warning', value: 10_000 }] },
    steps: [r(0, 1), tick(10_000, 'raised warning'), r(11_000, 1), r(12_000, 1, 'cleared warning')],
  },
  {
    name: 'rate of change per second above 2 (the first reading has no rate)',
    rule: { measure: 'rate', rateUnitMs: 1000, levels: [{ severity: 'warning', value: 2 }] },
    steps: [r(0, 10), r(1_000, 11), r(2_000, 14, 'raised warning'), r(3_000, 15, 'cleared warning')],
  },
  {
    name: 'falling rate per minute below -2',
    rule: { rule: 'below', measure: 'rate', rateUnitMs: 60_000, levels: [{ severity: 'major', value: -2 }] },
    steps: [r(0, 50), r(60_000, 49), r(120_000, 45, 'raised major'), r(180_000, 45, 'cleared major')],
  },
];

describe('threshold engine: sequences of readings and ticks', () => {
  it.each(cases)('$name', ({ rule, steps }) => {
    play(config(rule), steps);
  });

  it('uses sample times for rates: a batch arriving at once still gives true rates, older samples are skipped', () => {
    const rule = config({ measure: 'rate', rateUnitMs: 1000, levels: [{ severity: 'warning', value: 2 }] });
    const { events } = play(rule, [
      { at: 5_000, read: 10, sampleAt: 0, expect: [] },
      { at: 5_000, read: 11, sampleAt: 1_000, expect: [] },
      { at: 5_000, read: 10, sampleAt: 500, expect: [] },
      { at: 5_000, read: 15, sampleAt: 2_000, expect: ['raised warning'] },
    ]);
    expect(events[0].value).toBe(4);
  });

  it('keeps keys independent', () => {
    const { engine, events } = engineWithLog(config({}));
    engine.read('a', 90, 0);
    engine.read('b', 10, 0);
    engine.read('b', 95, 1);
    engine.read('a', 10, 2);
    expect(events.map((e) => `${e.key} ${e.change}`)).toEqual(['a raised', 'b raised', 'a cleared']);
    expect(engine.status('b').state).toBe('raised');
    expect(engine.status('a').state).toBe('normal');
  });

  it('keeps one episode id from raise through escalation to clear, and a new id for the next episode', () => {
    const rule = config({ levels: [{ severity: 'warning', value: 70 }, { severity: 'critical', value: 90 }] });
    const { engine, events } = engineWithLog(rule);
    engine.read('pump-17', 75, 1_000);
    engine.read('pump-17', 95, 2_000);
    engine.read('pump-17', 75, 3_000);
    engine.read('pump-17', 50, 4_000);
    engine.read('pump-17', 75, 5_000);
    const ids = events.map((e) => e.id);
    expect(new Set(ids.slice(0, 4)).size).toBe(1);
    expect(ids[4]).not.toBe(ids[0]);
    expect(ids[0]).toMatch(/^[0-9a-f]{24}$/);
    expect(events.slice(0, 4).every((e) => e.since === 1_000)).toBe(true);
    expect(events[4].since).toBe(5_000);
  });

  it('reports value, threshold and previous severity in events', () => {
    const rule = config({
      hysteresis: 'explicit',
      levels: [
        { severity: 'warning', value: 70, clear: 65 },
        { severity: 'critical', value: 90, clear: 85 },
      ],
    });
    const { engine, events } = engineWithLog(rule);
    engine.read('k', 91, 0);
    engine.read('k', 80, 1);
    engine.read('k', 60, 2);
    expect(events.map(({ change, severity, previousSeverity, value, threshold, state }) => ({ change, severity, previousSeverity, value, threshold, state }))).toEqual([
      { change: 'raised', severity: 'critical', previousSeverity: undefined, value: 91, threshold: 90, state: 'raised' },
      { change: 'deescalated', severity: 'warning', previousSeverity: 'critical', value: 80, threshold: 85, state: 'raised' },
      { change: 'cleared', severity: 'warning', previousSeverity: undefined, value: 60, threshold: 65, state: 'cleared' },
    ]);
  });

  it('confirms a duration at the deadline time, not at the late tick', () => {
    const { engine, events } = engineWithLog(config({ raise: { mode: 'duration', ms: 10_000 } }));
    engine.read('k', 81, 0);
    expect(engine.nextDeadline()).toBe(10_000);
    engine.tick(60_000);
    expect(events[0].at).toBe(10_000);
    expect(events[0].since).toBe(10_000);
  });

  it('watches expected keys for silence before they ever report', () => {
    const { engine, events } = engineWithLog(config({ rule: 'silence', levels: [{ severity: 'warning', value: 60_000 }] }));
    engine.expect(['pump-1', 'pump-2'], 0);
    engine.read('pump-2', 1, 30_000);
    engine.tick(60_000);
    expect(events.map((e) => `${e.key} ${e.change}`)).toEqual(['pump-1 raised']);
    expect(events[0].value).toBe(60_000);
  });

  it('serves many keys from one heap: 10,000 silent keys all fire once', () => {
    const { engine, events } = engineWithLog(config({ rule: 'silence', levels: [{ severity: 'warning', value: 1_000 }] }));
    for (let i = 0; i < 10_000; i++) engine.read(`d${i}`, 1, i % 500);
    for (let i = 0; i < 10_000; i += 2) engine.read(`d${i}`, 1, 900);
    engine.tick(1_499);
    expect(events.length).toBe(5_000);
    engine.tick(1_900);
    expect(events.length).toBe(10_000);
    expect(new Set(events.map((e) => e.key)).size).toBe(10_000);
    expect(engine.nextDeadline()).toBe(Infinity);
  });

  it('applies per-reading thresholds (msg.threshold or device metadata)', () => {
    const rule = config({ levels: [{ severity: 'warning', value: 70 }, { severity: 'critical', value: 90 }] });
    play(rule, [
      { at: 0, read: 60, override: 50, expect: ['raised warning'] },
      { at: 1, read: 60, expect: ['cleared warning'] },
      { at: 2, read: 80, override: { critical: 75 }, expect: ['raised critical'] },
      { at: 3, read: 80, override: { warning: 85, critical: 95 }, expect: ['cleared critical'] },
    ]);
  });
});

describe('threshold engine: bad input', () => {
  const bad: Array<[unknown, string]> = [
    ['abc', 'not_numeric'],
    ['', 'not_numeric'],
    [NaN, 'not_finite'],
    [Infinity, 'not_finite'],
    [-Infinity, 'not_finite'],
    ['NaN', 'not_finite'],
    ['1e999', 'not_finite'],
    [undefined, 'missing_value'],
    [null, 'missing_value'],
    [{ temperature: 3 }, 'wrong_type'],
    [[1, 2], 'wrong_type'],
    [true, 'wrong_type'],
  ];

  it.each(bad)('rejects %j with %s and leaves the key untouched', (value, code) => {
    const { engine, events } = engineWithLog(config({ raise: { mode: 'count', count: 3 } }));
    engine.read('k', 81, 0);
    engine.read('k', 82, 1);
    expect(engine.read('k', value, 2)?.code).toBe(code);
    expect(engine.read('fresh', value, 2)?.code).toBe(code);
    expect(engine.keyCount).toBe(1);
    engine.read('k', 83, 3);
    expect(events.map(describeEvent)).toEqual(['raised warning']);
  });

  it('accepts numeric text', () => {
    const { engine, events } = engineWithLog(config({}));
    expect(engine.read('k', ' 81.5 ', 0)).toBeUndefined();
    expect(events[0].value).toBe(81.5);
  });

  it('equality rules reject objects and non-finite numbers but take strings and booleans', () => {
    const { engine } = engineWithLog(config({ rule: 'equals', levels: [{ severity: 'warning', value: 'open' }] }));
    expect(engine.read('k', { a: 1 }, 0)?.code).toBe('wrong_type');
    expect(engine.read('k', NaN, 0)?.code).toBe('not_finite');
    expect(engine.read('k', undefined, 0)?.code).toBe('missing_value');
    expect(engine.read('k', false, 0)).toBeUndefined();
  });
});

describe('threshold engine: reset, snapshot and restore', () => {
  const twoLevels = config({
    hysteresis: 'explicit',
    levels: [
      { severity: 'warning', value: 70, clear: 65 },
      { severity: 'critical', value: 90, clear: 85 },
    ],
  });

  it('reset clears an active alert with reason reset and forgets the key', () => {
    const { engine, events } = engineWithLog(twoLevels);
    engine.read('a', 95, 0);
    engine.read('b', 50, 0);
    engine.reset(5, 'a');
    expect(events.at(-1)).toMatchObject({ change: 'cleared', severity: 'critical', reason: 'reset', key: 'a' });
    expect(engine.keyCount).toBe(1);
    engine.read('a', 95, 6);
    expect(events.at(-1)).toMatchObject({ change: 'raised', since: 6 });
    engine.reset(7);
    expect(engine.keyCount).toBe(0);
    expect(engine.activeCounts()).toEqual([0, 0]);
  });

  it('an alert raised before a restart is not raised again and clears with the same id', () => {
    const first = engineWithLog(twoLevels);
    first.engine.read('pump-17', 95, 1_000);
    first.engine.read('pump-9', 60, 1_000);
    const snapshot = JSON.parse(JSON.stringify(first.engine.snapshot(2_000)));
    const second = engineWithLog(twoLevels);
    second.engine.restore(snapshot, 3_000);
    expect(second.events).toEqual([]);
    expect(second.engine.activeCounts()).toEqual([0, 1]);
    second.engine.read('pump-17', 96, 4_000);
    second.engine.read('pump-17', 50, 5_000);
    expect(second.events.map(describeEvent)).toEqual(['cleared critical']);
    expect(second.events[0].id).toBe(first.events[0].id);
    expect(second.events[0].since).toBe(1_000);
  });

  it('restores half-finished confirmations', () => {
    const rule = config({ raise: { mode: 'count', count: 3 } });
    const first = engineWithLog(rule);
    first.engine.read('k', 81, 0);
    first.engine.read('k', 82, 1);
    const second = engineWithLog(rule);
    second.engine.restore(JSON.parse(JSON.stringify(first.engine.snapshot(2))), 3);
    second.engine.read('k', 83, 4);
    expect(second.events.map(describeEvent)).toEqual(['raised warning']);
  });

  it('journal entries written after the snapshot win', () => {
    const first = engineWithLog(twoLevels);
    first.engine.read('k', 50, 0);
    const snapshot = JSON.parse(JSON.stringify(first.engine.snapshot(1)));
    first.engine.read('k', 95, 2);
    first.engine.read('j', 75, 3);
    const second = engineWithLog(twoLevels);
    second.engine.restore(applyJournal(snapshot, first.journal), 10);
    expect(second.engine.status('k')).toMatchObject({ state: 'raised', severity: 'critical', since: 2 });
    expect(second.engine.status('j')).toMatchObject({ state: 'raised', severity: 'warning' });
    expect(second.engine.status('k').id).toBe(first.engine.status('k').id);
  });

  it('clears saved alerts whose rule changed, with reason rule-changed', () => {
    const first = engineWithLog(twoLevels);
    first.engine.read('k', 95, 0);
    const snapshot = JSON.parse(JSON.stringify(first.engine.snapshot(1)));
    const changed = engineWithLog(config({ rule: 'below', levels: [{ severity: 'warning', value: 10 }] }));
    changed.engine.restore(snapshot, 2);
    expect(changed.events).toMatchObject([{ change: 'cleared', severity: 'critical', reason: 'rule-changed', key: 'k', id: first.events[0].id }]);
    expect(changed.engine.keyCount).toBe(0);
    const lostLevel = engineWithLog(config({ levels: [{ severity: 'minor', value: 70 }] }));
    lostLevel.engine.restore(snapshot, 2);
    expect(lostLevel.events).toMatchObject([{ change: 'cleared', reason: 'rule-changed' }]);
  });

  it('restarts silence clocks at start: downtime raises no storm', () => {
    const rule = config({ rule: 'silence', levels: [{ severity: 'warning', value: 10_000 }] });
    const first = engineWithLog(rule);
    first.engine.read('a', 1, 0);
    first.engine.read('b', 1, 0);
    first.engine.tick(10_000);
    expect(first.events.length).toBe(2);
    first.engine.read('b', 1, 11_000);
    const second = engineWithLog(rule);
    second.engine.restore(JSON.parse(JSON.stringify(first.engine.snapshot(12_000))), 500_000);
    second.engine.tick(505_000);
    expect(second.events).toEqual([]);
    second.engine.tick(510_000);
    expect(second.events.map((e) => `${e.key} ${e.change}`)).toEqual(['b raised']);
    second.engine.read('a', 1, 511_000);
    expect(second.events.at(-1)).toMatchObject({ key: 'a', change: 'cleared', id: first.events[0].id });
  });
});

describe('threshold rules: validation', () => {
  const invalid: Array<[string, Partial<RuleConfig>, RegExp]> = [
    ['no levels', { levels: [] }, /at least one/],
    ['critical below warning on above', { levels: [{ severity: 'warning', value: 90 }, { severity: 'critical', value: 70 }] }, /critical must be beyond warning/],
    ['band with low above high', { rule: 'outside', levels: [{ severity: 'warning', low: 70, high: 10 }] }, /low \(70\) must be below high/],
    ['explicit clear on the wrong side', { hysteresis: 'explicit', levels: [{ severity: 'warning', value: 80, clear: 85 }] }, /clear level \(85\) must be at or below/],
    ['explicit without clear', { hysteresis: 'explicit', levels: [{ severity: 'warning', value: 80 }] }, /needs a clear level/],
    ['duplicate severity', { levels: [{ severity: 'warning', value: 80 }, { severity: 'warning', value: 90 }] }, /used twice/],
    ['unknown severity', { levels: [{ severity: 'urgent' as never, value: 80 }] }, /unknown severity/],
    ['count of zero', { raise: { mode: 'count', count: 0 } }, /whole number/],
    ['rate on equals', { rule: 'equals', measure: 'rate', levels: [{ severity: 'warning', value: 1 }] }, /rate of change works with/],
    ['silence with a raise delay', { rule: 'silence', raise: { mode: 'count', count: 2 }, levels: [{ severity: 'warning', value: 5 }] }, /its own duration/],
    ['inner band not inside outer for outside', { rule: 'outside', levels: [{ severity: 'warning', low: 0, high: 100 }, { severity: 'critical', low: 10, high: 90 }] }, /must enclose/],
  ];

  it.each(invalid)('rejects %s', (_name, partial, message) => {
    expect(() => new ThresholdEngine(config(partial), 's', { alert: () => undefined })).toThrow(message);
  });

  it('rejects malformed overrides with a reason', () => {
    const rule = config({ levels: [{ severity: 'warning', value: 70 }, { severity: 'critical', value: 90 }] });
    expect(() => Thresholds.withOverrides(rule, [{ urgent: 3 }])).toThrow(/does not have/);
    expect(() => Thresholds.withOverrides(rule, ['hot'])).toThrow(/not a finite number/);
    expect(() => Thresholds.withOverrides(rule, [{ warning: 95 }])).toThrow(/critical must be beyond warning/);
    expect(() => Thresholds.withOverrides(rule, [{ warning: { value: 60, nope: 1 } }])).toThrow(/unknown field/);
  });

  it('overrides keep explicit hysteresis distances', () => {
    const rule = config({ hysteresis: 'explicit', levels: [{ severity: 'warning', value: 80, clear: 75 }] });
    const th = Thresholds.withOverrides(rule, [50]);
    expect(th.raiseThreshold(0)).toBe(50);
    expect(th.clearThreshold(0)).toBe(45);
  });

  it('device thresholds and then message thresholds apply in order', () => {
    const rule = config({ levels: [{ severity: 'warning', value: 70 }, { severity: 'critical', value: 90 }] });
    const th = Thresholds.withOverrides(rule, [{ warning: 60, critical: 80 }, { critical: 85 }]);
    expect([th.raiseThreshold(0), th.raiseThreshold(1)]).toEqual([60, 85]);
  });

  it('silence overrides take durations as text', () => {
    const rule = config({ rule: 'silence', levels: [{ severity: 'warning', value: 60_000 }] });
    expect(Thresholds.withOverrides(rule, ['90s']).silenceAfter(0)).toBe(90_000);
    expect(Thresholds.withOverrides(rule, [{ warning: '2h' }]).silenceAfter(0)).toBe(7_200_000);
  });
});

describe('one key at a time (state shared between instances)', () => {
  const shared = (rule: RuleConfig) => {
    const events: AlertEvent[] = [];
    const engine = new ThresholdEngine(rule, 'node-1', { alert: (e) => events.push(e) }, { localTimers: false });
    return { engine, events };
  };

  it('hands a key from one engine to another as plain JSON: the episode goes on with its id, no event on import', () => {
    const rule = config({ raise: { mode: 'count', count: 2 }, levels: [{ severity: 'warning', value: 80 }, { severity: 'critical', value: 90 }] });
    const a = shared(rule);
    const b = shared(rule);
    a.engine.read('pump-1', 85, 0);
    a.engine.read('pump-1', 95, 1_000);
    b.engine.importKey('pump-1', JSON.parse(JSON.stringify(a.engine.exportKey('pump-1'))), 2_000);
    expect(b.events).toEqual([]);
    b.engine.read('pump-1', 96, 2_000);
    b.engine.read('pump-1', 10, 3_000);
    expect([...a.events, ...b.events].map(describeEvent)).toEqual(['raised warning', 'escalated critical', 'cleared critical']);
    expect(new Set([...a.events, ...b.events].map((e) => e.id)).size).toBe(1);
    expect(b.engine.status('pump-1').state).toBe('normal');
    b.engine.importKey('pump-1', undefined, 4_000);
    expect(b.engine.exportKey('pump-1')).toBeUndefined();
    expect(b.engine.keyCount).toBe(0);
  });

  it('keeps no local timers, and fires one key\'s deadlines in order with tickKey', () => {
    const { engine, events } = shared(config({ rule: 'silence', levels: [{ severity: 'warning', value: 10_000 }, { severity: 'critical', value: 30_000 }] }));
    engine.read('gate-1', 'hello', 0);
    engine.read('gate-2', 'hello', 0);
    expect(engine.nextDeadline()).toBe(Infinity);
    expect(engine.keyDeadline('gate-1')).toBe(10_000);
    expect(engine.keyDeadline('nobody')).toBe(Infinity);
    engine.tickKey('gate-1', 9_999);
    expect(events).toEqual([]);
    engine.tickKey('gate-1', 40_000);
    expect(events.map((e) => `${e.key} ${describeEvent(e)} at ${e.at}`)).toEqual(['gate-1 raised warning at 10000', 'gate-1 escalated critical at 30000']);
    expect(engine.keyDeadline('gate-1')).toBe(Infinity);
    // An imported row keeps its clock (a restore would restart it).
    const { engine: other, events: heard } = shared(config({ rule: 'silence', levels: [{ severity: 'warning', value: 10_000 }] }));
    other.importKey('gate-2', engine.exportKey('gate-2'), 50_000);
    other.tickKey('gate-2', 50_000);
    expect(heard.map((e) => `${e.key} ${describeEvent(e)} at ${e.at}`)).toEqual(['gate-2 raised warning at 10000']);
  });
});
