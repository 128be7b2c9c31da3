/**
 * The forecast (time to threshold) and anomaly rules of the threshold engine: what they raise,
 * escalate, update and clear, with which details and words, from readings that come in order,
 * late, or not at all; per-device settings; state kept across a restart; and their validation.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, anomalyRule as unusual, forecastRule as batteryForecast } from '../../bench/forecast-accuracy';
import { describeAlert, formatLead, type AlertWording } from '../../nodes/threshold/alert-text';
import { applyJournal, ThresholdEngine, type AlertEvent, type EngineSnapshot, type JournalEntry } from '../../nodes/threshold/engine';
import { ruleFromProperties } from '../../nodes/threshold/node-config';
import { Thresholds, type AnomalyConfig, type ForecastConfig, type RuleConfig } from '../../nodes/threshold/rules';
import { Random } from '../../simulator/devices';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 1);
const at = (hours: number) => T0 + hours * HOUR;

/** The evaluation's battery forecast (warning within 48 h, critical within 6 h) over a 24 h window. */
function forecastRule(forecast: Partial<ForecastConfig> = {}, partial: Partial<RuleConfig> = {}): RuleConfig {
  return { ...batteryForecast({ ...DEFAULT_SETTINGS, windowMs: 24 * HOUR, ...forecast }), ...partial };
}

function anomalyRule(anomaly: Partial<AnomalyConfig> = {}, partial: Partial<RuleConfig> = {}): RuleConfig {
  const levels = [
    { severity: 'warning' as const, value: 4 },
    { severity: 'critical' as const, value: 8 },
  ];
  return { ...unusual(levels, { history: 50, warmup: 20, side: 'both', minDeviation: 0, ...anomaly }), ...partial };
}

function engineWithLog(rule: RuleConfig) {
  const events: AlertEvent[] = [];
  const journal: JournalEntry[] = [];
  const engine = new ThresholdEngine(rule, 'node-1', {
    alert: (e) => events.push(e),
    stateChanged: (k, a, s) => journal.push({ k, a, s: Number.isNaN(s) ? null : s }),
  });
  return { engine, events, journal };
}

const battery: AlertWording = { reading: 'battery', rule: 'forecast', measure: 'value', rateUnit: '/min', unit: 'V' };
const brief = (e: AlertEvent) => `${e.change} ${e.severity} at ${(e.at - T0) / HOUR} h`;

/** A battery losing `perHour` volts an hour from 3.6 V, read every `every` hours. */
function decline(engine: ThresholdEngine, key: string, fromHour: number, toHour: number, perHour = 0.005, every = 1, noise?: Random): void {
  for (let h = fromHour; h <= toHour; h += every) {
    const value = 3.6 - perHour * h + (noise ? (noise.next() - 0.5) * 0.01 : 0);
    expect(engine.read(key, value, at(h), at(h))).toBeUndefined();
  }
}

describe('forecast: time to threshold', () => {
  it('raises a warning once the crossing is within 48 h, escalates within 6 h, and says when', () => {
    // 3.6 V falling 5 mV an hour: 3.3 V at 60 h. The trend may raise once its readings cover half its 24 h window.
    const { engine, events } = engineWithLog(forecastRule());
    decline(engine, 'dev-1', 0, 56);
    expect(events.map(brief)).toEqual(['raised warning at 12 h', 'escalated critical at 54 h']);
    const [raised, escalated] = events;
    expect(raised).toMatchObject({ key: 'dev-1', state: 'raised', value: 3.54, threshold: 3.3 });
    expect(raised.forecast).toMatchObject({ target: 3.3, direction: 'below', within: 48 * HOUR, confidence: 1 });
    expect(raised.forecast?.crossingAt).toBeCloseTo(at(60), -1);
    expect(raised.forecast?.leadTime).toBeCloseTo(48 * HOUR, -1);
    expect(raised.forecast?.perHour).toBeCloseTo(-0.005, 9);
    expect(describeAlert(raised, battery)).toBe('battery of dev-1 predicted below 3.3 V around 2026-12-03 12:00 UTC (in 48 h)');
    expect(describeAlert(escalated, battery)).toBe('battery of dev-1 predicted below 3.3 V around 2026-12-03 12:00 UTC (in 6 h)');
    expect(escalated.id).toBe(raised.id);
  });

  it('counts the lead time down between readings: a silent device escalates by the timer', () => {
    const { engine, events } = engineWithLog(forecastRule());
    decline(engine, 'dev-1', 0, 20);
    expect(events.map(brief)).toEqual(['raised warning at 12 h']);
    expect(engine.nextDeadline()).toBeCloseTo(at(54), -1);
    engine.tick(at(53.9));
    expect(events).toHaveLength(1);
    engine.tick(at(70));
    expect(events.map((e) => e.change)).toEqual(['raised', 'escalated']);
    expect(events[1].at).toBeCloseTo(at(54), -1);
    expect(events[1].forecast?.leadTime).toBeCloseTo(6 * HOUR, -1);
    expect(engine.nextDeadline()).toBe(Infinity);
  });

  it('raises nothing on too few readings, too short a span, or a trend it is unsure of', () => {
    const few = engineWithLog(forecastRule({ minReadings: 30 }));
    decline(few.engine, 'k', 0, 24, 0.005, 1);
    expect(few.events).toEqual([]);
    const short = engineWithLog(forecastRule());
    decline(short.engine, 'k', 40, 51, 0.005, 0.25);
    expect(short.events).toEqual([]);
    const unsure = engineWithLog(forecastRule({ minConfidence: 0.9 }));
    const random = new Random(1);
    for (let h = 0; h < 100; h += 0.5) unsure.engine.read('k', 3.35 + (random.next() - 0.5) * 0.1 - 0.0001 * h, at(h), at(h));
    expect(unsure.events).toEqual([]);
    expect(unsure.engine.status('k').forecast?.confidence).toBeLessThan(0.9);
  });

  it('keeps the alert while the lead time wavers below the clear margin, clears beyond it', () => {
    // Raised at 48 h; the margin of 100 % keeps it until the crossing is more than 96 h away.
    const { engine, events } = engineWithLog(forecastRule());
    decline(engine, 'k', 0, 13);
    expect(events.map((e) => e.change)).toEqual(['raised']);
    // The decline slows: crossing now about 80 h away; still raised (updated, not cleared).
    for (let h = 14; h <= 40; h++) engine.read('k', 3.535 - 0.0025 * (h - 13), at(h), at(h));
    expect(events.filter((e) => e.change === 'cleared')).toEqual([]);
    expect(engine.status('k').state).toBe('raised');
    // It stops declining: no crossing at all.
    for (let h = 41; h <= 70; h++) engine.read('k', 3.47, at(h), at(h));
    expect(events.at(-1)).toMatchObject({ change: 'cleared', severity: 'warning', id: events[0].id });
    expect(describeAlert(events.at(-1) as AlertEvent, battery)).toBe('battery of k no longer predicted below 3.3 V within 4 d');
  });

  it('announces a raised forecast again (same id) when its crossing moves by a fifth of the lead', () => {
    const { engine, events } = engineWithLog(forecastRule());
    decline(engine, 'k', 0, 14);
    // Faster now: 10 mV an hour from 3.53 V, so the crossing comes about 20 h sooner.
    for (let h = 15; h <= 22; h++) engine.read('k', 3.53 - 0.01 * (h - 14), at(h), at(h));
    const updates = events.filter((e) => e.change === 'updated');
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(updates.length).toBeLessThanOrEqual(4);
    expect(updates.every((u) => u.id === events[0].id && u.state === 'raised' && u.severity === 'warning')).toBe(true);
    const moved = updates.map((u) => u.forecast?.crossingAt as number);
    const first = events[0].forecast?.crossingAt as number;
    expect(first - moved[0]).toBeGreaterThan(0.2 * ((moved[0] - updates[0].at) as number) - 1);
  });

  it('announces no updates once the crossing is past, however the line moves', () => {
    const { engine, events } = engineWithLog(forecastRule());
    decline(engine, 'k', 0, 70);
    // Flat at the bottom: the line flattens, and where it crossed moves back every reading.
    for (let h = 71; h <= 100; h++) engine.read('k', 3.25, at(h), at(h));
    expect(events.filter((e) => e.change === 'updated' && e.at > at(60)).map(brief)).toEqual([]);
    expect(engine.status('k')).toMatchObject({ state: 'raised', severity: 'critical' });
  });

  it('clears when a battery swap turns the trend round', () => {
    const { engine, events } = engineWithLog(forecastRule());
    decline(engine, 'dev-7', 0, 30);
    expect(engine.status('dev-7').state).toBe('raised');
    for (let h = 31; h <= 33; h++) engine.read('dev-7', 3.62, at(h), at(h));
    expect(events.at(-1)).toMatchObject({ change: 'cleared', key: 'dev-7' });
    expect(events.at(-1)?.at).toBeLessThanOrEqual(at(32));
    for (let h = 34; h <= 120; h++) engine.read('dev-7', 3.62 - 0.0005 * (h - 31), at(h), at(h));
    expect(events.filter((e) => e.change === 'raised')).toHaveLength(1);
  });

  it('gives the same alerts when a gateway delivers the readings late, in batches, out of order', () => {
    const inOrder = engineWithLog(forecastRule());
    decline(inOrder.engine, 'k', 0, 60, 0.005, 0.5);
    const late = engineWithLog(forecastRule());
    // Every 6 h the gateway sends the last 6 h of readings, newest first.
    for (let sent = 6; sent <= 60; sent += 6) {
      for (let h = sent; h > sent - 6; h -= 0.5) late.engine.read('k', 3.6 - 0.005 * h, at(sent), at(h));
    }
    late.engine.read('k', 3.6, at(60), at(0));
    const summary = (events: AlertEvent[]) => events.filter((e) => e.change !== 'updated').map((e) => `${e.change} ${e.severity}`);
    expect(summary(late.events)).toEqual(summary(inOrder.events));
    expect(late.events[0].forecast?.crossingAt).toBeCloseTo(at(60), -1);
  });

  it('predicts a rise above a target too', () => {
    const { engine, events } = engineWithLog(forecastRule({ direction: 'above', target: 90 }, { levels: [{ severity: 'warning', value: 10 * HOUR }] }));
    for (let h = 0; h <= 30; h++) engine.read('disk-1', 50 + h, at(h), at(h));
    expect(events.map(brief)).toEqual(['raised warning at 30 h']);
    expect(describeAlert(events[0], { ...battery, reading: 'disk use', unit: '%' })).toBe('disk use of disk-1 predicted above 90 % around 2026-12-02 16:00 UTC (in 10 h)');
  });

  it('takes a device target and lead times from its metadata or msg.threshold', () => {
    const rule = forecastRule();
    const device = Thresholds.withOverrides(rule, [3.4]);
    expect(device.target).toBe(3.4);
    expect(device.leadWithin(0)).toBe(48 * HOUR);
    const both = Thresholds.withOverrides(rule, [{ target: 3.1, warning: '24h' }, { critical: 2 * HOUR }]);
    expect([both.target, both.leadWithin(0), both.leadWithin(1)]).toEqual([3.1, 24 * HOUR, 2 * HOUR]);
    expect(() => Thresholds.withOverrides(rule, [[3, 4]])).toThrow(/forecast override/);
    expect(() => Thresholds.withOverrides(rule, [{ target: 'low' }])).toThrow(/not a finite number/);
    expect(() => Thresholds.withOverrides(rule, [{ critical: '72h' }])).toThrow(/critical must be beyond warning/);

    const { engine, events } = engineWithLog(rule);
    for (let h = 0; h <= 13; h++) engine.read('fussy', 3.6 - 0.005 * h, at(h), at(h), device);
    expect(events.map(brief)).toEqual(['raised warning at 12 h']);
    expect(events[0].forecast?.crossingAt).toBeCloseTo(at(40), -1);
    expect(events[0].threshold).toBe(3.4);
  });

  it('keeps its trend across a restart (snapshot and journal), and loads files from before the rule existed', () => {
    const rule = forecastRule();
    const first = engineWithLog(rule);
    decline(first.engine, 'k', 0, 20);
    const snapshot = JSON.parse(JSON.stringify(first.engine.snapshot(at(20)))) as EngineSnapshot;
    const second = engineWithLog(rule);
    second.engine.restore(applyJournal(snapshot, first.journal), at(20.5));
    expect(second.events).toEqual([]);
    decline(second.engine, 'k', 21, 56);
    decline(first.engine, 'k', 21, 56);
    expect(second.events.map(brief)).toEqual(first.events.slice(1).map(brief));
    expect(second.events[0].id).toBe(first.events[0].id);

    // A file of the same rule written before forecasts kept a trend: nine fields a key.
    const old = { ...snapshot, keys: snapshot.keys.map((k) => k.slice(0, 9)) } as EngineSnapshot;
    const third = engineWithLog(rule);
    third.engine.restore(old, at(21));
    expect(third.engine.status('k')).toMatchObject({ state: 'raised', severity: 'warning' });
    decline(third.engine, 'k', 21, 40, 0.005, 0.5);
    expect(third.events).toEqual([]);
  });

  it('clears a saved forecast alert when the direction changed (a different rule)', () => {
    const first = engineWithLog(forecastRule());
    decline(first.engine, 'k', 0, 20);
    const changed = engineWithLog(forecastRule({ direction: 'above', target: 4 }));
    changed.engine.restore(JSON.parse(JSON.stringify(first.engine.snapshot(at(20)))), at(21));
    expect(changed.events).toMatchObject([{ change: 'cleared', reason: 'rule-changed', key: 'k' }]);
  });

  it('rejects readings it cannot use and leaves the trend alone', () => {
    const { engine } = engineWithLog(forecastRule());
    decline(engine, 'k', 0, 5);
    const before = engine.status('k').forecast;
    expect(engine.read('k', 'flat', at(6), at(6))?.code).toBe('not_numeric');
    expect(engine.read('k', Number.NaN, at(6), at(6))?.code).toBe('not_finite');
    expect(engine.status('k').forecast).toEqual(before);
  });
});

describe('anomaly: against the device own history', () => {
  function learn(engine: ThresholdEngine, key: string, usual: number, count: number, random: Random, from = 0): number {
    for (let i = 0; i < count; i++) expect(engine.read(key, usual + (random.next() - 0.5) * 2, T0 + (from + i) * 60_000)).toBeUndefined();
    return from + count;
  }

  it('knows each pump by its own normal: 80 is unusual for the pump at 60, not for the pump at 80', () => {
    const { engine, events } = engineWithLog(anomalyRule());
    const random = new Random(7);
    learn(engine, 'pump-60', 60, 100, random);
    learn(engine, 'pump-80', 80, 100, random);
    engine.read('pump-80', 80, T0 + 200 * 60_000);
    expect(events).toEqual([]);
    engine.read('pump-60', 80, T0 + 201 * 60_000);
    expect(events.map((e) => `${e.key} ${e.change} ${e.severity}`)).toEqual(['pump-60 raised critical']);
    expect(events[0].value).toBe(80);
    expect(events[0].anomaly?.usual).toBeCloseTo(60, 0);
    expect(events[0].anomaly?.score).toBeGreaterThan(8);
    const text = describeAlert(events[0], { reading: 'temperature', rule: 'anomaly', measure: 'value', rateUnit: '/min', unit: '°C' });
    expect(text).toMatch(/^temperature unusually high on pump-60 \(80 °C, usually 60(\.\d+)? ± 0\.\d+\)$/);
    engine.read('pump-60', 60.2, T0 + 202 * 60_000);
    expect(events.at(-1)).toMatchObject({ change: 'cleared', id: events[0].id });
    expect(describeAlert(events.at(-1) as AlertEvent, { reading: 'temperature', rule: 'anomaly', measure: 'value', rateUnit: '/min', unit: '°C' })).toBe('temperature back to usual on pump-60 (60.2 °C)');
  });

  it('stays quiet during the warm-up, however wild the readings', () => {
    const { engine, events } = engineWithLog(anomalyRule({ warmup: 20 }));
    for (let i = 0; i < 20; i++) engine.read('k', i % 2 === 0 ? 0 : 1000, T0 + i);
    expect(events).toEqual([]);
  });

  it('escalates by score and clears through a deadband on the score', () => {
    const { engine, events } = engineWithLog(anomalyRule({}, { hysteresis: 'deadband', deadband: 2 }));
    const random = new Random(3);
    learn(engine, 'k', 50, 60, random);
    const spread = engine.status('k').anomaly?.spread as number;
    const usual = engine.status('k').anomaly?.usual as number;
    engine.read('k', usual + 5 * spread, T0 + 1e6);
    engine.read('k', usual + 12 * spread, T0 + 1e6 + 1);
    engine.read('k', usual + 3 * spread, T0 + 1e6 + 2);
    engine.read('k', usual + 1 * spread, T0 + 1e6 + 3);
    expect(events.map((e) => `${e.change} ${e.severity}`)).toEqual(['raised warning', 'escalated critical', 'deescalated warning', 'cleared warning']);
  });

  it('watches one side when so set', () => {
    const { engine, events } = engineWithLog(anomalyRule({ side: 'above' }));
    const random = new Random(4);
    learn(engine, 'k', 50, 60, random);
    engine.read('k', 0, T0 + 1e6);
    expect(events).toEqual([]);
    engine.read('k', 100, T0 + 1e6 + 1);
    expect(events.map((e) => e.change)).toEqual(['raised']);
  });

  it('takes a device own levels from its metadata', () => {
    const rule = anomalyRule();
    const device = Thresholds.withOverrides(rule, [{ warning: 2, critical: 3 }]);
    expect([device.raiseThreshold(0), device.raiseThreshold(1)]).toEqual([2, 3]);
    expect(() => Thresholds.withOverrides(rule, [{ critical: 1 }])).toThrow(/critical must be beyond warning/);
  });

  it('keeps what it learnt across a restart', () => {
    const rule = anomalyRule();
    const first = engineWithLog(rule);
    const random = new Random(5);
    learn(first.engine, 'k', 50, 60, random);
    const second = engineWithLog(rule);
    second.engine.restore(JSON.parse(JSON.stringify(first.engine.snapshot(T0))), T0 + 1e6);
    expect(second.engine.status('k').anomaly).toEqual(first.engine.status('k').anomaly);
    second.engine.read('k', 80, T0 + 1e6);
    expect(second.events.map((e) => e.change)).toEqual(['raised']);
  });
});

describe('forecast and anomaly: validation and editor properties', () => {
  const invalid: Array<[string, RuleConfig, RegExp]> = [
    ['forecast without settings', { ...forecastRule(), forecast: undefined }, /needs its settings/],
    ['forecast with a non-numeric target', forecastRule({ target: Number.NaN }), /target must be a number/],
    ['forecast with two readings', forecastRule({ minReadings: 2 }), /minimum readings must be a whole number, 3 or more/],
    ['forecast with confidence 1.5', forecastRule({ minConfidence: 1.5 }), /between 0 and 1/],
    ['forecast with a negative margin', forecastRule({ clearMargin: -0.1 }), /clear margin must be zero or more/],
    ['forecast with a zero window', forecastRule({ windowMs: 0 }), /window must be a duration above zero/],
    ['forecast in an unknown direction', forecastRule({ direction: 'sideways' as never }), /direction must be below or above/],
    ['forecast whose critical lead is longer', forecastRule({}, { levels: [{ severity: 'warning', value: HOUR }, { severity: 'critical', value: 2 * HOUR }] }), /its lead time must not be longer/],
    ['forecast level without a lead time', forecastRule({}, { levels: [{ severity: 'warning', value: 0 }] }), /needs a lead time above zero/],
    ['forecast of a rate', forecastRule({}, { measure: 'rate' }), /rate of change works with/],
    ['anomaly without settings', { ...anomalyRule(), anomaly: undefined }, /needs its settings/],
    ['anomaly with a history of 1', anomalyRule({ history: 1 }), /history must be a whole number/],
    ['anomaly with a warm-up of 1.5', anomalyRule({ warmup: 1.5 }), /warm-up must be a whole number/],
    ['anomaly on an unknown side', anomalyRule({ side: 'left' as never }), /side must be both, above or below/],
    ['anomaly with a negative minimum deviation', anomalyRule({ minDeviation: -1 }), /minimum deviation must be zero or more/],
    ['anomaly level at zero', anomalyRule({}, { levels: [{ severity: 'warning', value: 0 }] }), /spreads above zero/],
    ['anomaly clear level above raise level', anomalyRule({}, { hysteresis: 'explicit', levels: [{ severity: 'warning', value: 4, clear: 5 }] }), /must be at or below/],
  ];

  it.each(invalid)('rejects %s', (_name, rule, message) => {
    expect(() => new ThresholdEngine(rule, 's', { alert: () => undefined })).toThrow(message);
  });

  it('reads the editor properties of a forecast, with defaults for what is left empty', () => {
    const rule = ruleFromProperties({ rule: 'forecast', forecastTarget: '3.3', levels: [{ severity: 'warning', value: '48h' }, { severity: 'critical', value: '6h' }] });
    expect(rule.forecast).toEqual({ direction: 'below', target: 3.3, windowMs: 48 * HOUR, minReadings: 10, minConfidence: 0.9, clearMargin: 1 });
    expect(rule.levels.map((l) => l.value)).toEqual([48 * HOUR, 6 * HOUR]);
    const set = ruleFromProperties({
      rule: 'forecast',
      forecastDirection: 'above',
      forecastTarget: '90',
      forecastWindow: '12h',
      forecastMinReadings: '20',
      forecastMinConfidence: '0.8',
      forecastClearMargin: '50',
      levels: [{ severity: 'major', value: '2h' }],
    });
    expect(set.forecast).toEqual({ direction: 'above', target: 90, windowMs: 12 * HOUR, minReadings: 20, minConfidence: 0.8, clearMargin: 0.5 });
    expect(() => ruleFromProperties({ rule: 'forecast', levels: [{ severity: 'warning', value: '48h' }] })).toThrow(/needs a target/);
    expect(() => ruleFromProperties({ rule: 'forecast', forecastTarget: '3.3', forecastWindow: 'long', levels: [{ severity: 'warning', value: '48h' }] })).toThrow(/forecast window must be a positive duration/);
    expect(() => ruleFromProperties({ rule: 'forecast', forecastTarget: '3.3', levels: [{ severity: 'warning', value: 'soon' }] })).toThrow(/lead time must be a positive duration/);
  });

  it('reads the editor properties of an anomaly rule, with defaults for what is left empty', () => {
    expect(ruleFromProperties({ rule: 'anomaly', levels: [{ severity: 'warning', value: '4' }] }).anomaly).toEqual({ history: 100, warmup: 30, side: 'both', minDeviation: 0 });
    expect(ruleFromProperties({ rule: 'anomaly', anomalyHistory: '500', anomalyWarmup: '50', anomalySide: 'below', anomalyMinDeviation: '2.5', levels: [{ severity: 'warning', value: '4' }] }).anomaly).toEqual({
      history: 500,
      warmup: 50,
      side: 'below',
      minDeviation: 2.5,
    });
    expect(() => ruleFromProperties({ rule: 'anomaly', anomalyHistory: 'long', levels: [{ severity: 'warning', value: '4' }] })).toThrow(/anomaly history must be a number/);
  });

  it('words lead times as people say them', () => {
    expect([40_000, 25 * 60_000, 31 * HOUR, 71.4 * HOUR, 5 * 24 * HOUR, -1].map(formatLead)).toEqual(['40 s', '25 min', '31 h', '71 h', '5 d', '?']);
  });
});
