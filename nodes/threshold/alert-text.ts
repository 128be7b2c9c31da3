/**
 * One line of plain words for an alert, for a CRM subject, a chat message or a log:
 * "temperature above 80 on pump-17 (82.5)", "battery of dev-3 predicted below 3.3 V around
 * 2026-12-03 14:00 UTC (in 31 h)". Pure functions of the event and the rule. What a person may
 * act on comes first and the figures last, in brackets, so that a CRM subject can drop them.
 */
import type { AlertEvent } from './engine';
import type { Measure, RuleKind, ThresholdValue } from './rules';

export interface AlertWording {
  /** What is measured: "temperature". */
  reading: string;
  rule: RuleKind;
  measure: Measure;
  /** Unit suffix for rates: "/s" or "/min". */
  rateUnit: string;
  /** The reading's own unit, for people: "V", "°C" (empty or absent: none). */
  unit?: string;
}

const RAISE_WORDS: Record<RuleKind, string> = {
  above: 'above',
  below: 'below',
  outside: 'outside',
  inside: 'inside',
  equals: 'is',
  notEquals: 'is not',
  silence: 'silent for',
  forecast: 'predicted',
  anomaly: 'unusual',
};

const CLEAR_WORDS: Record<RuleKind, string> = {
  above: 'back below',
  below: 'back above',
  outside: 'back inside',
  inside: 'back outside',
  equals: 'no longer',
  notEquals: 'back to',
  silence: 'reporting again after',
  forecast: 'no longer predicted',
  anomaly: 'back to usual',
};

export function describeAlert(event: AlertEvent, wording: AlertWording): string {
  const { rule } = wording;
  const on = event.key === '' ? '' : ` on ${event.key}`;
  if (event.reason === 'reset') return `${wording.reading} alert reset${on}`;
  if (event.reason === 'rule-changed') return `${wording.reading} alert ended${on}: its rule changed`;
  const ending = event.change === 'cleared' || event.change === 'deescalated';
  if (rule === 'silence') {
    const who = event.key === '' ? 'device' : event.key;
    const silent = typeof event.value === 'number' ? formatDuration(event.value) : '?';
    return ending ? `${who} reporting again after ${silent}` : `${who} silent for ${formatDuration(event.threshold as number)}`;
  }
  const own = wording.unit ? ` ${wording.unit}` : '';
  const now = event.change === 'deescalated' ? `, now ${event.severity}` : '';
  if (rule === 'forecast') return describeForecast(event, wording.reading, own, now);
  if (rule === 'anomaly') return describeAnomaly(event, wording.reading, own, now);
  const unit = wording.measure === 'rate' ? `${own}${wording.rateUnit}` : own;
  const subject = wording.measure === 'rate' ? `${wording.reading} rate` : wording.reading;
  const words = ending ? CLEAR_WORDS[rule] : RAISE_WORDS[rule];
  const threshold = formatThreshold(event.threshold, unit);
  const value = rule === 'equals' ? '' : ` (${formatValue(event.value, unit)})`;
  return `${subject} ${words} ${threshold}${on}${value}${now}`;
}

/** "battery of dev-3 predicted below 3.3 V around 2026-12-03 14:00 UTC (in 31 h)". */
function describeForecast(event: AlertEvent, reading: string, unit: string, now: string): string {
  const of = event.key === '' ? reading : `${reading} of ${event.key}`;
  const forecast = event.forecast;
  if (!forecast) return `${of} ${event.state === 'cleared' ? 'no longer predicted' : 'predicted'} to cross${now}`;
  const target = `${forecast.direction} ${formatNumber(forecast.target)}${unit}`;
  if (event.change === 'cleared') return `${of} no longer predicted ${target} within ${formatLead(forecast.within)}`;
  const when = forecast.crossingAt === null ? '' : ` around ${formatTime(forecast.crossingAt)}`;
  const lead = forecast.leadTime === null ? '' : forecast.leadTime === 0 ? ' (now)' : ` (in ${formatLead(forecast.leadTime)})`;
  return `${of} predicted ${target}${when}${lead}${now}`;
}

/** "temperature unusually high on pump-7 (93.2 °C, usually 61.8 ± 1.2)". */
function describeAnomaly(event: AlertEvent, reading: string, unit: string, now: string): string {
  const on = event.key === '' ? '' : ` on ${event.key}`;
  const value = `${formatValue(event.value, unit)}`;
  if (event.change === 'cleared') return `${reading} back to usual${on} (${value})`;
  const anomaly = event.anomaly;
  if (!anomaly || typeof event.value !== 'number') return `${reading} unusual${on} (${value})${now}`;
  const how = event.value >= anomaly.usual ? 'high' : 'low';
  return `${reading} unusually ${how}${on} (${value}, usually ${formatAbout(anomaly.usual)} ± ${formatAbout(anomaly.spread)})${now}`;
}

function formatThreshold(threshold: ThresholdValue | undefined, unit: string): string {
  if (threshold === undefined) return '?';
  if (typeof threshold === 'object') return `${formatNumber(threshold.low)} to ${formatNumber(threshold.high)}${unit}`;
  return typeof threshold === 'number' ? `${formatNumber(threshold)}${unit}` : String(threshold);
}

/** Four significant digits: what a usual value or spread needs. */
function formatAbout(n: number): string {
  return Number.isFinite(n) ? String(Number(n.toPrecision(4))) : String(n);
}

/** A time for people anywhere: "2026-12-03 14:05 UTC". */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** How long until a crossing, rounded as people say it: 40 s, 25 min, 31 h, 5 d. */
export function formatLead(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 72 * 3_600_000) return `${Math.round(ms / 3_600_000)} h`;
  return `${Math.round(ms / 86_400_000)} d`;
}

function formatValue(value: unknown, unit: string): string {
  return typeof value === 'number' ? `${formatNumber(value)}${unit}` : String(value);
}

/** Up to four decimals, no trailing zeros: 82.5, 0.0031, 1200. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return String(Math.round(n * 10_000) / 10_000);
}

/** 45 s, 10 min, 1 h 30 min, 2 d 3 h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}
