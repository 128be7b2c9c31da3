/**
 * What a threshold rule is: the user's configuration, its validation, and the compiled
 * form the engine evaluates on every reading. No Node-RED in here.
 */
import type { Side } from './baseline';
import type { Direction } from './trend';
import { DURATION_UNITS_MS } from '../shared/settings';

/** Severities in ascending order of urgency; a rule's levels are kept in this order. */
export const SEVERITIES = ['info', 'warning', 'minor', 'major', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export type Comparison = 'above' | 'below' | 'outside' | 'inside' | 'equals' | 'notEquals';
/** forecast: the trend's time to reach a value; anomaly: how far a reading is from the key's usual. */
export type RuleKind = Comparison | 'silence' | 'forecast' | 'anomaly';
export type Measure = 'value' | 'rate';
export type Hysteresis = 'none' | 'deadband' | 'explicit';
export type EqualityValue = number | string | boolean;

export interface LevelConfig {
  severity: Severity;
  /**
   * above, below, equals, notEquals: the threshold. silence: milliseconds without data.
   * forecast: the lead time (ms) within which a predicted crossing raises. anomaly: the score
   * (usual spreads away from the usual value) above which a reading raises.
   */
  value?: EqualityValue;
  /** outside, inside: the band. */
  low?: number;
  high?: number;
  /** explicit hysteresis: where an above/below alert clears. */
  clear?: number;
  /** explicit hysteresis: where an outside/inside alert clears. */
  clearLow?: number;
  clearHigh?: number;
}

export type Confirmation =
  | { mode: 'immediate' }
  | { mode: 'duration'; ms: number }
  | { mode: 'count'; count: number };

/** Time to threshold: when the trend will cross `target`, and how sure the fit is. */
export interface ForecastConfig {
  /** Falling below, or rising above, the target. */
  direction: Direction;
  target: number;
  /** Readings weigh e^(-age / (window / 2)): on average a sliding window of this length. */
  windowMs: number;
  /** The effective number of readings behind the fit before it may raise. */
  minReadings: number;
  /** The trend's confidence (0 to 1: 1 - standard error of the slope / slope) before it may raise. */
  minConfidence: number;
  /** A level clears once the lead time exceeds its own by this fraction (1: 48 h clears beyond 96 h). */
  clearMargin: number;
}

/** Anomaly against the key's own history. */
export interface AnomalyConfig {
  /** Readings the usual value and spread mostly remember. */
  history: number;
  /** Readings learnt before any may count as unusual. */
  warmup: number;
  side: Side;
  /** Deviations smaller than this, in the reading's unit, are never unusual (0: any). */
  minDeviation: number;
}

export interface RuleConfig {
  rule: RuleKind;
  /** 'rate' compares the change per rateUnitMs instead of the value itself. */
  measure: Measure;
  rateUnitMs: number;
  hysteresis: Hysteresis;
  /** 'deadband': an alert clears only once the value is this far back on the normal side. */
  deadband: number;
  levels: LevelConfig[];
  /** How long, or how many readings in a row, a level's condition must hold to raise it. */
  raise: Confirmation;
  /** The same for its clear condition. */
  clear: Confirmation;
  forecast?: ForecastConfig;
  anomaly?: AnomalyConfig;
}

export type ThresholdValue = number | EqualityValue | { low: number; high: number };

/** A threshold problem found in configuration or in a per-message override. */
export class RuleError extends Error {
  override readonly name = 'RuleError';
}

/** Rules whose readings must be numbers: the comparisons, and the two that learn from the readings. */
const NUMBER_READING_RULES: ReadonlySet<RuleKind> = new Set(['above', 'below', 'outside', 'inside', 'forecast', 'anomaly']);
const RULES: readonly RuleKind[] = ['above', 'below', 'outside', 'inside', 'equals', 'notEquals', 'silence', 'forecast', 'anomaly'];
const BAND_RULES: ReadonlySet<RuleKind> = new Set(['outside', 'inside']);

export function readsNumbers(rule: RuleKind): boolean {
  return NUMBER_READING_RULES.has(rule);
}

export function isBandRule(rule: RuleKind): boolean {
  return BAND_RULES.has(rule);
}

export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/**
 * The thresholds of every level of one rule, compiled into flat arrays so that the per-reading
 * checks are a few comparisons. Instances are immutable; overrides produce new instances.
 */
export class Thresholds {
  private constructor(
    readonly rule: RuleKind,
    readonly severities: readonly Severity[],
    /** above/below: the threshold; bands: the low edge; silence: ms without data; forecast: lead time; anomaly: score. */
    private readonly lo: Float64Array,
    /** bands: the high edge. */
    private readonly hi: Float64Array,
    /** where a raised level clears when there is hysteresis (NaN without). */
    private readonly clearLo: Float64Array,
    private readonly clearHi: Float64Array,
    /** equals/notEquals: the value compared with. */
    private readonly matches: readonly EqualityValue[],
    /** forecast: the value whose crossing is predicted (NaN for other rules). */
    readonly target: number,
  ) {}

  static compile(config: RuleConfig): Thresholds {
    const problems = validateRule(config);
    if (problems.length > 0) throw new RuleError(problems.join('; '));
    const levels = [...config.levels].sort((a, b) => severityRank(a.severity) - severityRank(b.severity));
    const count = levels.length;
    const lo = new Float64Array(count);
    const hi = new Float64Array(count);
    const clearLo = new Float64Array(count).fill(NaN);
    const clearHi = new Float64Array(count).fill(NaN);
    const matches: EqualityValue[] = [];
    levels.forEach((level, i) => {
      if (config.rule === 'equals' || config.rule === 'notEquals') {
        matches[i] = level.value as EqualityValue;
        return;
      }
      if (isBandRule(config.rule)) {
        lo[i] = level.low as number;
        hi[i] = level.high as number;
      } else {
        lo[i] = level.value as number;
      }
      const clear = clearLevels(config, level);
      clearLo[i] = clear.low;
      clearHi[i] = clear.high;
    });
    const target = config.rule === 'forecast' ? (config.forecast as ForecastConfig).target : NaN;
    return new Thresholds(config.rule, levels.map((l) => l.severity), lo, hi, clearLo, clearHi, matches, target);
  }

  get levelCount(): number {
    return this.severities.length;
  }

  /** Whether level i's alert condition holds for a numeric (or, for equality rules, any) value. */
  raises(i: number, value: number | EqualityValue): boolean {
    switch (this.rule) {
      case 'above':
      case 'anomaly':
        return (value as number) > this.lo[i];
      case 'forecast':
        return (value as number) <= this.lo[i];
      case 'below':
        return (value as number) < this.lo[i];
      case 'outside':
        return (value as number) < this.lo[i] || (value as number) > this.hi[i];
      case 'inside':
        return (value as number) >= this.lo[i] && (value as number) <= this.hi[i];
      case 'equals':
        return sameValue(value, this.matches[i]);
      case 'notEquals':
        return !sameValue(value, this.matches[i]);
      case 'silence':
        return false;
    }
  }

  /** Whether a raised level i may clear on this value: past its clear level, or out of its condition. */
  clears(i: number, value: number | EqualityValue): boolean {
    const clearLo = this.clearLo[i];
    if (Number.isNaN(clearLo)) return !this.raises(i, value);
    const v = value as number;
    switch (this.rule) {
      case 'above':
      case 'anomaly':
        return v < clearLo;
      case 'below':
      case 'forecast':
        return v > clearLo;
      case 'outside':
        return v > clearLo && v < this.clearHi[i];
      case 'inside':
        return v < clearLo || v > this.clearHi[i];
      default:
        return !this.raises(i, value);
    }
  }

  /** silence: how long without data raises level i. */
  silenceAfter(i: number): number {
    return this.lo[i];
  }

  /** forecast: the lead time within which a predicted crossing raises level i. */
  leadWithin(i: number): number {
    return this.lo[i];
  }

  /** The threshold that level i raises at, as reported in an alert. */
  raiseThreshold(i: number): ThresholdValue {
    if (this.rule === 'equals' || this.rule === 'notEquals') return this.matches[i];
    if (isBandRule(this.rule)) return { low: this.lo[i], high: this.hi[i] };
    return this.lo[i];
  }

  /** The threshold that level i clears at, as reported in an alert. */
  clearThreshold(i: number): ThresholdValue {
    if (Number.isNaN(this.clearLo[i])) return this.raiseThreshold(i);
    if (isBandRule(this.rule)) return { low: this.clearLo[i], high: this.clearHi[i] };
    return this.clearLo[i];
  }

  /**
   * A copy with some levels' thresholds replaced, by a device's own thresholds and then by a
   * per-message `msg.threshold` (later overrides win). Clear levels keep the configured distance
   * from the raise level. For a forecast a bare number (or `target`) is the value whose crossing
   * is predicted, and severities name lead times.
   */
  static withOverrides(config: RuleConfig, overrides: readonly unknown[]): Thresholds {
    const severities = config.levels.map((level) => level.severity);
    const patches = new Map<Severity, Partial<LevelConfig>>();
    let forecast = config.forecast;
    for (const override of overrides) {
      let byLevel: unknown = override;
      if (config.rule === 'forecast' && forecast) {
        const split = splitForecastOverride(override);
        if (split.target !== undefined) forecast = { ...forecast, target: split.target };
        if (split.levels === undefined) continue;
        byLevel = split.levels;
      }
      for (const [severity, patch] of parseOverride(config.rule, severities, byLevel)) {
        patches.set(severity, { ...patches.get(severity), ...patch });
      }
    }
    const levels = config.levels.map((level) => {
      const patch = patches.get(level.severity);
      if (!patch) return level;
      const merged: LevelConfig = { ...level, ...patch };
      if (config.hysteresis === 'explicit') shiftExplicitClear(config.rule, level, merged, patch);
      return merged;
    });
    return Thresholds.compile({ ...config, levels, forecast });
  }
}

function sameValue(value: unknown, match: EqualityValue): boolean {
  if (typeof match === 'number') {
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    return n === match;
  }
  if (typeof match === 'boolean') return value === match || String(value) === String(match);
  return String(value) === match;
}

function clearLevels(config: RuleConfig, level: LevelConfig): { low: number; high: number } {
  const none = { low: NaN, high: NaN };
  // A lead time is only as steady as the slope behind it: its hysteresis is always a margin.
  if (config.rule === 'forecast') return { low: (level.value as number) * (1 + (config.forecast as ForecastConfig).clearMargin), high: NaN };
  switch (config.hysteresis) {
    case 'none':
      return none;
    case 'deadband': {
      const d = config.deadband;
      if (!(d > 0)) return none;
      if (config.rule === 'above' || config.rule === 'anomaly') return { low: (level.value as number) - d, high: NaN };
      if (config.rule === 'below') return { low: (level.value as number) + d, high: NaN };
      if (config.rule === 'outside') return { low: (level.low as number) + d, high: (level.high as number) - d };
      return { low: (level.low as number) - d, high: (level.high as number) + d };
    }
    case 'explicit':
      if (isBandRule(config.rule)) return { low: level.clearLow as number, high: level.clearHigh as number };
      return { low: level.clear as number, high: NaN };
  }
}

function shiftExplicitClear(rule: RuleKind, original: LevelConfig, merged: LevelConfig, patch: Partial<LevelConfig>): void {
  if (isBandRule(rule)) {
    if (patch.clearLow === undefined && patch.low !== undefined) {
      merged.clearLow = patch.low + ((original.clearLow as number) - (original.low as number));
    }
    if (patch.clearHigh === undefined && patch.high !== undefined) {
      merged.clearHigh = patch.high + ((original.clearHigh as number) - (original.high as number));
    }
  } else if (patch.clear === undefined && typeof patch.value === 'number') {
    merged.clear = patch.value + ((original.clear as number) - (original.value as number));
  }
}

/** A forecast override: a bare number is the target; an object may name `target` and lead times by severity. */
function splitForecastOverride(override: unknown): { target?: number; levels?: Record<string, unknown> } {
  if (typeof override === 'number' || typeof override === 'string') return { target: toNumber(override, 'forecast target override') };
  if (override === null || typeof override !== 'object' || Array.isArray(override)) {
    throw new RuleError('a forecast override must be the target value, or { target, <severity>: lead time }');
  }
  const { target, ...levels } = override as Record<string, unknown>;
  return {
    target: target === undefined ? undefined : toNumber(target, 'forecast target override'),
    levels: Object.keys(levels).length > 0 ? levels : undefined,
  };
}

function parseOverride(rule: RuleKind, severities: readonly Severity[], override: unknown): Map<Severity, Partial<LevelConfig>> {
  const result = new Map<Severity, Partial<LevelConfig>>();
  if (typeof override === 'number' || typeof override === 'string' || typeof override === 'boolean' || Array.isArray(override)) {
    // A bare value sets the least severe level: the common single-level rule.
    const least = [...severities].sort((a, b) => severityRank(a) - severityRank(b))[0];
    result.set(least, overrideLevel(rule, override, least));
    return result;
  }
  if (override === null || typeof override !== 'object') {
    throw new RuleError('threshold override must be a value, a [low, high] pair or an object keyed by severity');
  }
  for (const [severity, spec] of Object.entries(override)) {
    if (!severities.includes(severity as Severity)) {
      throw new RuleError(`threshold override names severity "${severity}", which this rule does not have (${severities.join(', ')})`);
    }
    result.set(severity as Severity, overrideLevel(rule, spec, severity));
  }
  return result;
}

function overrideLevel(rule: RuleKind, spec: unknown, severity: string): Partial<LevelConfig> {
  const where = `threshold override for ${severity}`;
  if (isBandRule(rule)) {
    if (Array.isArray(spec) && spec.length === 2) return { low: toNumber(spec[0], where), high: toNumber(spec[1], where) };
    if (spec !== null && typeof spec === 'object') {
      const s = spec as Record<string, unknown>;
      return pickNumbers(s, ['low', 'high', 'clearLow', 'clearHigh'], where);
    }
    throw new RuleError(`${where} must be [low, high] or { low, high }`);
  }
  if (rule === 'silence' || rule === 'forecast') return { value: toDuration(spec, where) };
  if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) {
    const s = spec as Record<string, unknown>;
    if (rule === 'equals' || rule === 'notEquals') return { value: toEquality(s.value, where) };
    return pickNumbers(s, ['value', 'clear'], where);
  }
  if (rule === 'equals' || rule === 'notEquals') return { value: toEquality(spec, where) };
  return { value: toNumber(spec, where) };
}

function pickNumbers(source: Record<string, unknown>, names: readonly string[], where: string): Partial<LevelConfig> {
  const unknownNames = Object.keys(source).filter((name) => !names.includes(name));
  if (unknownNames.length > 0) throw new RuleError(`${where} has unknown field(s) ${unknownNames.join(', ')}; expected ${names.join(', ')}`);
  const out: Record<string, number> = {};
  for (const name of names) {
    if (source[name] !== undefined) out[name] = toNumber(source[name], `${where}.${name}`);
  }
  return out as Partial<LevelConfig>;
}

function toNumber(value: unknown, where: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n)) throw new RuleError(`${where} is not a finite number: ${JSON.stringify(value)}`);
  return n;
}

function toEquality(value: unknown, where: string): EqualityValue {
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
  throw new RuleError(`${where} must be a number, string or boolean`);
}

/** Milliseconds from a number of ms or a string such as "90s", "10m", "1h". */
export function toDuration(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$/.exec(value);
    if (m) {
      const ms = Number(m[1]) * DURATION_UNITS_MS[m[2] ?? 'ms'];
      if (ms > 0) return ms;
    }
  }
  throw new RuleError(`${where} must be a positive duration (ms, or a string such as "10m")`);
}

/** Every problem with a rule's configuration, in words a user can act on. Empty when valid. */
export function validateRule(config: RuleConfig): string[] {
  const problems: string[] = [];
  const { rule, levels } = config;
  if (!RULES.includes(rule)) {
    return [`unknown rule "${String(rule)}"`];
  }
  if (!Array.isArray(levels) || levels.length === 0) return ['at least one severity level is needed'];
  if (levels.length > 8) problems.push('at most 8 levels');
  const seen = new Set<string>();
  for (const level of levels) {
    const name = level.severity;
    if (!SEVERITIES.includes(name)) {
      problems.push(`unknown severity "${String(name)}" (use ${SEVERITIES.join(', ')})`);
      continue;
    }
    if (seen.has(name)) problems.push(`severity ${name} is used twice`);
    seen.add(name);
    problems.push(...validateLevel(config, level));
  }
  if (config.measure === 'rate' && !(rule === 'above' || rule === 'below' || isBandRule(rule))) {
    problems.push('rate of change works with above, below, outside and inside');
  }
  if (config.measure === 'rate' && !(config.rateUnitMs > 0)) problems.push('rate unit must be a positive number of ms');
  if (config.hysteresis === 'deadband' && !(config.deadband >= 0)) problems.push('deadband must be zero or more');
  for (const [which, confirmation] of [['raise', config.raise], ['clear', config.clear]] as const) {
    if (confirmation.mode === 'duration' && !(confirmation.ms > 0)) problems.push(`${which} confirmation needs a duration above zero`);
    if (confirmation.mode === 'count' && !(Number.isInteger(confirmation.count) && confirmation.count >= 1)) {
      problems.push(`${which} confirmation needs a whole number of readings, 1 or more`);
    }
  }
  if (rule === 'silence' && config.clear.mode === 'duration') problems.push('a silence alert clears on readings: use immediate or a count');
  if (rule === 'silence' && config.raise.mode !== 'immediate') problems.push('a silence rule is its own duration: raise confirmation must be immediate');
  if (rule === 'forecast') problems.push(...validateForecast(config.forecast));
  if (rule === 'anomaly') problems.push(...validateAnomaly(config.anomaly));
  if (problems.length === 0) problems.push(...validateLevelOrder(config));
  return problems;
}

const isWhole = (v: unknown, least: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= least;

function validateForecast(forecast: ForecastConfig | undefined): string[] {
  if (!forecast) return ['a forecast needs its settings: target, window, minimum readings and confidence'];
  const problems: string[] = [];
  if (forecast.direction !== 'below' && forecast.direction !== 'above') problems.push(`forecast direction must be below or above, not "${String(forecast.direction)}"`);
  if (!Number.isFinite(forecast.target)) problems.push('forecast target must be a number');
  if (!(forecast.windowMs > 0 && Number.isFinite(forecast.windowMs))) problems.push('forecast window must be a duration above zero');
  if (!isWhole(forecast.minReadings, 3)) problems.push('forecast minimum readings must be a whole number, 3 or more');
  if (!(forecast.minConfidence >= 0 && forecast.minConfidence <= 1)) problems.push('forecast minimum confidence must lie between 0 and 1');
  if (!(forecast.clearMargin >= 0 && Number.isFinite(forecast.clearMargin))) problems.push('forecast clear margin must be zero or more');
  return problems;
}

function validateAnomaly(anomaly: AnomalyConfig | undefined): string[] {
  if (!anomaly) return ['an anomaly rule needs its settings: history and warm-up'];
  const problems: string[] = [];
  if (!isWhole(anomaly.history, 2)) problems.push('anomaly history must be a whole number of readings, 2 or more');
  if (!isWhole(anomaly.warmup, 2)) problems.push('anomaly warm-up must be a whole number of readings, 2 or more');
  if (!['both', 'above', 'below'].includes(anomaly.side)) problems.push(`anomaly side must be both, above or below, not "${String(anomaly.side)}"`);
  if (!(anomaly.minDeviation >= 0 && Number.isFinite(anomaly.minDeviation))) problems.push('anomaly minimum deviation must be zero or more');
  return problems;
}

function validateLevel(config: RuleConfig, level: LevelConfig): string[] {
  const { rule } = config;
  const at = `level ${level.severity}`;
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const problems: string[] = [];
  if (rule === 'silence') {
    if (!(isNum(level.value) && level.value > 0)) problems.push(`${at}: silence needs a duration above zero`);
    return problems;
  }
  if (rule === 'forecast') {
    if (!(isNum(level.value) && level.value > 0)) problems.push(`${at}: a forecast level needs a lead time above zero`);
    return problems;
  }
  if (rule === 'equals' || rule === 'notEquals') {
    if (!['number', 'string', 'boolean'].includes(typeof level.value)) problems.push(`${at}: needs a value to compare with`);
    return problems;
  }
  if (isBandRule(rule)) {
    if (!isNum(level.low) || !isNum(level.high)) return [`${at}: a band needs a low and a high number`];
    if (!(level.low < level.high)) problems.push(`${at}: low (${level.low}) must be below high (${level.high})`);
    if (config.hysteresis === 'explicit') {
      if (!isNum(level.clearLow) || !isNum(level.clearHigh)) problems.push(`${at}: explicit hysteresis needs clear low and clear high`);
      else if (rule === 'outside' && !(level.clearLow >= level.low && level.clearHigh <= level.high && level.clearLow < level.clearHigh)) {
        problems.push(`${at}: clear band must lie inside the alert band`);
      } else if (rule === 'inside' && !(level.clearLow <= level.low && level.clearHigh >= level.high)) {
        problems.push(`${at}: clear band must enclose the alert band`);
      }
    }
    return problems;
  }
  if (!isNum(level.value)) return [`${at}: needs a numeric threshold`];
  if (rule === 'anomaly' && !(level.value > 0)) problems.push(`${at}: an anomaly level is a number of usual spreads above zero`);
  if (config.hysteresis === 'explicit') {
    if (!isNum(level.clear)) problems.push(`${at}: explicit hysteresis needs a clear level`);
    else if ((rule === 'above' || rule === 'anomaly') && !(level.clear <= level.value)) problems.push(`${at}: clear level (${level.clear}) must be at or below the alert level (${level.value})`);
    else if (rule === 'below' && !(level.clear >= level.value)) problems.push(`${at}: clear level (${level.clear}) must be at or above the alert level (${level.value})`);
  }
  return problems;
}

/** Higher severities must lie further out, or a critical level could be active without its warning. */
function validateLevelOrder(config: RuleConfig): string[] {
  const levels = [...config.levels].sort((a, b) => severityRank(a.severity) - severityRank(b.severity));
  const problems: string[] = [];
  for (let i = 1; i < levels.length; i++) {
    const lower = levels[i - 1];
    const higher = levels[i];
    const pair = `${higher.severity} must be beyond ${lower.severity}`;
    switch (config.rule) {
      case 'above':
      case 'anomaly':
        if (!((higher.value as number) >= (lower.value as number))) problems.push(`${pair}: its threshold must not be lower`);
        break;
      case 'forecast':
        if (!((higher.value as number) <= (lower.value as number))) problems.push(`${pair}: its lead time must not be longer`);
        break;
      case 'below':
        if (!((higher.value as number) <= (lower.value as number))) problems.push(`${pair}: its threshold must not be higher`);
        break;
      case 'silence':
        if (!((higher.value as number) >= (lower.value as number))) problems.push(`${pair}: it needs a longer silence`);
        break;
      case 'outside':
        if (!((higher.low as number) <= (lower.low as number) && (higher.high as number) >= (lower.high as number))) {
          problems.push(`${pair}: its band must enclose the ${lower.severity} band`);
        }
        break;
      case 'inside':
        if (!((higher.low as number) >= (lower.low as number) && (higher.high as number) <= (lower.high as number))) {
          problems.push(`${pair}: its band must lie within the ${lower.severity} band`);
        }
        break;
      default:
        break;
    }
  }
  return problems;
}
