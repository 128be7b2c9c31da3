/**
 * The output node's settings, read and checked, or a sentence saying what is wrong.
 */
import type { Operation } from './writer';

export type OutOperation = Operation | 'webToCase' | 'webToLead';
export type RecordSource = 'alert' | 'payload' | 'fields';

export interface FieldRow {
  field: string;
  value: string;
  valueType: string;
}

export interface OutProperties {
  operation?: string;
  object?: string;
  recordFrom?: string;
  externalIdField?: string;
  fields?: FieldRow[];
  origin?: string;
  closeOnClear?: boolean;
  leadSource?: string;
  batchDelay?: string | number;
  batchSize?: string | number;
  parallel?: string | number;
  retries?: string | number;
  retryDelay?: string | number;
  timeout?: string | number;
}

export interface OutSettings {
  operation: OutOperation;
  /** The sObject or platform event (Case and Lead for the Web-to operations). */
  object: string;
  recordFrom: RecordSource;
  externalIdField?: string;
  fields: FieldRow[];
  origin: string;
  closeOnClear: boolean;
  leadSource: string;
  batchDelayMs: number;
  batchSize: number;
  parallel: number;
  retries: number;
  /** The first retry's wait; later ones double (with jitter) up to 60 times that, at most 10 min. */
  retryDelayMs: number;
  timeoutMs: number;
}

const OPERATIONS: readonly OutOperation[] = ['upsert', 'create', 'update', 'event', 'webToCase', 'webToLead'];
const SOURCES: readonly RecordSource[] = ['alert', 'payload', 'fields'];
const API_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** Web-to forms also name custom fields by their 15-character id (00N...). */
const FORM_NAME = /^[A-Za-z0-9_.-]+$/;
export const MAX_BATCH = 200;

function numberIn(value: string | number | undefined, fallback: number, min: number, max: number, what: string): number | string {
  const n = value === undefined || value === '' ? fallback : Number(value);
  return Number.isFinite(n) && n >= min && n <= max ? n : `${what} must be a number from ${min} to ${max}, not ${value}`;
}

export function readOutConfig(props: OutProperties): OutSettings | { problem: string } {
  const operation = (props.operation || 'upsert') as OutOperation;
  if (!OPERATIONS.includes(operation)) return { problem: `unknown operation "${props.operation}"` };
  const recordFrom = (props.recordFrom || 'alert') as RecordSource;
  if (!SOURCES.includes(recordFrom)) return { problem: `unknown record source "${props.recordFrom}"` };
  const webTo = operation === 'webToCase' || operation === 'webToLead';
  const object = webTo ? (operation === 'webToCase' ? 'Case' : 'Lead') : (props.object ?? '').trim();
  if (!API_NAME.test(object)) return { problem: `"${object}" is not an sObject name` };
  if (operation === 'event' && !object.endsWith('__e')) return { problem: `${object} is not a platform event (their names end in __e)` };
  if (recordFrom === 'alert' && !['Case', 'Lead'].includes(object)) return { problem: `the ready-made mapping from msg.alert makes a Case or a Lead, not a ${object}: take the record from msg.payload or the field table` };
  const externalIdField = (props.externalIdField ?? '').trim();
  if (operation === 'upsert' && !API_NAME.test(externalIdField)) return { problem: 'an upsert needs an external id field (such as IoT_Alert_Id__c)' };
  const fields = (props.fields ?? []).filter((row) => row && (row.field ?? '').trim() !== '').map((row) => ({ ...row, field: row.field.trim() }));
  const badField = fields.find((row) => !(webTo ? FORM_NAME : API_NAME).test(row.field));
  if (badField) return { problem: `"${badField.field}" is not a ${webTo ? 'form field' : 'field'} name` };
  const numbers = {
    batchDelayMs: numberIn(props.batchDelay, 100, 0, 60_000, 'the batch delay (ms)'),
    batchSize: numberIn(props.batchSize, MAX_BATCH, 1, MAX_BATCH, 'the batch size'),
    parallel: numberIn(props.parallel, 2, 1, 10, 'the calls in parallel'),
    retries: numberIn(props.retries, 5, 0, 50, 'the retries'),
    retryDelay: numberIn(props.retryDelay, 1, 0.01, 600, 'the first retry delay (s)'),
    timeoutMs: numberIn(props.timeout, 60, 1, 600, 'the timeout (s)'),
  };
  const wrong = Object.values(numbers).find((n) => typeof n === 'string');
  if (wrong) return { problem: wrong as string };
  const n = numbers as Record<keyof typeof numbers, number>;
  // A ready-made Case or Lead carries its alert id: created again (a retry after a lost answer, the
  // alert escalating or clearing) it would clash with itself. It is upserted on it instead.
  const upsertOnAlert = recordFrom === 'alert' && operation === 'create' && externalIdField !== '';
  return {
    operation: upsertOnAlert ? 'upsert' : operation,
    object,
    recordFrom,
    externalIdField: operation === 'upsert' || (recordFrom === 'alert' && externalIdField) ? externalIdField || undefined : undefined,
    fields,
    origin: props.origin ?? 'IoT',
    closeOnClear: props.closeOnClear === true,
    leadSource: props.leadSource ?? 'IoT',
    batchDelayMs: n.batchDelayMs,
    batchSize: Math.floor(n.batchSize),
    parallel: Math.floor(n.parallel),
    retries: Math.floor(n.retries),
    retryDelayMs: n.retryDelay * 1000,
    timeoutMs: n.timeoutMs * 1000,
  };
}
