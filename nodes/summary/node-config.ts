/**
 * From the summary node's editor properties to the aggregator's settings, checked.
 */
import { DURATION_UNITS_MS, durationSetting, listSetting, numberSetting, SettingsError } from '../shared/settings';
import type { WindowConfig } from './windows';

/** The summary node's properties as saved in the flow. */
export interface SummaryProperties {
  name?: string;
  property?: string;
  propertyType?: string;
  fields?: string;
  reading?: string;
  keyProperty?: string;
  keyPropertyType?: string;
  mode?: string;
  windowValue?: string | number;
  windowUnit?: string;
  count?: string | number;
  timeSource?: string;
  graceValue?: string | number;
  persist?: boolean;
  catchErrors?: boolean;
}

/** The aggregator's settings from the editor's properties; throws a readable error. */
export function windowConfig(p: SummaryProperties): WindowConfig {
  const mode = p.mode === 'count' ? 'count' : 'time';
  // Each mode checks only its own fields: a count window keeps the time fields it was saved with.
  const windowAmount = mode === 'time' ? numberSetting(p.windowValue, 15, 'the window length', { min: 0 }) : Number(p.windowValue ?? 15);
  const windowMs = mode === 'time' ? durationSetting(windowAmount, p.windowUnit ?? 'min', 'the window length') : windowAmount * (DURATION_UNITS_MS[p.windowUnit ?? 'min'] ?? NaN);
  if (mode === 'time' && !(windowMs > 0)) throw new SettingsError(`the window length must be a positive duration (got ${JSON.stringify(p.windowValue)} ${String(p.windowUnit)})`);
  const count = mode === 'count' ? numberSetting(p.count, 10, 'readings per window', { min: 1, integer: true }) : Number(p.count ?? 10);
  const graceMs = p.timeSource === 'message' ? numberSetting(p.graceValue, 0, 'the grace (s)', { min: 0 }) * 1000 : 0;
  return {
    mode,
    windowMs,
    count,
    graceMs,
    fields: listSetting(p.fields),
    readingName: p.reading?.trim() || 'value',
  };
}

