/**
 * The REST API under `/services/data/vNN.N/`: sObject create, get, update and upsert by external
 * id (201, 200 or 204, 300), sObject Collections (`composite/sobjects`: create, update, upsert;
 * at most 200 records; per-record results; allOrNone), platform event publish, `query` and
 * `limits`. Answers, status codes and error shapes follow the REST API developer guide.
 */
import { randomUUID } from 'node:crypto';
import type { Faults } from './faults';
import { normaliseId, type IdFactory } from './ids';
import { canonicalFields, validate, type ApiError, type ObjectSpec, type SaveContext, type SaveError, type Schema } from './schema';
import { matches, parseSoql, SoqlError, sortRecords } from './soql';
import type { Fields, RecordStore, StoredRecord } from './store';

export interface SaveResult {
  id?: string;
  success: boolean;
  errors: SaveError[];
  created?: boolean;
}

export interface RestAnswer {
  status: number;
  body?: unknown;
}

export interface RestRequest {
  method: string;
  /** The path after `/services/data/vNN.N`, split at `/` and decoded. */
  segments: string[];
  version: number;
  query: URLSearchParams;
  body: unknown;
  userId: string;
}

const MAX_COLLECTION = 200;
const NOT_FOUND: RestAnswer = { status: 404, body: [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }] };
const ROLLED_BACK: SaveError = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};

const fail = (status: number, errorCode: string, message: string, fields?: string[]): RestAnswer => ({
  status,
  body: [fields ? { message, errorCode, fields } : { message, errorCode }],
});

/** Salesforce's date-time format: 2026-11-21T10:15:00.000+0000. */
export const salesforceTime = (ms: number): string => new Date(ms).toISOString().replace('Z', '+0000');

export interface RestOptions {
  schema: Schema;
  store: RecordStore;
  ids: IdFactory;
  faults: Faults;
  now: () => number;
  /** The daily allowance, for the `limits` resource. */
  allowance: () => { used: number; max: number };
  /** The replay id of the next event on the org's event bus. */
  nextReplayId: () => number;
}

export class RestApi {
  private caseNumber = 1000;

  constructor(private readonly options: RestOptions) {
    for (const c of options.store.all('Case')) this.caseNumber = Math.max(this.caseNumber, Number(c.fields.CaseNumber) || 0);
  }

  /** Numbering starts again (the records are gone). */
  reset(): void {
    this.caseNumber = 1000;
  }

  private get schema(): Schema {
    return this.options.schema;
  }

  private get store(): RecordStore {
    return this.options.store;
  }

  handle(request: RestRequest): RestAnswer {
    const { method, segments } = request;
    const [resource, ...rest] = segments;
    if (resource === undefined || resource === '') {
      if (method !== 'GET') return NOT_FOUND;
      const base = `/services/data/v${request.version.toFixed(1)}`;
      return { status: 200, body: { sobjects: `${base}/sobjects`, query: `${base}/query`, limits: `${base}/limits`, composite: `${base}/composite` } };
    }
    if (resource === 'limits' && rest.length === 0 && method === 'GET') {
      const { used, max } = this.options.allowance();
      return { status: 200, body: { DailyApiRequests: { Max: max, Remaining: Math.max(0, max - used) } } };
    }
    if (resource === 'query' && rest.length === 0 && method === 'GET') return this.query(request);
    if (resource === 'sobjects' && rest.length >= 1) return this.sobject(request, rest);
    if (resource === 'composite' && rest[0] === 'sobjects') {
      if (request.version < 42 || (rest.length > 1 && request.version < 46)) return NOT_FOUND;
      return this.collection(request, rest.slice(1));
    }
    return NOT_FOUND;
  }

  /** Creates a record as the Web-to-Case and Web-to-Lead servlets do, with the same checks. */
  insertFromForm(spec: ObjectSpec, fields: Fields, userId: string): SaveResult {
    return this.insert(spec, fields, userId);
  }

  // --- single records ------------------------------------------------------------------------

  private sobject(request: RestRequest, path: string[]): RestAnswer {
    const spec = this.schema.object(path[0]);
    if (!spec) return NOT_FOUND;
    const { method } = request;
    if (path.length === 1) {
      if (method !== 'POST') return { status: 405, body: [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed. Allowed are GET,HEAD,POST` }] };
      const body = this.recordBody(spec, request.body);
      if ('error' in body) return { status: 400, body: [body.error] };
      if ('Id' in body.fields) return fail(400, 'INVALID_FIELD_FOR_INSERT_UPDATE', 'Record ID: cannot specify Id in an insert call', ['Id']);
      return this.saved(this.insert(spec, body.fields, request.userId), 201);
    }
    if (spec.kind === 'event') return NOT_FOUND;
    if (path.length === 2) {
      const id = normaliseId(path[1]);
      const existing = id ? this.store.get(id) : undefined;
      if (method === 'GET') return existing && existing.type === spec.name ? { status: 200, body: this.view(spec, existing, request) } : NOT_FOUND;
      if (method !== 'PATCH') return NOT_FOUND;
      if (!existing || existing.type !== spec.name) return NOT_FOUND;
      const body = this.recordBody(spec, request.body);
      if ('error' in body) return { status: 400, body: [body.error] };
      const result = this.update(spec, existing, body.fields, request.userId);
      return result.success ? { status: 204 } : this.saved(result, 204);
    }
    if (path.length === 3) {
      const field = this.schema.field(spec, path[1]);
      if (!field) return fail(404, 'NOT_FOUND', `Provided external ID field does not exist or is not accessible: ${path[1]}`);
      if (!spec.fields[field].externalId) {
        return fail(400, 'INVALID_FIELD', `Field name provided, ${field} is not an External ID or indexed field for ${spec.name}`);
      }
      const matching = this.matching(spec, field, path[2]);
      if (method === 'GET') {
        if (matching.length === 0) return NOT_FOUND;
        if (matching.length > 1) return { status: 300, body: matching.map((r) => this.url(spec, r, request)) };
        return { status: 200, body: this.view(spec, matching[0], request) };
      }
      if (method !== 'PATCH') return NOT_FOUND;
      const body = this.recordBody(spec, request.body);
      if ('error' in body) return { status: 400, body: [body.error] };
      if (matching.length > 1) return { status: 300, body: matching.map((r) => this.url(spec, r, request)) };
      const fields = { ...body.fields };
      delete fields[field];
      if (matching.length === 0) {
        const result = this.insert(spec, { ...fields, [field]: path[2] }, request.userId);
        return result.success ? { status: 201, body: { id: result.id, success: true, errors: [], created: true } } : this.saved(result, 201);
      }
      const result = this.update(spec, matching[0], fields, request.userId);
      if (!result.success) return this.saved(result, 200);
      // Before API 46.0 an upsert that updates answers 204 with no body.
      return request.version >= 46 ? { status: 200, body: { id: result.id, success: true, errors: [], created: false } } : { status: 204 };
    }
    return NOT_FOUND;
  }

  /** A single-record save result as the REST API answers it: the result, or 400 with its errors. */
  private saved(result: SaveResult, status: number): RestAnswer {
    if (result.success) return { status, body: { id: result.id, success: true, errors: result.errors } };
    return { status: 400, body: result.errors.map((e) => ({ message: e.message, errorCode: e.statusCode, fields: e.fields })) };
  }

  // --- collections ---------------------------------------------------------------------------

  private collection(request: RestRequest, path: string[]): RestAnswer {
    const body = request.body as { allOrNone?: unknown; records?: unknown } | null;
    if (body === null || typeof body !== 'object' || !Array.isArray(body.records)) {
      return fail(400, 'JSON_PARSER_ERROR', 'Cannot deserialize the request body: expected {"allOrNone": ..., "records": [...]}');
    }
    const records = body.records as unknown[];
    if (records.length > MAX_COLLECTION) {
      return fail(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_COLLECTION} records into this call`);
    }
    const allOrNone = body.allOrNone === true;
    // The whole body is read first: a record of an unknown type or with an unknown field fails the call.
    const parsed: Array<{ spec: ObjectSpec; fields: Fields }> = [];
    let upsertField: string | undefined;
    let upsertSpec: ObjectSpec | undefined;
    if (path.length > 0) {
      if (request.method !== 'PATCH' || path.length !== 2) return NOT_FOUND;
      upsertSpec = this.schema.object(path[0]);
      if (!upsertSpec) return fail(400, 'INVALID_TYPE', `sObject type '${path[0]}' is not supported.`);
      upsertField = this.schema.field(upsertSpec, path[1]);
      if (!upsertField || !upsertSpec.fields[upsertField].externalId) {
        return fail(400, 'INVALID_FIELD', `Field name provided, ${path[1]} is not an External ID or indexed field for ${upsertSpec.name}`);
      }
    } else if (request.method !== 'POST' && request.method !== 'PATCH') {
      return NOT_FOUND;
    }
    for (const raw of records) {
      const record = (raw ?? {}) as Fields & { attributes?: { type?: string } };
      const typeName = record.attributes?.type;
      if (!typeName) return fail(400, 'INVALID_TYPE', 'Must specify a type in attributes field');
      const spec = this.schema.object(typeName);
      if (!spec || (upsertSpec && spec !== upsertSpec)) return fail(400, 'INVALID_TYPE', `sObject type '${typeName}' is not supported.`);
      const fields = canonicalFields(this.schema, spec, record);
      if ('error' in fields) return { status: 400, body: [fields.error] };
      parsed.push({ spec, fields: fields.fields });
    }
    const run = (): SaveResult[] => {
      if (upsertSpec && upsertField) return this.upsertMany(upsertSpec, upsertField, parsed, request.userId);
      return parsed.map(({ spec, fields }) => (request.method === 'POST' ? this.createOne(spec, fields, request.userId) : this.updateOne(spec, fields, request.userId)));
    };
    const results = allOrNone
      ? this.store.atomically(() => {
          const all = run();
          const keep = all.every((r) => r.success);
          return { keep, result: keep ? all : all.map((r) => ({ success: false, errors: r.success ? [ROLLED_BACK] : r.errors, ...(r.created !== undefined ? { created: false } : {}) })) };
        })
      : run();
    return { status: 200, body: results };
  }

  private createOne(spec: ObjectSpec, fields: Fields, userId: string): SaveResult {
    if ('Id' in fields) return { success: false, errors: [{ statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE', message: 'Record ID: cannot specify Id in an insert call', fields: ['Id'] }] };
    return this.insert(spec, fields, userId);
  }

  private updateOne(spec: ObjectSpec, fields: Fields, userId: string): SaveResult {
    const { Id: rawId, ...rest } = fields;
    const id = typeof rawId === 'string' ? normaliseId(rawId) : undefined;
    if (!id) return { success: false, errors: [{ statusCode: 'MALFORMED_ID', message: `Record ID: id value of incorrect type: ${String(rawId)}`, fields: ['Id'] }] };
    const existing = this.store.get(id);
    if (!existing || existing.type !== spec.name) return { id, success: false, errors: [{ statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] }] };
    return this.update(spec, existing, rest, userId);
  }

  private upsertMany(spec: ObjectSpec, field: string, records: Array<{ fields: Fields }>, userId: string): SaveResult[] {
    const counts = new Map<string, number>();
    for (const { fields } of records) {
      const value = fields[field];
      if (value !== undefined && value !== null) counts.set(String(value).toLowerCase(), (counts.get(String(value).toLowerCase()) ?? 0) + 1);
    }
    return records.map(({ fields }) => {
      const value = fields[field];
      if (value === undefined || value === null || value === '') {
        return { success: false, errors: [{ statusCode: 'MISSING_ARGUMENT', message: `${field} not specified`, fields: [field] }], created: false };
      }
      if ((counts.get(String(value).toLowerCase()) ?? 0) > 1) {
        return { success: false, errors: [{ statusCode: 'DUPLICATE_EXTERNAL_ID', message: `Duplicate external id specified: ${String(value)}`, fields: [field] }], created: false };
      }
      const matching = this.matching(spec, field, String(value));
      if (matching.length > 1) {
        const ids = matching.map((r) => r.fields.Id).join(', ');
        return { success: false, errors: [{ statusCode: 'DUPLICATE_EXTERNAL_ID', message: `${field}: more than one record found for external id field: [${ids}]`, fields: [field] }], created: false };
      }
      if (matching.length === 0) {
        const inserted = this.insert(spec, fields, userId);
        return { ...inserted, created: inserted.success };
      }
      return { ...this.update(spec, matching[0], withoutField(fields, field), userId), created: false };
    });
  }

  // --- writes --------------------------------------------------------------------------------

  private insert(spec: ObjectSpec, fields: Fields, userId: string): SaveResult {
    const now = salesforceTime(this.options.now());
    if (spec.kind === 'event') return this.publish(spec, fields, now, userId);
    if (this.options.faults.take('rowLocks')) return rowLock('record');
    const record: Fields = {};
    for (const [name, f] of Object.entries(spec.fields)) if (f.defaultValue !== undefined) record[name] = f.defaultValue;
    Object.assign(record, fields);
    const errors = validate(this.schema, spec, fields, record, this.context(spec, true));
    if (errors.length > 0) return { success: false, errors };
    const id = this.options.ids.create(spec.prefix);
    Object.assign(record, { Id: id, CreatedDate: now, LastModifiedDate: now, SystemModstamp: now, CreatedById: userId, LastModifiedById: userId, IsDeleted: false });
    if (spec.name === 'Case') record.CaseNumber = String(++this.caseNumber).padStart(8, '0');
    this.derive(spec, record, now);
    this.store.save({ type: spec.name, fields: record as Fields & { Id: string } });
    return { id, success: true, errors: [] };
  }

  private update(spec: ObjectSpec, existing: StoredRecord, fields: Fields, userId?: string): SaveResult {
    const id = existing.fields.Id;
    if (this.options.faults.take('rowLocks')) return rowLock(id);
    const record: Fields = { ...existing.fields, ...fields };
    const errors = validate(this.schema, spec, fields, record, this.context(spec, false));
    if (errors.length > 0) return { id, success: false, errors };
    const now = salesforceTime(this.options.now());
    Object.assign(record, { LastModifiedDate: now, SystemModstamp: now }, userId ? { LastModifiedById: userId } : {});
    this.derive(spec, record, now);
    this.store.save({ type: spec.name, fields: record as Fields & { Id: string } });
    return { id, success: true, errors: [] };
  }

  /** Fields Salesforce computes: a Case is closed when its status is Closed. */
  private derive(spec: ObjectSpec, record: Fields, now: string): void {
    if (spec.name !== 'Case') return;
    const closed = record.Status === 'Closed';
    if (closed && !record.IsClosed) record.ClosedDate = now;
    if (!closed) record.ClosedDate = null;
    record.IsClosed = closed;
  }

  /** High-volume platform events are queued: success, with OPERATION_ENQUEUED in the errors. */
  private publish(spec: ObjectSpec, fields: Fields, now: string, userId: string): SaveResult {
    const errors = validate(this.schema, spec, fields, fields, this.context(spec, true));
    if (errors.length > 0) return { success: false, errors };
    const id = this.options.ids.create(spec.prefix);
    const uuid = randomUUID();
    this.store.publish({ type: spec.name, fields: { ...fields, CreatedDate: now, CreatedById: userId, ReplayId: String(this.options.nextReplayId()), EventUuid: uuid } });
    return { id, success: true, errors: [{ statusCode: 'OPERATION_ENQUEUED', message: uuid, fields: [] }] };
  }

  private context(spec: ObjectSpec, insert: boolean): SaveContext {
    return {
      insert,
      exists: (id) => this.store.get(id) !== undefined,
      holderOf: (field, value) => this.store.find(spec.name, field, value)[0],
    };
  }

  private matching(spec: ObjectSpec, field: string, value: string): StoredRecord[] {
    return this.store.find(spec.name, field, value).map((id) => this.store.get(id) as StoredRecord);
  }

  private recordBody(spec: ObjectSpec, body: unknown): { fields: Fields } | { error: ApiError } {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return { error: { errorCode: 'JSON_PARSER_ERROR', message: `Cannot deserialize instance of ${spec.name} from the request body` } };
    }
    return canonicalFields(this.schema, spec, body as Fields);
  }

  // --- reading -------------------------------------------------------------------------------

  private url(spec: ObjectSpec, record: StoredRecord, request: RestRequest): string {
    return `/services/data/v${request.version.toFixed(1)}/sobjects/${spec.name}/${record.fields.Id}`;
  }

  private view(spec: ObjectSpec, record: StoredRecord, request: RestRequest, only?: string[]): Fields {
    const requested = only ?? request.query.get('fields')?.split(',').map((f) => f.trim()).filter(Boolean);
    const names = requested ? requested.map((f) => this.schema.field(spec, f) ?? f) : Object.keys(spec.fields);
    const view: Fields = { attributes: { type: spec.name, url: this.url(spec, record, request) } };
    for (const name of names) view[name] = record.fields[name] ?? null;
    return view;
  }

  private query(request: RestRequest): RestAnswer {
    const soql = request.query.get('q') ?? '';
    let parsed;
    try {
      parsed = parseSoql(soql);
    } catch (err) {
      return fail(400, 'MALFORMED_QUERY', (err as SoqlError).message);
    }
    const spec = this.schema.object(parsed.object);
    if (!spec || spec.kind !== 'record') return fail(400, 'INVALID_TYPE', `sObject type '${parsed.object}' is not supported.`);
    const resolve = (name: string): string | undefined => this.schema.field(spec, name);
    const unknown = [...parsed.fields, ...parsed.where.map((c) => c.field), ...(parsed.orderBy ? [parsed.orderBy.field] : [])].find((f) => !resolve(f));
    if (unknown) return fail(400, 'INVALID_FIELD', `No such column '${unknown}' on entity '${spec.name}'.`);
    const where = parsed.where.map((c) => ({ ...c, field: resolve(c.field) as string }));
    const found = this.store
      .all(spec.name)
      .map((r) => r.fields)
      .filter((fields) => where.every((c) => matches(fields, c)));
    if (parsed.count) return { status: 200, body: { totalSize: found.length, done: true, records: [] } };
    sortRecords(found, parsed.orderBy ? { ...parsed.orderBy, field: resolve(parsed.orderBy.field) as string } : undefined);
    const limited = parsed.limit !== undefined ? found.slice(0, parsed.limit) : found;
    const fields = parsed.fields.map((f) => resolve(f) as string);
    const records = limited.map((f) => this.view(spec, { type: spec.name, fields: f as StoredRecord['fields'] }, request, fields));
    return { status: 200, body: { totalSize: records.length, done: true, records } };
  }
}

function withoutField(fields: Fields, field: string): Fields {
  const copy = { ...fields };
  delete copy[field];
  return copy;
}

function rowLock(id: string): SaveResult {
  return { success: false, errors: [{ statusCode: 'UNABLE_TO_LOCK_ROW', message: `unable to obtain exclusive access to this record or 1 records: ${id}`, fields: [] }] };
}
