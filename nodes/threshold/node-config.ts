/**
 * From the editor's properties (strings, as typed) to the rule the engine runs. Kept apart from
 * the adapter so that a unit test can check every conversion without Node-RED.
 */
import {
  RuleError,
  SEVERITIES,
  toDuration,
  validateRule,
  type AnomalyConfig,
  type Confirmation,
  type ForecastConfig,
  type EqualityValue,
  type LevelConfig,
  type RuleConfig,
  type RuleKind,
  type Severity,
} from './rules';
import { durationSetting, listSetting, optionalNumberSetting } from '../shared/settings';

/** A level row as the editor stores it: every field may be a string. */
export interface EditorLevel {
  severity: string;
  value?: string | number | boolean;
  low?: string | number;
  high?: string | number;
  clear?: string | number;
  clearLow?: string | number;
  clearHigh?: string | number;
}

/** The threshold node's properties as saved in the flow. */
export interface ThresholdProperties {
  name?: string;
  property?: string;
  propertyType?: string;
  field?: string;
  reading?: string;
  keyProperty?: string;
  keyPropertyType?: string;
  rule?: string;
  measure?: string;
  rateUnit?: string;
  levels?: EditorLevel[];
  hysteresis?: string;
  deadband?: string | number;
  raiseMode?: string;
  raiseValue?: string | number;
  raiseUnit?: string;
  clearMode?: string;
  clearValue?: string | number;
  clearUnit?: string;
  stateOutput?: boolean;
  persist?: boolean;
  startup?: string;
  expectedKeys?: string;
  catchErrors?: boolean;
  /** An iot-redis config node: the keys' state shared with the other instances running the flow. */
  redis?: string;
  /** The reading's unit, for alert texts ("V"). */
  unit?: string;
  forecastDirection?: string;
  forecastTarget?: string | number;
  /** A duration as text: "48h". */
  forecastWindow?: string | number;
  forecastMinReadings?: string | number;
  forecastMinConfidence?: string | number;
  /** Percent: 100 clears a 48 h level beyond 96 h. */
  forecastClearMargin?: string | number;
  anomalyHistory?: string | number;
  anomalyWarmup?: string | number;
  anomalySide?: string;
  anomalyMinDeviation?: string | number;
}

/** What a forecast or anomaly rule does when a setting is left empty. */
export const FORECAST_DEFAULTS = { window: '48h', minReadings: 10, minConfidence: 0.9, clearMarginPercent: 100 } as const;
export const ANOMALY_DEFAULTS = { history: 100, warmup: 30, minDeviation: 0 } as const;

export function ruleFromProperties(p: ThresholdProperties): RuleConfig {
  const rule = (p.rule ?? 'above') as RuleKind;
  const config: RuleConfig = {
    rule,
    measure: p.measure === 'rate' ? 'rate' : 'value',
    rateUnitMs: p.rateUnit === 'second' ? 1000 : 60_000,
    hysteresis: p.hysteresis === 'deadband' || p.hysteresis === 'explicit' ? p.hysteresis : 'none',
    deadband: optionalNumberSetting(p.deadband, 'deadband') ?? 0,
    levels: (p.levels ?? []).map((level) => levelFromEditor(rule, level)),
    raise: confirmation(p.raiseMode, p.raiseValue, p.raiseUnit, 'raise'),
    clear: confirmation(p.clearMode, p.clearValue, p.clearUnit, 'clear'),
  };
  if (rule === 'forecast') config.forecast = forecastFrom(p);
  if (rule === 'anomaly') config.anomaly = anomalyFrom(p);
  const problems = validateRule(config);
  if (problems.length > 0) throw new RuleError(problems.join('; '));
  return config;
}

/** The name a reading goes by in alerts and in device metadata thresholds. */
export function readingName(p: ThresholdProperties): string {
  if (p.reading?.trim()) return p.reading.trim();
  if (p.field?.trim()) return p.field.trim();
  const path = (p.propertyType ?? 'msg') === 'msg' ? (p.property ?? 'payload') : '';
  const last = path.split('.').pop() ?? '';
  return last && last !== 'payload' ? last : 'value';
}

/** Keys expected to report from the start (silence rules): comma, space or newline separated. */
export function expectedKeyList(text: string | undefined): string[] {
  return listSetting(text);
}

function forecastFrom(p: ThresholdProperties): ForecastConfig {
  const target = optionalNumberSetting(p.forecastTarget, 'forecast target');
  if (target === undefined) throw new RuleError('a forecast needs a target: the value whose crossing it predicts');
  const window = p.forecastWindow === undefined || p.forecastWindow === '' ? FORECAST_DEFAULTS.window : p.forecastWindow;
  return {
    direction: p.forecastDirection === 'above' ? 'above' : 'below',
    target,
    windowMs: toDuration(durationText(window), 'forecast window'),
    minReadings: optionalNumberSetting(p.forecastMinReadings, 'forecast minimum readings') ?? FORECAST_DEFAULTS.minReadings,
    minConfidence: optionalNumberSetting(p.forecastMinConfidence, 'forecast minimum confidence') ?? FORECAST_DEFAULTS.minConfidence,
    clearMargin: (optionalNumberSetting(p.forecastClearMargin, 'forecast clear margin') ?? FORECAST_DEFAULTS.clearMarginPercent) / 100,
  };
}

function anomalyFrom(p: ThresholdProperties): AnomalyConfig {
  return {
    history: optionalNumberSetting(p.anomalyHistory, 'anomaly history') ?? ANOMALY_DEFAULTS.history,
    warmup: optionalNumberSetting(p.anomalyWarmup, 'anomaly warm-up') ?? ANOMALY_DEFAULTS.warmup,
    side: p.anomalySide === 'above' || p.anomalySide === 'below' ? p.anomalySide : 'both',
    minDeviation: optionalNumberSetting(p.anomalyMinDeviation, 'anomaly minimum deviation') ?? ANOMALY_DEFAULTS.minDeviation,
  };
}

/** A bare number typed into a duration field is in ms, as everywhere in the node. */
function durationText(value: string | number | boolean | undefined): unknown {
  return typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
}

function levelFromEditor(rule: RuleKind, level: EditorLevel): LevelConfig {
  const severity = level.severity as Severity;
  if (!SEVERITIES.includes(severity)) throw new RuleError(`unknown severity "${level.severity}"`);
  const at = `level ${severity}`;
  const out: LevelConfig = { severity };
  if (rule === 'silence' || rule === 'forecast') {
    out.value = toDuration(durationText(level.value), rule === 'silence' ? `${at} silence` : `${at} lead time`);
  } else if (rule === 'equals' || rule === 'notEquals') {
    out.value = equalityValue(level.value);
  } else {
    out.value = optionalNumberSetting(level.value, `${at} threshold`);
    out.low = optionalNumberSetting(level.low, `${at} low`);
    out.high = optionalNumberSetting(level.high, `${at} high`);
    out.clear = optionalNumberSetting(level.clear, `${at} clear`);
    out.clearLow = optionalNumberSetting(level.clearLow, `${at} clear low`);
    out.clearHigh = optionalNumberSetting(level.clearHigh, `${at} clear high`);
  }
  for (const name of Object.keys(out) as (keyof LevelConfig)[]) if (out[name] === undefined) delete out[name];
  return out;
}

function confirmation(mode: string | undefined, value: string | number | undefined, unit: string | undefined, which: string): Confirmation {
  if (mode === 'count') {
    const count = optionalNumberSetting(value, `${which} count`);
    return { mode: 'count', count: count ?? NaN };
  }
  if (mode === 'duration') {
    const amount = optionalNumberSetting(value, `${which} duration`);
    return { mode: 'duration', ms: amount === undefined ? NaN : durationSetting(amount, unit ?? 's', `${which} duration unit`) };
  }
  return { mode: 'immediate' };
}

/** "42" is the number 42, "true" the boolean, anything else the text itself. */
function equalityValue(value: string | number | boolean | undefined): EqualityValue | undefined {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (text === '') return undefined;
  if (text === 'true' || text === 'false') return text === 'true';
  if (text !== '' && Number.isFinite(Number(text))) return Number(text);
  return value;
}
