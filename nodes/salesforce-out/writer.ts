/**
 * One call to Salesforce for a batch of records, through jsforce, and the outcome of each record.
 * One record goes to its own resource (`sobjects/{Type}`, `sobjects/{Type}/{ExtField}/{value}`
 * with the value URL-encoded, `sobjects/{Type}/{Id}`); several go in one sObject Collections
 * call (`composite/sobjects`, allOrNone false), whose answer has a result per record.
 *
 * A call that fails as a whole throws; a record Salesforce refuses comes back as its outcome.
 */
import type { Connection } from 'jsforce';
import { classifyCallError, classifyRecordError, type RecordError, type Verdict } from './error-policy';
import { externalIdForPath } from './record-mapping';

export type Operation = 'create' | 'upsert' | 'update' | 'event';

export interface CallSpec {
  operation: Operation;
  object: string;
  externalIdField?: string;
}

export type Outcome =
  | {
      ok: true;
      id?: string;
      created: boolean;
      /** A high-volume platform event was queued: its event UUID. */
      enqueued?: string;
    }
  | { ok: false; verdict: Verdict };

/** A save result as Salesforce answers it (jsforce's types differ on the error's code name). */
interface WireResult {
  id?: string;
  success: boolean;
  created?: boolean;
  errors?: RecordError[];
}

type Fields = Record<string, unknown>;

export class CallTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

export async function writeRecords(conn: Connection, spec: CallSpec, records: Fields[], timeoutMs: number): Promise<Outcome[]> {
  const call = records.length === 1 ? writeOne(conn, spec, records[0]) : writeMany(conn, spec, records);
  return within(call, timeoutMs);
}

async function writeOne(conn: Connection, spec: CallSpec, record: Fields): Promise<Outcome[]> {
  let result: unknown;
  try {
    switch (spec.operation) {
      case 'upsert': {
        const field = spec.externalIdField as string;
        result = await conn.upsert(spec.object, { ...record, [field]: externalIdForPath(record[field]) }, field);
        break;
      }
      case 'update':
        result = await conn.update(spec.object, record as Fields & { Id: string });
        break;
      default:
        result = await conn.create(spec.object, record);
    }
  } catch (err) {
    const verdict = classifyCallError(err);
    // One record alone: a refusal of the call is a refusal of the record.
    if (verdict.kind === 'invalid') return [{ ok: false, verdict }];
    throw err;
  }
  return [outcomeOf(spec, result as WireResult)];
}

async function writeMany(conn: Connection, spec: CallSpec, records: Fields[]): Promise<Outcome[]> {
  const options = { allOrNone: false };
  let results: unknown;
  switch (spec.operation) {
    case 'upsert':
      results = await conn.upsert(spec.object, records, spec.externalIdField as string, options);
      break;
    case 'update':
      results = await conn.update(spec.object, records as Array<Fields & { Id: string }>, options);
      break;
    default:
      results = await conn.create(spec.object, records, options);
  }
  if (!Array.isArray(results) || results.length !== records.length) {
    throw new Error(`Salesforce answered ${Array.isArray(results) ? results.length : 'no'} results for ${records.length} records`);
  }
  return (results as WireResult[]).map((r) => outcomeOf(spec, r));
}

function outcomeOf(spec: CallSpec, result: WireResult): Outcome {
  const errors = result.errors ?? [];
  if (result.success) {
    const created = spec.operation === 'update' ? false : spec.operation === 'upsert' ? result.created === true : true;
    const queued = errors.find((e) => (e.statusCode ?? e.errorCode) === 'OPERATION_ENQUEUED');
    return { ok: true, id: result.id, created, ...(queued ? { enqueued: queued.message } : {}) };
  }
  if (errors.length === 0) return { ok: false, verdict: { kind: 'invalid', errorCode: 'UNKNOWN', message: 'Salesforce refused the record and gave no reason', fields: [] } };
  const verdict = classifyRecordError(errors[0]);
  if (verdict.kind !== 'invalid' || errors.length === 1) return { ok: false, verdict };
  // Several reasons for one record: all of them, with every field they name.
  const fields = [...new Set(errors.flatMap((e) => e.fields ?? []))];
  return { ok: false, verdict: { ...verdict, message: errors.map((e) => e.message).join('; '), fields } };
}

function within<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  if (!(timeoutMs > 0)) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CallTimeoutError(`no answer from Salesforce within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
