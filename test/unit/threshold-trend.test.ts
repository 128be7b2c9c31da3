/**
 * The maths under the forecast and anomaly rules: the exponentially weighted line fit on the
 * readings' own times (trend.ts) and the robust usual value and spread (baseline.ts), each
 * checked against figures worked out by hand or by a direct (stored-readings) computation.
 */
import { describe, expect, it } from 'vitest';
import { BaselineColumns } from '../../nodes/threshold/baseline';
import { TrendColumns } from '../../nodes/threshold/trend';
import { Random } from '../../simulator/devices';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 1);

function trendOf(readings: Array<[hours: number, value: number]>, windowHours = 48): TrendColumns {
  const trend = new TrendColumns((windowHours * HOUR) / 2);
  trend.grow(4);
  for (const [hours, value] of readings) trend.add(0, T0 + hours * HOUR, value);
  return trend;
}

/** The same fit from stored readings, the textbook way: weights e^(-age/tau), normal equations. */
function directFit(readings: Array<[number, number]>, windowHours: number): { slope: number; level: number } {
  const tau = windowHours / 2;
  const newest = Math.max(...readings.map(([h]) => h));
  let sw = 0;
  let st = 0;
  let sy = 0;
  let stt = 0;
  let sty = 0;
  for (const [h, y] of readings) {
    const w = Math.exp((h - newest) / tau);
    const t = h - newest;
    sw += w;
    st += w * t;
    sy += w * y;
    stt += w * t * t;
    sty += w * t * y;
  }
  const slope = (sw * sty - st * sy) / (sw * stt - st * st);
  return { slope: slope / HOUR, level: (sy - slope * st) / sw };
}

describe('trend: exponentially weighted least squares on the readings own times', () => {
  it('fits an exact line exactly, and predicts where it crosses', () => {
    // 3.6 V falling 5 mV an hour crosses 3.3 V at 60 h.
    const trend = trendOf(Array.from({ length: 25 }, (_, h) => [h, 3.6 - 0.005 * h]));
    expect(trend.slope(0) * HOUR).toBeCloseTo(-0.005, 12);
    expect(trend.level(0)).toBeCloseTo(3.48, 12);
    expect(trend.crossingAt(0, 3.3, 'below')).toBeCloseTo(T0 + 60 * HOUR, 3);
    expect(trend.confidence(0)).toBe(1);
    expect(trend.residual(0)).toBeCloseTo(0, 6);
    // 24 hours of readings, the recent ones weighing more: a span of about that.
    expect(trend.span(0) / (24 * HOUR)).toBeGreaterThan(0.95);
    expect(trend.span(0) / (24 * HOUR)).toBeLessThan(1.05);
  });

  it.each([
    ['heading away from the target', [[0, 3.5], [1, 3.6]], 3.3, 'below', NaN],
    ['flat', [[0, 3.5], [1, 3.5], [2, 3.5]], 3.3, 'below', NaN],
    ['already past the target and still falling: when it got there', [[0, 3.4], [10, 3.2]], 3.3, 'below', T0 + 5 * HOUR],
    ['already past the target but rising: now', [[0, 3.1], [10, 3.2]], 3.3, 'below', T0 + 10 * HOUR],
    ['rising above a target', [[0, 60], [1, 62]], 70, 'above', T0 + 5 * HOUR],
    ['one reading: no line', [[0, 3.4]], 3.3, 'below', NaN],
  ] as const)('crossing when %s', (_name, readings, target, direction, expected) => {
    const trend = trendOf(readings.map(([h, v]) => [h, v]));
    const crossing = trend.crossingAt(0, target, direction);
    if (Number.isNaN(expected)) expect(crossing).toBeNaN();
    else expect(crossing).toBeCloseTo(expected, 3);
  });

  it('matches the direct weighted fit of the stored readings, noise and irregular times included', () => {
    const random = new Random(3);
    const readings: Array<[number, number]> = [];
    for (let h = 0; h < 100; h += 0.1 + random.next() * 0.5) readings.push([h, 3.6 - 0.003 * h + (random.next() - 0.5) * 0.04]);
    const direct = directFit(readings, 24);
    const trend = trendOf(readings, 24);
    expect(trend.slope(0) / direct.slope).toBeCloseTo(1, 9);
    expect(trend.level(0)).toBeCloseTo(direct.level, 9);
  });

  it('gives the same fit whatever order the readings arrive in (late batches)', () => {
    const random = new Random(9);
    const readings: Array<[number, number]> = Array.from({ length: 200 }, (_, i) => [i * 0.25, 3.6 - 0.004 * i * 0.25 + (random.next() - 0.5) * 0.02]);
    const shuffled = [...readings];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random.next() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const inOrder = trendOf(readings);
    const late = trendOf(shuffled);
    for (const read of ['slope', 'level', 'confidence', 'readings', 'residual', 'span'] as const) {
      expect(late[read](0) / inOrder[read](0), read).toBeCloseTo(1, 9);
    }
  });

  it('keeps its precision on epoch milliseconds and tiny changes', () => {
    const trend = new TrendColumns(30 * 60_000);
    trend.grow(1);
    for (let s = 0; s < 3600; s++) trend.add(0, T0 + s * 1000, 3.3 + 1e-7 * s);
    expect((trend.slope(0) * 1000) / 1e-7).toBeCloseTo(1, 6);
  });

  it('weighs readings by age: after a change of slope, the recent one wins', () => {
    const readings: Array<[number, number]> = [];
    for (let h = 0; h <= 200; h++) readings.push([h, h < 100 ? 3.6 : 3.6 - 0.01 * (h - 100)]);
    expect(trendOf(readings, 24).slope(0) * HOUR).toBeCloseTo(-0.01, 4);
    expect(trendOf(readings, 1000).slope(0) * HOUR).toBeLessThan(-0.002);
    expect(trendOf(readings, 1000).slope(0) * HOUR).toBeGreaterThan(-0.008);
  });

  it('counts its effective readings: (1 + f) / (1 - f) for evenly spaced readings with decay f', () => {
    const trend = trendOf(Array.from({ length: 2000 }, (_, i) => [i * 0.25, 3.4]), 24);
    const f = Math.exp(-0.25 / 12);
    expect(trend.readings(0)).toBeCloseTo((1 + f) / (1 - f), 6);
  });

  it('is unsure of a trend buried in noise and sure of a clean one', () => {
    const random = new Random(5);
    const noisy = trendOf(Array.from({ length: 200 }, (_, i) => [i * 0.25, 3.5 + (random.next() - 0.5) * 0.1]));
    const clean = trendOf(Array.from({ length: 200 }, (_, i) => [i * 0.25, 3.6 - 0.005 * i * 0.25 + (random.next() - 0.5) * 0.005]));
    expect(noisy.confidence(0)).toBeLessThan(0.5);
    expect(clean.confidence(0)).toBeGreaterThan(0.95);
  });

  it('decides "sure enough to raise" exactly as its readings, span and confidence say', () => {
    const random = new Random(8);
    const disagreements: string[] = [];
    for (let k = 0; k < 300; k++) {
      const count = 3 + Math.floor(random.next() * 60);
      const noise = random.next() * 0.05;
      const trend = trendOf(Array.from({ length: count }, (_, i) => [i * 0.5, 3.6 - 0.004 * i * 0.5 + (random.next() - 0.5) * noise]));
      const [readings, span, confidence] = [random.next() * 40, random.next() * 30 * HOUR, random.next()];
      const expected = trend.readings(0) >= readings && trend.span(0) >= span && trend.confidence(0) >= confidence;
      if (trend.sure(0, readings, span, confidence) !== expected) disagreements.push(`${count} readings, noise ${noise}: ${readings}, ${span}, ${confidence}`);
    }
    expect(disagreements).toEqual([]);
  });

  it('saves and restores a key, and refuses what it did not save', () => {
    const trend = trendOf([[0, 3.6], [1, 3.59], [2, 3.585]]);
    const saved = JSON.parse(JSON.stringify(trend.save(0)));
    const other = new TrendColumns(24 * HOUR);
    other.grow(2);
    other.restore(1, saved);
    expect(other.crossingAt(1, 3.3, 'below')).toBe(trend.crossingAt(0, 3.3, 'below'));
    for (const bad of [null, [1, 2], ['a', 1, 1, 1, 1, 1, 1, 1], [T0, 0, 0, 0, 0, 0, 0, 0]]) {
      other.restore(1, bad);
      expect(other.newestAt(1)).toBeNaN();
    }
    expect(other.save(1)).toBeNull();
  });
});

describe('baseline: robust exponentially weighted usual value and spread', () => {
  function baseline(history = 100, warmup = 30, side: 'both' | 'above' | 'below' = 'both', minDeviation = 0): BaselineColumns {
    const b = new BaselineColumns(history, warmup, side, minDeviation);
    b.grow(2);
    return b;
  }

  function gaussian(random: Random): number {
    return Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
  }

  it('learns the usual value and spread of normal readings, corrected from the first readings on', () => {
    const b = baseline();
    const random = new Random(1);
    for (let i = 0; i < 40; i++) b.learn(0, 60 + 2 * gaussian(random));
    expect(b.usual(0)).toBeGreaterThan(59);
    expect(b.usual(0)).toBeLessThan(61);
    expect(b.spread(0)).toBeGreaterThan(1.5);
    expect(b.spread(0)).toBeLessThan(2.6);
    for (let i = 0; i < 2000; i++) b.learn(0, 60 + 2 * gaussian(random));
    expect(b.spread(0)).toBeGreaterThan(1.7);
    expect(b.spread(0)).toBeLessThan(2.3);
  });

  it('scores nothing during the warm-up, then in usual spreads', () => {
    const b = baseline(100, 5);
    for (const v of [10, 12, 10, 12]) {
      expect(b.score(0, 1000)).toBe(0);
      b.learn(0, v);
    }
    expect(b.score(0, 1000)).toBe(0);
    b.learn(0, 11);
    expect(b.score(0, b.usual(0) + 10 * b.spread(0))).toBeCloseTo(10, 9);
  });

  it('keeps seeing spikes: one wild reading moves the usual spread by little', () => {
    const b = baseline(50, 20);
    const random = new Random(2);
    for (let i = 0; i < 200; i++) b.learn(0, 60 + gaussian(random));
    const before = b.spread(0);
    expect(b.score(0, 110)).toBeGreaterThan(40);
    b.learn(0, 110);
    expect(b.spread(0) / before).toBeLessThan(1.2);
    expect(Math.abs(b.usual(0) - 60)).toBeLessThan(0.5);
    expect(b.score(0, 110)).toBeGreaterThan(35);
  });

  it('learns a lasting change of normal within about its history', () => {
    const b = baseline(50, 20);
    const random = new Random(4);
    for (let i = 0; i < 200; i++) b.learn(0, 60 + gaussian(random));
    let unusual = 0;
    for (let i = 0; i < 150; i++) {
      if (b.score(0, 80 + gaussian(random)) > 4) unusual++;
      b.learn(0, 80 + gaussian(random));
    }
    expect(unusual).toBeGreaterThan(5);
    expect(unusual).toBeLessThan(100);
    expect(b.score(0, 80)).toBeLessThan(3);
  });

  it.each([
    ['both', 0, true, true],
    ['above', 0, true, false],
    ['below', 0, false, true],
    ['both', 15, false, true],
  ] as const)('watches side %s with minimum deviation %d', (side, minDeviation, highCounts, lowCounts) => {
    const b = baseline(100, 2, side, minDeviation);
    for (const v of [59, 61, 59, 61, 59, 61, 59, 61, 59, 61, 59, 61]) b.learn(0, v);
    const [spread, usual] = [b.spread(0), b.usual(0)];
    // 10 above and 20 below the usual value
    expect(b.score(0, usual + 10) * spread).toBeCloseTo(highCounts ? 10 : 0, 9);
    expect(b.score(0, usual - 20) * spread).toBeCloseTo(lowCounts ? 20 : 0, 9);
  });

  it('finds any change of a key that always read the same value unusual, finitely', () => {
    const b = baseline(100, 3);
    for (let i = 0; i < 10; i++) b.learn(0, 21.5);
    expect(b.score(0, 21.5)).toBe(0);
    expect(b.score(0, 21.6)).toBeGreaterThan(1e6);
    expect(Number.isFinite(b.score(0, 21.6))).toBe(true);
  });

  it('saves and restores a key', () => {
    const b = baseline();
    for (const v of [1, 2, 3, 4]) b.learn(0, v);
    const other = baseline();
    other.restore(1, JSON.parse(JSON.stringify(b.save(0))));
    expect([other.usual(1), other.spread(1)]).toEqual([b.usual(0), b.spread(0)]);
    other.restore(1, [1, -1, 3, 1]);
    expect(other.usual(1)).toBeNaN();
  });
});
