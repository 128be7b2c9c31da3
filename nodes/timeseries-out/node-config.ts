/**
 * From the editor's properties (strings, as typed) to the options of the mapping and the batcher.
 * Kept apart from the adapter so that a unit test can check every conversion without Node-RED.
 */
import type { BatcherOptions } from './batcher';
import type { MappingOptions, TextValues } from './mapping';
import { isPrecision, type Precision } from './timestamps';
import { listSetting, numberSetting, SettingsError } from '../shared/settings';

/** A tag row of the editor: a name and a typed input. */
export interface TagProperty {
  name: string;
  value: string;
  type: string;
}

/** The writer node's properties as saved in the flow. */
export interface TimeseriesProperties {
  name?: string;
  store?: string;
  measurement?: string;
  measurementType?: string;
  readings?: string;
  readingsType?: string;
  valueField?: string;
  deviceTag?: boolean;
  gatewayTag?: boolean;
  topicTag?: boolean;
  tags?: TagProperty[];
  tagKeys?: string;
  integerFields?: string;
  text?: string;
  time?: string;
  timeType?: string;
  timeUnit?: string;
  batchSize?: string | number;
  linger?: string | number;
  flushInterval?: string | number;
  maxInFlight?: string | number;
  maxPending?: string | number;
  retryMaxDelay?: string | number;
  giveUpAfter?: string | number;
  catchErrors?: boolean;
}

export const DEFAULTS = {
  measurement: 'readings',
  valueField: 'value',
  timeField: 'timestamp',
  batchSize: 5000,
  lingerMs: 5,
  flushIntervalMs: 1000,
  maxInFlight: 4,
  maxPending: 100_000,
  retryInitialDelayMs: 1000,
  retryMaxDelayS: 30,
  giveUpAfterS: 300,
} as const;

const TEXT_VALUES: readonly TextValues[] = ['skip', 'numeric', 'string'];

export function mappingOptions(p: TimeseriesProperties, precision: Precision): MappingOptions {
  const timeUnit = p.timeUnit || 'ms';
  if (!isPrecision(timeUnit)) throw new SettingsError(`unknown time unit ${JSON.stringify(p.timeUnit)}`);
  const text = (p.text || 'skip') as TextValues;
  if (!TEXT_VALUES.includes(text)) throw new SettingsError(`unknown text handling ${JSON.stringify(p.text)}`);
  return {
    precision,
    timeUnit,
    integerFields: new Set(listSetting(p.integerFields)),
    text,
    valueField: p.valueField === undefined ? DEFAULTS.valueField : p.valueField.trim(),
    tagKeys: new Set(listSetting(p.tagKeys)),
    // The reading's own time comes first whatever the message's time is read from; with
    // "arrival" it is left out (never stored as a value).
    timeField: p.timeType === 'field' || p.timeType === undefined ? (p.time ?? DEFAULTS.timeField).trim() : DEFAULTS.timeField,
    arrivalTime: p.timeType === 'arrival',
  };
}

export function batcherOptions(p: TimeseriesProperties): BatcherOptions {
  return {
    batchSize: numberSetting(p.batchSize, DEFAULTS.batchSize, 'batch size', { min: 1, integer: true }),
    lingerMs: numberSetting(p.linger, DEFAULTS.lingerMs, 'linger', { min: 0, integer: true }),
    flushIntervalMs: numberSetting(p.flushInterval, DEFAULTS.flushIntervalMs, 'flush interval', { min: 1, integer: true }),
    maxInFlight: numberSetting(p.maxInFlight, DEFAULTS.maxInFlight, 'requests in flight', { min: 1, integer: true }),
    maxPending: numberSetting(p.maxPending, DEFAULTS.maxPending, 'pending points', { min: 1, integer: true }),
    retry: {
      initialDelayMs: DEFAULTS.retryInitialDelayMs,
      maxDelayMs: numberSetting(p.retryMaxDelay, DEFAULTS.retryMaxDelayS, 'longest retry delay', { min: 1, integer: true }) * 1000,
      giveUpAfterMs: numberSetting(p.giveUpAfter, DEFAULTS.giveUpAfterS, 'give up after', { min: 0, integer: true }) * 1000,
    },
  };
}

/** Tag rows, checked: every row needs a name. */
export function tagRows(rows: TagProperty[] | undefined): TagProperty[] {
  const list = rows ?? [];
  for (const row of list) if (!row.name || !row.name.trim()) throw new SettingsError('every tag needs a name');
  return list.map((row) => ({ name: row.name.trim(), value: row.value ?? '', type: row.type || 'str' }));
}
