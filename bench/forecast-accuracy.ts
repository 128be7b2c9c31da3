/**
 * How well the forecast rule predicts, measured on generated battery series whose true crossing
 * is known: linear, accelerating and decelerating declines to 3.3 V, measurement noise at several
 * levels, a daily temperature swing, outages, and readings that arrive late in gateway batches,
 * out of order. Flat series count false alarms; swapped batteries show how soon an alert clears.
 * The real engine runs every series (one key each), fed in arrival order as a fleet would be.
 */
import { ThresholdEngine, type AlertEvent } from '../nodes/threshold/engine';
import { FORECAST_DEFAULTS } from '../nodes/threshold/node-config';
import { toDuration, type AnomalyConfig, type ForecastConfig, type LevelConfig, type RuleConfig } from '../nodes/threshold/rules';
import { Random } from '../simulator/devices';

export type Shape = 'linear' | 'accelerating' | 'decelerating' | 'flat' | 'swap';

export interface SeriesOptions {
  shape: Shape;
  /** Standard deviation of the measurement noise (V). */
  noise: number;
  /** Amplitude of a daily swing with temperature (V), 0 for none. */
  daily: number;
  /** Outages: on about one day in three the device is silent for 2 to 12 h. */
  gaps: boolean;
  /** The readings travel through a gateway: batches every 1 to 4 h, one in five held back a further 1 to 6 h (so later batches overtake it). */
  late: boolean;
  /** Time between readings (ms), each ±10 %. */
  intervalMs: number;
  /** Reporting resolution (V). */
  quantum: number;
}

export interface Reading {
  /** When it was measured, and when it reached the rule. */
  at: number;
  arrival: number;
  value: number;
}

export interface Series {
  readings: Reading[];
  /** When the true curve crosses the target (NaN when it never does). */
  crossingAt: number;
  /** swap: when the battery was swapped. */
  swapAt: number;
  end: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const START_VOLTS = 3.6;
export const TARGET_VOLTS = 3.3;
const T0 = Date.UTC(2026, 0, 1);

/** Normal noise from the seeded generator (Box-Muller). */
function gaussian(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
}

/** The true voltage of a series at time t (ms from its start). */
function curve(shape: Shape, t: number, crossing: number, flatLevel: number, swap: number): number {
  const drop = START_VOLTS - TARGET_VOLTS;
  const x = Math.max(0, t / crossing);
  switch (shape) {
    case 'linear':
      return START_VOLTS - drop * x;
    case 'accelerating':
      return START_VOLTS - drop * x * x;
    case 'decelerating':
      return START_VOLTS - drop * Math.sqrt(x);
    case 'flat':
      return flatLevel;
    case 'swap':
      // A fresh battery at `swap`, declining at a third of the old one's rate.
      return t < swap ? START_VOLTS - drop * x : START_VOLTS - drop * ((t - swap) / (3 * crossing));
  }
}

/** One battery's readings. Declines cross 3.3 V after 3 to 8 days; flat series last `flatDays`. */
export function generateSeries(options: SeriesOptions, random: Random, flatDays = 30): Series {
  const crossing = (3 + 5 * random.next()) * DAY;
  const flatLevel = TARGET_VOLTS + 0.05 + 0.25 * random.next();
  const swap = crossing - 12 * HOUR;
  const end = options.shape === 'flat' ? flatDays * DAY : options.shape === 'swap' ? swap + 3 * DAY : crossing + 12 * HOUR;
  const phase = random.next() * DAY;
  const readings: Reading[] = [];
  let silentUntil = -1;
  for (let t = random.next() * options.intervalMs; t < end; t += options.intervalMs * (0.9 + 0.2 * random.next())) {
    if (options.gaps && t > silentUntil && random.chance(options.intervalMs / (3 * DAY))) silentUntil = t + (2 + 10 * random.next()) * HOUR;
    if (t < silentUntil) continue;
    const swing = options.daily * Math.sin((2 * Math.PI * (t + phase)) / DAY);
    const measured = curve(options.shape, t, crossing, flatLevel, swap) + swing + options.noise * gaussian(random);
    readings.push({ at: T0 + t, arrival: T0 + t, value: Math.round(measured / options.quantum) * options.quantum });
  }
  if (options.late) delayInBatches(readings, random);
  return {
    readings,
    crossingAt: options.shape === 'flat' || options.shape === 'swap' ? NaN : T0 + crossing,
    swapAt: options.shape === 'swap' ? T0 + swap : NaN,
    end: T0 + end,
  };
}

/**
 * A gateway forwards what it collected every 1 to 4 h, in time order; a fifth of its batches
 * wait a further 1 to 6 h, so the batches after them arrive first.
 */
function delayInBatches(readings: Reading[], random: Random): void {
  let i = 0;
  while (i < readings.length) {
    const sent = readings[i].at + (1 + 3 * random.next()) * HOUR;
    const held = random.chance(0.2) ? (1 + 5 * random.next()) * HOUR : 0;
    for (let n = 0; i < readings.length && readings[i].at <= sent; n++) readings[i++].arrival = sent + held + n;
  }
}

export interface ForecastSettings extends ForecastConfig {
  /** Lead times of the warning and critical levels (ms). */
  warningMs: number;
  criticalMs: number;
}

/** The node's own defaults, and the levels the README and the Buffered pattern use. */
export const DEFAULT_SETTINGS: ForecastSettings = {
  direction: 'below',
  target: TARGET_VOLTS,
  windowMs: toDuration(FORECAST_DEFAULTS.window, 'window'),
  minReadings: FORECAST_DEFAULTS.minReadings,
  minConfidence: FORECAST_DEFAULTS.minConfidence,
  clearMargin: FORECAST_DEFAULTS.clearMarginPercent / 100,
  warningMs: 48 * HOUR,
  criticalMs: 6 * HOUR,
};

export function forecastRule(settings: ForecastSettings): RuleConfig {
  const { warningMs, criticalMs, ...forecast } = settings;
  return {
    rule: 'forecast',
    measure: 'value',
    rateUnitMs: 60_000,
    hysteresis: 'none',
    deadband: 0,
    levels: [
      { severity: 'warning', value: warningMs },
      { severity: 'critical', value: criticalMs },
    ],
    raise: { mode: 'immediate' },
    clear: { mode: 'immediate' },
    forecast,
  };
}

/** An anomaly rule with these levels and settings, raising and clearing at once, no hysteresis. */
export function anomalyRule(levels: LevelConfig[], anomaly: AnomalyConfig): RuleConfig {
  return { ...forecastRule(DEFAULT_SETTINGS), rule: 'anomaly', levels, forecast: undefined, anomaly };
}

export interface SeriesOutcome {
  series: Series;
  /** The predicted crossing held 24 h before the true one (NaN: none predicted). */
  predictedAt24h: number;
  /** Every alert event of the series' key, in order. */
  events: AlertEvent[];
}

/**
 * Runs every series through one engine, readings in arrival order (timers ticked as time goes),
 * and notes what the engine predicted 24 h before each true crossing.
 */
export function runFleet(all: Series[], settings: ForecastSettings): SeriesOutcome[] {
  const outcomes: SeriesOutcome[] = all.map((series) => ({ series, predictedAt24h: NaN, events: [] }));
  const engine = new ThresholdEngine(forecastRule(settings), 'evaluation', {
    alert: (event) => outcomes[Number(event.key)].events.push(event),
  });
  // Readings and the 24-h checkpoints, in time order; at equal times the readings first.
  const steps: Array<{ time: number; index: number; reading?: Reading }> = [];
  all.forEach((series, index) => {
    for (const reading of series.readings) steps.push({ time: reading.arrival, index, reading });
    if (!Number.isNaN(series.crossingAt)) steps.push({ time: series.crossingAt - DAY, index });
  });
  steps.sort((a, b) => a.time - b.time || (a.reading ? 0 : 1) - (b.reading ? 0 : 1));
  for (const step of steps) {
    engine.tick(step.time);
    if (step.reading) {
      engine.read(String(step.index), step.reading.value, step.time, step.reading.at);
    } else {
      outcomes[step.index].predictedAt24h = engine.status(String(step.index)).forecast?.crossingAt ?? NaN;
    }
  }
  return outcomes;
}

export function makeFleet(count: number, options: SeriesOptions, seed: number, flatDays?: number): Series[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => generateSeries(options, random, flatDays));
}

export function median(values: number[]): number {
  return quantile(values, 0.5);
}

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** The error of the crossing predicted 24 h ahead, as a share of those 24 h (Infinity: none predicted). */
export function errorsAt24h(outcomes: SeriesOutcome[]): number[] {
  return outcomes.map((o) => (Number.isNaN(o.predictedAt24h) ? Infinity : Math.abs(o.predictedAt24h - o.series.crossingAt) / DAY));
}

/** How long before the true crossing the first alert was raised (ms; -Infinity: never before it). */
export function warnedAhead(outcomes: SeriesOutcome[]): number[] {
  return outcomes.map((o) => {
    const first = o.events.find((e) => e.change === 'raised');
    return first && first.at < o.series.crossingAt ? o.series.crossingAt - first.at : -Infinity;
  });
}

/** Alerts raised on series that never cross, per 1,000 device-days. */
export function falseAlarmRate(outcomes: SeriesOutcome[]): { raised: number; deviceDays: number; per1000: number } {
  const raised = outcomes.reduce((n, o) => n + o.events.filter((e) => e.change === 'raised').length, 0);
  const deviceDays = outcomes.reduce((d, o) => d + (o.series.end - (o.series.readings[0]?.at ?? o.series.end)) / DAY, 0);
  return { raised, deviceDays, per1000: (raised / deviceDays) * 1000 };
}

/** swap: how long after the swap the alert cleared (ms; Infinity: it did not), and raises after that. */
export function swapOutcomes(outcomes: SeriesOutcome[]): Array<{ clearedAfter: number; raisedAgain: number; wasRaised: boolean }> {
  return outcomes.map((o) => {
    const swap = o.series.swapAt;
    const wasRaised = o.events.some((e) => e.change === 'raised' && e.at < swap);
    const cleared = o.events.find((e) => e.change === 'cleared' && e.at >= swap);
    const raisedAgain = o.events.filter((e) => e.change === 'raised' && e.at > (cleared?.at ?? Infinity)).length;
    return { clearedAfter: cleared ? cleared.at - swap : Infinity, raisedAgain, wasRaised };
  });
}

/**
 * Holt's linear exponential smoothing for readings at irregular times (Wright 1986), the
 * literature's other candidate, run on the same series for comparison: smoothing weights per
 * hour, and readings older than the newest one dropped (its recursion has no place for them).
 */
export function holtAt24h(series: Series, alphaPerHour: number, betaPerHour: number): { predicted: number; dropped: number } {
  const readings = [...series.readings].sort((a, b) => a.arrival - b.arrival);
  const checkpoint = series.crossingAt - DAY;
  let level = NaN;
  let trend = 0;
  let newest = -Infinity;
  let a = alphaPerHour;
  let b = betaPerHour;
  let dropped = 0;
  for (const reading of readings) {
    if (reading.arrival > checkpoint) break;
    if (reading.at <= newest) {
      dropped++;
      continue;
    }
    if (Number.isNaN(level)) {
      level = reading.value;
      newest = reading.at;
      continue;
    }
    const hours = (reading.at - newest) / HOUR;
    a = a / (a + (1 - alphaPerHour) ** hours);
    b = b / (b + (1 - betaPerHour) ** hours);
    const previous = level;
    level = a * reading.value + (1 - a) * (level + trend * hours);
    trend = (b * (level - previous)) / hours + (1 - b) * trend;
    newest = reading.at;
  }
  const predicted = trend < 0 ? newest + ((TARGET_VOLTS - level) / trend) * HOUR : NaN;
  return { predicted, dropped };
}

/**
 * Temperature-like readings for the anomaly rule: a device's own normal and noise, a daily swing
 * of `swingSpreads` noise spreads, and every `spikeEvery` readings a spike of `spikeSpreads`.
 */
export function anomalySeries(random: Random, days: number, intervalMs: number, swingSpreads: number, spikeSpreads: number, spikeEvery: number): Array<{ at: number; value: number; spike: boolean }> {
  const normal = 40 + 40 * random.next();
  const spread = 0.5 + 1.5 * random.next();
  const swing = swingSpreads * spread;
  const phase = random.next() * DAY;
  const readings: Array<{ at: number; value: number; spike: boolean }> = [];
  let i = 0;
  for (let t = 0; t < days * DAY; t += intervalMs, i++) {
    const spike = spikeEvery > 0 && i > 200 && i % spikeEvery === 0;
    const usual = normal + swing * Math.sin((2 * Math.PI * (t + phase)) / DAY);
    readings.push({ at: T0 + t, value: usual + spread * gaussian(random) + (spike ? spikeSpreads * spread * (random.chance(0.5) ? 1 : -1) : 0), spike });
  }
  return readings;
}
