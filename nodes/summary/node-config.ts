/**
 * From the summary node's editor properties to the aggregator's settings, checked.
 */
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

const UNIT_MS: Record<string, number> = { s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** The aggregator's settings from the editor's properties; throws a readable error. */
export function windowConfig(p: SummaryProperties): WindowConfig {
  const mode = p.mode === 'count' ? 'count' : 'time';
  const windowMs = Number(p.windowValue ?? 15) * (UNIT_MS[p.windowUnit ?? 'min'] ?? NaN);
  const count = Number(p.count ?? 10);
  if (mode === 'time' && !(windowMs > 0)) throw new Error(`window length "${String(p.windowValue)} ${String(p.windowUnit)}" is not a positive duration`);
  if (mode === 'count' && !(Number.isInteger(count) && count >= 1)) throw new Error(`readings per window "${String(p.count)}" is not a whole number of 1 or more`);
  const graceMs = p.timeSource === 'message' ? Number(p.graceValue ?? 0) * 1000 : 0;
  if (!(graceMs >= 0)) throw new Error(`grace "${String(p.graceValue)}" is not a number of seconds`);
  return {
    mode,
    windowMs,
    count,
    graceMs,
    fields: (p.fields ?? '').split(/[\s,]+/).filter((f) => f !== ''),
    readingName: p.reading?.trim() || 'value',
  };
}

