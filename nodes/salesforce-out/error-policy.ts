/**
 * What to do with each failure, as the table in Salesforce's error guide and shared/salesforce.md
 * says: renew the token once on 401 (jsforce does it, capped by the connection; what reaches us
 * here is a renewal that failed); back off and retry on 503, 500, network errors and row locks;
 * stop calling on REQUEST_LIMIT_EXCEEDED and hold; never retry a record that is wrong.
 */

/** One error of a save result: Salesforce names the code statusCode, jsforce's types errorCode. */
export interface RecordError {
  statusCode?: string;
  errorCode?: string;
  message: string;
  fields?: string[];
}

export type Verdict =
  /** The record is wrong: error output with Salesforce's reason, no retry. */
  | { kind: 'invalid'; errorCode: string; message: string; fields: string[] }
  /**
   * Worth another try after a backoff. `answerLost`: the call may have been carried out and only
   * its answer lost (a dropped connection, a timeout), so a retried create may meet its own record.
   */
  | { kind: 'transient'; errorCode: string; message: string; answerLost?: true }
  /** The org's API allowance is spent: stop calling, hold. */
  | { kind: 'limit'; errorCode: string; message: string }
  /** Login or renewal failed: nothing wrong with the record, but no call can be made now. */
  | { kind: 'auth'; errorCode: string; message: string };

const TRANSIENT_CODES = new Set(['UNABLE_TO_LOCK_ROW', 'SERVER_UNAVAILABLE', 'UNKNOWN_EXCEPTION', 'ALL_OR_NONE_OPERATION_ROLLED_BACK', 'TIMEOUT', 'API_CURRENTLY_DISABLED']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ENOTFOUND', 'ENETDOWN', 'ENETUNREACH', 'EHOSTDOWN', 'EHOSTUNREACH', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET']);
const OAUTH_ERRORS = new Set(['invalid_grant', 'invalid_client', 'invalid_client_id', 'unsupported_grant_type', 'invalid_request', 'inactive_user', 'inactive_org', 'invalid_app_access']);

/** The verdict on one record's error from a save result. */
export function classifyRecordError(error: RecordError): Verdict {
  const errorCode = error.statusCode ?? error.errorCode ?? 'UNKNOWN';
  if (errorCode === 'REQUEST_LIMIT_EXCEEDED') return { kind: 'limit', errorCode, message: error.message };
  if (TRANSIENT_CODES.has(errorCode)) return { kind: 'transient', errorCode, message: error.message };
  return { kind: 'invalid', errorCode, message: error.message, fields: error.fields ?? [] };
}

interface ThrownError {
  name?: string;
  message?: string;
  errorCode?: string;
  code?: string;
  data?: unknown;
  type?: string;
}

/** The verdict on an error thrown by a call (jsforce, the network, the connection). */
export function classifyCallError(thrown: unknown): Verdict {
  const err = (thrown ?? {}) as ThrownError;
  const message = err.message ?? String(thrown);
  const errorCode = err.errorCode ?? '';
  if (errorCode === 'REQUEST_LIMIT_EXCEEDED') return { kind: 'limit', errorCode, message };
  if (err.name === 'LoginError' || errorCode === 'INVALID_SESSION_ID' || /Unable to refresh session/.test(message) || OAUTH_ERRORS.has(err.name ?? '')) {
    // A refused login keeps its own code (invalid_grant, ...); an OAuth error thrown as such is named after it.
    return { kind: 'auth', errorCode: errorCode || (OAUTH_ERRORS.has(err.name ?? '') ? (err.name as string) : 'INVALID_SESSION_ID'), message };
  }
  if (errorCode === 'MULTIPLE_CHOICES') {
    const matches = Array.isArray(err.data) ? ` (${err.data.length} records match: ${err.data.join(', ')})` : '';
    return { kind: 'invalid', errorCode, message: `the external id matches several records${matches}`, fields: [] };
  }
  if (errorCode === 'MULTIPLE_API_ERRORS' && Array.isArray(err.data)) {
    const errors = err.data as RecordError[];
    const first = classifyRecordError(errors[0] ?? { message });
    return first.kind === 'invalid' ? { ...first, message: errors.map((e) => e.message).join('; ') } : first;
  }
  const http = /^ERROR_HTTP_(\d{3})$/.exec(errorCode);
  if (http) {
    const status = Number(http[1]);
    return status >= 500 || status === 429 || status === 408 ? { kind: 'transient', errorCode, message } : { kind: 'invalid', errorCode, message, fields: [] };
  }
  if (errorCode) {
    const fields = (err.data as { fields?: string[] } | undefined)?.fields;
    return classifyRecordError({ errorCode, message, fields });
  }
  if (err.name === 'FetchError' || err.name === 'AbortError' || err.name === 'TimeoutError' || NETWORK_CODES.has(err.code ?? '')) {
    return { kind: 'transient', errorCode: err.code ?? err.name ?? 'NETWORK', message, answerLost: true };
  }
  return { kind: 'transient', errorCode: err.name && err.name !== 'Error' ? err.name : 'UNKNOWN', message, answerLost: true };
}

/**
 * The record a create met when Salesforce refuses it as DUPLICATE_VALUE ("duplicate value found:
 * <field> duplicates value on record with id: <id>"), if the message names it.
 */
export function duplicateOf(verdict: Verdict): string | undefined {
  if (verdict.kind !== 'invalid' || verdict.errorCode !== 'DUPLICATE_VALUE') return undefined;
  return /record with id: ([a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?)\b/.exec(verdict.message)?.[1] ?? '';
}
