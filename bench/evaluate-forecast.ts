/**
 * `npm run evaluate:forecast`: how early and how exactly the forecast rule predicts, and how
 * often it raises for nothing, on generated battery series (bench/forecast-accuracy.ts), with the
 * product's defaults; and how the anomaly rule's levels trade false alarms for spikes found.
 * Run with the defaults it rewrites the README section between <!-- evaluate:forecast -->
 * markers; with settings of your own it only prints, so you can judge them:
 *
 *   npm run evaluate:forecast -- --window 24h --confidence 0.8 --interval 1h --warning 72h
 *
 * Options: --window, --warning, --critical, --interval (durations such as 90min, 48h, 2d),
 * --readings, --confidence, --margin (percent), --series (per row), --seed.
 */
import { ThresholdEngine } from '../nodes/threshold/engine';
import { toDuration } from '../nodes/threshold/rules';
import { Random } from '../simulator/devices';
import {
  anomalyRule,
  anomalySeries,
  DEFAULT_SETTINGS,
  errorsAt24h,
  falseAlarmRate,
  holtAt24h,
  makeFleet,
  median,
  quantile,
  runFleet,
  swapOutcomes,
  warnedAhead,
  type ForecastSettings,
  type SeriesOptions,
} from './forecast-accuracy';
import { format, type Figure } from './measure';
import { table, writeSection } from './report';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Run {
  settings: ForecastSettings;
  base: SeriesOptions;
  series: number;
  seed: number;
  /** Only the product's defaults are written into the README. */
  defaults: boolean;
}

function parse(argv: string[]): Run {
  const settings: ForecastSettings = { ...DEFAULT_SETTINGS };
  const base: SeriesOptions = { shape: 'linear', noise: 0.02, daily: 0, gaps: false, late: false, intervalMs: 15 * 60_000, quantum: 0.001 };
  let series = 300;
  let seed = 11;
  let defaults = true;
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name} needs a value`);
    const duration = () => toDuration(/^\d+(\.\d+)?$/.test(value) ? Number(value) : value, name);
    switch (name) {
      case '--window':
        settings.windowMs = duration();
        break;
      case '--warning':
        settings.warningMs = duration();
        break;
      case '--critical':
        settings.criticalMs = duration();
        break;
      case '--readings':
        settings.minReadings = Number(value);
        break;
      case '--confidence':
        settings.minConfidence = Number(value);
        break;
      case '--margin':
        settings.clearMargin = Number(value) / 100;
        break;
      case '--interval':
        base.intervalMs = duration();
        break;
      case '--series':
        series = Number(value);
        continue;
      case '--seed':
        seed = Number(value);
        continue;
      default:
        throw new Error(`unknown option ${name} (see the top of bench/evaluate-forecast.ts)`);
    }
    defaults = false;
  }
  return { settings, base, series, seed, defaults };
}

const percent = (share: number) => `${Math.round(share * 100)} %`;
const hours = (ms: number) => (Number.isFinite(ms) ? `${format(ms / HOUR)} h` : 'never');

/** A decline scenario: the median error 24 h ahead, and how early and how often it alerted. */
function declineRow(run: Run, label: string, options: Partial<SeriesOptions>, goal?: Figure['goal']): Figure {
  const outcomes = runFleet(makeFleet(run.series, { ...run.base, ...options }, run.seed), run.settings);
  const errors = errorsAt24h(outcomes);
  const ahead = warnedAhead(outcomes);
  const episodes = outcomes.reduce((n, o) => n + o.events.filter((e) => e.change === 'raised' && e.at < o.series.crossingAt).length, 0);
  const updates = outcomes.reduce((n, o) => n + o.events.filter((e) => e.change === 'updated').length, 0);
  return {
    name: `${label}: median error of the crossing time predicted 24 h ahead`,
    value: median(errors) * 100,
    unit: '% of 24 h',
    goal,
    note: [
      `90th percentile ${format(quantile(errors, 0.9) * 100)} %`,
      `a crossing predicted for ${percent(errors.filter(Number.isFinite).length / errors.length)}`,
      `alert raised ≥ 24 h ahead for ${percent(ahead.filter((a) => a >= DAY).length / ahead.length)}, before the crossing for ${percent(ahead.filter((a) => a > 0).length / ahead.length)}, a median ${hours(median(ahead))} ahead`,
      `${format(episodes / outcomes.length)} alerts (episodes) and ${format(updates / outcomes.length)} updates per battery`,
    ].join('; '),
  };
}

function flatRow(run: Run, label: string, options: Partial<SeriesOptions>): Figure {
  const flat = runFleet(makeFleet(run.series + 100, { ...run.base, shape: 'flat', ...options }, run.seed + 1, 30), run.settings);
  const rate = falseAlarmRate(flat);
  return {
    name: `${label}: alerts raised though the battery never declines`,
    value: rate.per1000,
    unit: 'per 1,000 device-days',
    goal: { op: '<', value: 1 },
    note: `${rate.raised} in ${format(rate.deviceDays)} device-days (flat between 3.35 and 3.6 V)`,
  };
}

function swapRow(run: Run): Figure {
  const swaps = swapOutcomes(runFleet(makeFleet(run.series, { ...run.base, shape: 'swap' }, run.seed + 2), run.settings));
  const raised = swaps.filter((s) => s.wasRaised);
  const cleared = raised.map((s) => s.clearedAfter);
  return {
    name: 'battery swapped 12 h before it would have crossed: time until the alert cleared',
    value: median(cleared) / HOUR,
    unit: 'h (median)',
    note: `${raised.length} of ${swaps.length} had an alert raised before the swap; 90th percentile ${hours(quantile(cleared, 0.9))}; ${raised.filter((s) => !Number.isFinite(s.clearedAfter)).length} never cleared; raised again within 3 days: ${swaps.reduce((n, s) => n + s.raisedAgain, 0)}`,
  };
}

/** Holt at its best: the grid pair with the lowest median error on the linear series. */
function holtRows(run: Run): Figure[] {
  const linear = makeFleet(run.series, run.base, run.seed);
  const late = makeFleet(run.series, { ...run.base, gaps: true, late: true }, run.seed);
  const medianError = (fleet: typeof linear, alpha: number, beta: number) => {
    const results = fleet.map((s) => holtAt24h(s, alpha, beta));
    const errors = results.map((r, i) => (Number.isNaN(r.predicted) ? Infinity : Math.abs(r.predicted - fleet[i].crossingAt) / DAY));
    const dropped = results.reduce((n, r) => n + r.dropped, 0) / fleet.reduce((n, s) => n + s.readings.length, 0);
    return { median: median(errors), p90: quantile(errors, 0.9), dropped };
  };
  let best = { alpha: 0, beta: 0, median: Infinity, p90: Infinity };
  for (const alpha of [0.02, 0.05, 0.1, 0.2, 0.4]) {
    for (const beta of [0.002, 0.005, 0.01, 0.02, 0.05]) {
      const result = medianError(linear, alpha, beta);
      if (result.median < best.median) best = { alpha, beta, ...result };
    }
  }
  const onLate = medianError(late, best.alpha, best.beta);
  const name = `Holt's linear smoothing for irregular times (Wright 1986), the best of 25 smoothing pairs (α ${best.alpha}, β ${best.beta} per hour)`;
  return [
    { name: `${name}, linear decline, 20 mV noise: median error 24 h ahead`, value: best.median * 100, unit: '% of 24 h', note: `90th percentile ${format(best.p90 * 100)} %` },
    {
      name: `the same Holt, with outages and late batches`,
      value: onLate.median * 100,
      unit: '% of 24 h',
      note: `90th percentile ${format(onLate.p90 * 100)} %; ${percent(onLate.dropped)} of the readings dropped, older than one already seen`,
    },
  ];
}

/** The trade-off of the window, for the reader choosing one. */
function windowTable(run: Run): string {
  const lines = ['| trend window | linear, 20 mV: median / 90th percentile error 24 h ahead | accelerating: median error, alerted ≥ 24 h ahead | daily swing: false alerts per 1,000 device-days | swap: alert cleared after (median) |', '|---|---|---|---|---|'];
  for (const windowMs of [12 * HOUR, 24 * HOUR, 48 * HOUR, 72 * HOUR]) {
    const settings = { ...run.settings, windowMs };
    const errors = errorsAt24h(runFleet(makeFleet(run.series, run.base, run.seed), settings));
    const accelerating = runFleet(makeFleet(run.series, { ...run.base, shape: 'accelerating' }, run.seed), settings);
    const ahead = warnedAhead(accelerating);
    const daily = falseAlarmRate(runFleet(makeFleet(run.series + 100, { ...run.base, shape: 'flat', noise: 0.01, daily: 0.02 }, run.seed + 1, 30), settings));
    const swaps = swapOutcomes(runFleet(makeFleet(run.series, { ...run.base, shape: 'swap' }, run.seed + 2), settings)).filter((s) => s.wasRaised);
    lines.push(
      `| ${format(windowMs / HOUR)} h${windowMs === DEFAULT_SETTINGS.windowMs ? ' (default)' : ''} | ${format(median(errors) * 100)} % / ${format(quantile(errors, 0.9) * 100)} % | ${format(median(errorsAt24h(accelerating)) * 100)} %, ${percent(ahead.filter((a) => a >= DAY).length / ahead.length)} | ${format(daily.per1000)} | ${hours(median(swaps.map((s) => s.clearedAfter)))} |`,
    );
  }
  return lines.join('\n');
}

/** Anomaly levels: alerts on ordinary readings against spikes of 6 and 8 noise spreads found. */
function anomalyTable(run: Run): string {
  const lines = ['| readings | anomaly level (usual spreads) | alerts on ordinary readings, per 1,000 device-days | spikes of 6 noise spreads found | spikes of 8 noise spreads found |', '|---|---|---|---|---|'];
  const devices = 100;
  const days = 30;
  for (const [kind, swing] of [['steady, Gaussian noise', 0], ['with a daily swing of ±2 noise spreads', 2]] as const) {
    for (const level of [4, 5, 6]) {
      const found = (spikeSpreads: number) => {
        const random = new Random(run.seed + spikeSpreads);
        let spikes = 0;
        let caught = 0;
        let falseAlerts = 0;
        for (let d = 0; d < devices; d++) {
          let spike = false;
          const engine = new ThresholdEngine(anomalyRule([{ severity: 'warning', value: level }], { history: 100, warmup: 30, side: 'both', minDeviation: 0 }), 'evaluation', {
            alert: (event) => {
              if (event.change !== 'raised') return;
              if (spike) caught++;
              else falseAlerts++;
            },
          });
          for (const reading of anomalySeries(random, days, 15 * 60_000, swing, spikeSpreads, spikeSpreads > 0 ? 500 : 0)) {
            spike = reading.spike;
            if (spike) spikes++;
            engine.read('k', reading.value, reading.at);
          }
        }
        return { share: spikes > 0 ? caught / spikes : 0, falsePer1000: (falseAlerts / (devices * days)) * 1000 };
      };
      const ordinary = found(0);
      lines.push(`| ${kind} | ${level} | ${format(ordinary.falsePer1000)} | ${percent(found(6).share)} | ${percent(found(8).share)} |`);
    }
  }
  return lines.join('\n');
}

function main(): void {
  const run = parse(process.argv.slice(2));
  const s = run.settings;
  console.log(
    `forecast below 3.3 V: window ${format(s.windowMs / HOUR)} h, at least ${s.minReadings} readings, confidence ${s.minConfidence}, clear margin ${format(s.clearMargin * 100)} %, warning within ${format(s.warningMs / HOUR)} h, critical within ${format(s.criticalMs / HOUR)} h; a reading every ${format(run.base.intervalMs / 60_000)} min; ${run.series} series a row, seed ${run.seed}`,
  );
  const goal: Figure['goal'] = { op: '<=', value: 10 };
  const figures: Figure[] = [
    declineRow(run, 'linear decline, 20 mV noise (realistic), 1 mV steps', {}, goal),
    declineRow(run, 'linear decline, 5 mV noise', { noise: 0.005 }),
    declineRow(run, 'linear decline, 50 mV noise', { noise: 0.05 }),
    declineRow(run, 'linear decline, 20 mV noise, reported in 20 mV steps (the packed payload)', { quantum: 0.02 }, goal),
    declineRow(run, 'linear decline, 20 mV noise, outages of 2 to 12 h', { gaps: true }, goal),
    declineRow(run, 'linear decline, 20 mV noise, late batches out of order (1 to 10 h late)', { late: true }, goal),
    declineRow(run, 'linear decline, 20 mV noise, outages and late batches', { gaps: true, late: true }, goal),
    declineRow(run, 'linear decline, 10 mV noise and a daily swing of ±20 mV', { noise: 0.01, daily: 0.02 }),
    declineRow(run, 'accelerating decline (the knee of a discharge curve), 20 mV noise', { shape: 'accelerating' }),
    declineRow(run, 'decelerating decline, 20 mV noise', { shape: 'decelerating' }),
    flatRow(run, 'flat, 5 mV noise', { noise: 0.005 }),
    flatRow(run, 'flat, 20 mV noise', { noise: 0.02 }),
    flatRow(run, 'flat, 50 mV noise', { noise: 0.05 }),
    flatRow(run, 'flat, 10 mV noise and a daily swing of ±20 mV', { noise: 0.01, daily: 0.02 }),
    swapRow(run),
    ...holtRows(run),
  ];
  const body = [
    table(figures),
    '',
    'The trend window trades noise for lag (the other settings at their defaults):',
    '',
    windowTable(run),
    '',
    'The anomaly rule (history 100 readings, warm-up 30) on 100 devices of their own normals for 30 days, a reading every 15 minutes, a spike every 500 readings. A daily swing belongs to the usual spread, so spikes must stand out from it too:',
    '',
    anomalyTable(run),
    '',
    `<sub>Measured by \`npm run evaluate:forecast\`: ${run.series} series a row (${run.series + 100} flat ones of 30 days), seed ${run.seed}, a reading every ${format(run.base.intervalMs / 60_000)} minutes. The figures depend on the seed and the settings, not on the machine.</sub>`,
  ].join('\n');
  console.log(body);
  if (run.defaults) console.log(writeSection('evaluate:forecast', body) ? '(written to README.md)' : '(README.md has no <!-- evaluate:forecast --> section: not written)');
}

main();
