/**
 * One line of plain words for an alert, for a CRM subject, a chat message or a log:
 * "temperature above 80 on pump-17 (82.5)". Pure functions of the event and the rule.
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
}

const RAISE_WORDS: Record<RuleKind, string> = {
  above: 'above',
  below: 'below',
  outside: 'outside',
  inside: 'inside',
  equals: 'is',
  notEquals: 'is not',
  silence: 'silent for',
};

const CLEAR_WORDS: Record<RuleKind, string> = {
  above: 'back below',
  below: 'back above',
  outside: 'back inside',
  inside: 'back outside',
  equals: 'no longer',
  notEquals: 'back to',
  silence: 'reporting again after',
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
  const unit = wording.measure === 'rate' ? wording.rateUnit : '';
  const subject = wording.measure === 'rate' ? `${wording.reading} rate` : wording.reading;
  const words = ending ? CLEAR_WORDS[rule] : RAISE_WORDS[rule];
  const threshold = formatThreshold(event.threshold, unit);
  const value = rule === 'equals' ? '' : ` (${formatValue(event.value, unit)})`;
  const now = event.change === 'deescalated' ? `, now ${event.severity}` : '';
  return `${subject} ${words} ${threshold}${on}${value}${now}`;
}

function formatThreshold(threshold: ThresholdValue | undefined, unit: string): string {
  if (threshold === undefined) return '?';
  if (typeof threshold === 'object') return `${formatNumber(threshold.low)} to ${formatNumber(threshold.high)}${unit}`;
  return typeof threshold === 'number' ? `${formatNumber(threshold)}${unit}` : String(threshold);
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
