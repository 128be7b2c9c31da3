/**
 * The pure parts of iot-salesforce-out: the error policy (the table of shared/salesforce.md),
 * the batcher (T ms, up to 200, order per record, merging, retries), the ready-made Case and
 * Lead mappings from msg.alert and msg.device, the node's settings, and its status line.
 */
import { describe, expect, it } from 'vitest';
import { Batcher, type Batch } from '../../nodes/salesforce-out/batcher';
import { backoffMs } from '../../nodes/shared/backoff';
import { classifyCallError, classifyRecordError, duplicateOf } from '../../nodes/salesforce-out/error-policy';
import { readOutConfig } from '../../nodes/salesforce-out/out-config';
import { apiStatus, webToStatus, type SinkView, type WebToView } from '../../nodes/salesforce-out/status';
import { caseFromAlert, describeAlert, externalIdForPath, externalIdValue, leadFromAlert, readAlert, recordProblem, subjectOf, webToCaseFromAlert, webToLeadFromAlert, type Alert } from '../../nodes/salesforce-out/record-mapping';
import { LoginError } from '../../nodes/shared/salesforce-client';

describe('error policy', () => {
  it.each([
    ['UNABLE_TO_LOCK_ROW', 'transient'],
    ['SERVER_UNAVAILABLE', 'transient'],
    ['UNKNOWN_EXCEPTION', 'transient'],
    ['REQUEST_LIMIT_EXCEEDED', 'limit'],
    ['REQUIRED_FIELD_MISSING', 'invalid'],
    ['INVALID_FIELD', 'invalid'],
    ['FIELD_CUSTOM_VALIDATION_EXCEPTION', 'invalid'],
    ['INVALID_TYPE', 'invalid'],
    ['MALFORMED_ID', 'invalid'],
    ['DUPLICATE_VALUE', 'invalid'],
    ['DUPLICATE_EXTERNAL_ID', 'invalid'],
    ['STRING_TOO_LONG', 'invalid'],
  ])('a record refused with %s is %s', (statusCode, kind) => {
    expect(classifyRecordError({ statusCode, message: 'm', fields: ['F'] }).kind).toBe(kind);
  });

  it('keeps the fields and message of a wrong record, and reads jsforce errorCode too', () => {
    expect(classifyRecordError({ errorCode: 'REQUIRED_FIELD_MISSING', message: 'Required fields are missing: [Company]', fields: ['Company'] })).toEqual({
      kind: 'invalid',
      errorCode: 'REQUIRED_FIELD_MISSING',
      message: 'Required fields are missing: [Company]',
      fields: ['Company'],
    });
  });

  const thrown = (props: Record<string, unknown>, message = 'x') => Object.assign(new Error(message), props);
  it.each([
    ['503 with a JSON body', thrown({ errorCode: 'SERVER_UNAVAILABLE' }), 'transient'],
    ['503 with an HTML body', thrown({ errorCode: 'ERROR_HTTP_503' }), 'transient'],
    ['500', thrown({ errorCode: 'ERROR_HTTP_500' }), 'transient'],
    ['429', thrown({ errorCode: 'ERROR_HTTP_429' }), 'transient'],
    ['404 with an HTML body', thrown({ errorCode: 'ERROR_HTTP_404' }), 'invalid'],
    ['a connection reset', thrown({ name: 'FetchError', code: 'ECONNRESET' }), 'transient'],
    ['a refused connection', thrown({ code: 'ECONNREFUSED' }), 'transient'],
    ['our own timeout', thrown({ name: 'TimeoutError' }), 'transient'],
    ['403 REQUEST_LIMIT_EXCEEDED', thrown({ errorCode: 'REQUEST_LIMIT_EXCEEDED' }), 'limit'],
    ['a refused renewal', thrown({}, 'Unable to refresh session due to: not logging in again before ...'), 'auth'],
    ['a failed login', new LoginError('invalid_grant', 'login failed: invalid_grant: audience is invalid'), 'auth'],
    ['401 after the renewal', thrown({ errorCode: 'INVALID_SESSION_ID' }), 'auth'],
    ['a whole collection refused', thrown({ errorCode: 'INVALID_FIELD', data: { fields: [] } }), 'invalid'],
    ['300 ambiguous external id', thrown({ errorCode: 'MULTIPLE_CHOICES', data: ['/a', '/b'] }), 'invalid'],
    ['something else', new TypeError('boom'), 'transient'],
  ])('a call failing with %s is %s', (_what, err, kind) => {
    expect(classifyCallError(err).kind).toBe(kind);
  });

  it.each([
    ['a refused JWT login', new LoginError('invalid_grant', 'login failed: invalid_grant: audience is invalid'), 'invalid_grant'],
    ['a renewal not allowed yet after a refused login', new LoginError('invalid_client', 'not logging in again before ...: invalid_client: invalid client credentials'), 'invalid_client'],
    ['an OAuth error thrown by jsforce', thrown({ name: 'invalid_grant' }, 'expired authorization code'), 'invalid_grant'],
    ['401 after the renewal', thrown({ errorCode: 'INVALID_SESSION_ID' }), 'INVALID_SESSION_ID'],
  ])('reports %s with its own code', (_what, err, code) => {
    expect(classifyCallError(err)).toMatchObject({ kind: 'auth', errorCode: code });
  });

  it('names the record a DUPLICATE_VALUE met', () => {
    const duplicate = (message: string) => duplicateOf(classifyRecordError({ statusCode: 'DUPLICATE_VALUE', message, fields: [] }));
    expect(duplicate('duplicate value found: IoT_Alert_Id__c duplicates value on record with id: 00Q8d0000000004EAA')).toBe('00Q8d0000000004EAA');
    expect(duplicate('duplicate value found: <unknown> duplicates value on record with id: <unknown>')).toBe('');
    expect(duplicateOf(classifyRecordError({ statusCode: 'REQUIRED_FIELD_MISSING', message: 'x', fields: [] }))).toBeUndefined();
  });

  it('says how many records an ambiguous external id matches, and joins several errors', () => {
    expect(classifyCallError(thrown({ errorCode: 'MULTIPLE_CHOICES', data: ['/services/data/v62.0/sobjects/Case/5001', '/services/data/v62.0/sobjects/Case/5002'] })).message).toBe(
      'the external id matches several records (2 records match: /services/data/v62.0/sobjects/Case/5001, /services/data/v62.0/sobjects/Case/5002)',
    );
    const several = classifyCallError(thrown({ errorCode: 'MULTIPLE_API_ERRORS', data: [{ errorCode: 'STRING_TOO_LONG', message: 'a' }, { errorCode: 'INVALID_EMAIL_ADDRESS', message: 'b' }] }));
    expect(several).toMatchObject({ kind: 'invalid', errorCode: 'STRING_TOO_LONG', message: 'a; b' });
  });

  it('backs off exponentially with jitter between half and all of the ceiling, capped', () => {
    expect([1, 2, 3, 4, 10].map((a) => backoffMs(a, 1000, 8000, () => 0))).toEqual([500, 1000, 2000, 4000, 4000]);
    expect([1, 2, 3, 4, 10].map((a) => backoffMs(a, 1000, 8000, () => 1))).toEqual([1000, 2000, 4000, 8000, 8000]);
  });
});

describe('batcher', () => {
  const options = { maxSize: 3, delayMs: 100, maxInFlight: 2 };
  const keys = (b: Batch<string>) => b.entries.map((e) => e.items.join('+'));

  it('sends what arrived within the delay together, and a full batch at once', () => {
    const batcher = new Batcher<string>(options);
    batcher.add('g', undefined, { n: 1 }, 'a', 0);
    batcher.add('g', undefined, { n: 2 }, 'b', 50);
    expect(batcher.take(99)).toEqual([]);
    expect(batcher.nextWakeAt(0)).toBe(100);
    const [first] = batcher.take(100);
    expect(keys(first)).toEqual(['a', 'b']);
    for (const item of ['c', 'd', 'e', 'f']) batcher.add('g', undefined, {}, item, 200);
    const [full] = batcher.take(200);
    expect(keys(full)).toEqual(['c', 'd', 'e']);
    expect(batcher.calls).toBe(2);
    expect(batcher.take(1000)).toEqual([]);
    batcher.finish(first);
    expect(batcher.take(1000).map(keys)).toEqual([['f']]);
  });

  it('keeps separate calls per group', () => {
    const batcher = new Batcher<string>({ ...options, maxInFlight: 5 });
    batcher.add('upsert Case', 'k1', {}, 'a', 0);
    batcher.add('create Lead', undefined, {}, 'b', 0);
    expect(batcher.take(100).map((b) => [b.group, keys(b)])).toEqual([
      ['upsert Case', ['a']],
      ['create Lead', ['b']],
    ]);
  });

  it('merges waiting records of one external id, later fields winning, and never sends one beside or before an earlier one', () => {
    const batcher = new Batcher<string>(options);
    batcher.add('g', 'alert-1', { Subject: 'raised', Priority: 'Medium' }, 'raise', 0);
    batcher.add('g', 'alert-1', { Priority: 'High' }, 'escalate', 10);
    const [first] = batcher.take(100);
    expect(first.entries).toHaveLength(1);
    expect(first.entries[0].record).toEqual({ Subject: 'raised', Priority: 'High' });
    expect(first.entries[0].items).toEqual(['raise', 'escalate']);
    batcher.add('g', 'alert-1', { Status: 'Closed' }, 'clear', 20);
    batcher.add('g', 'alert-2', {}, 'other', 20);
    // alert-1 is in flight: its clear waits; alert-2 goes.
    expect(batcher.take(200).map(keys)).toEqual([['other']]);
    batcher.finish(first);
    expect(batcher.take(200).map(keys)).toEqual([['clear']]);
  });

  it('puts retried records first, after their backoff, ahead of later records of the same id', () => {
    const batcher = new Batcher<string>(options);
    batcher.add('g', 'k', { v: 1 }, 'first', 0);
    const [batch] = batcher.take(100);
    batcher.add('g', 'k', { v: 2 }, 'second', 150);
    batcher.finish(batch, [{ entry: batch.entries[0], readyAt: 1000 }]);
    expect(batcher.waiting).toBe(2);
    // The retry is not ready, and the later record of the same id may not overtake it.
    expect(batcher.take(500)).toEqual([]);
    expect(batcher.nextWakeAt(500)).toBe(1000);
    const [retry] = batcher.take(1000);
    expect(keys(retry)).toEqual(['first']);
    batcher.finish(retry);
    expect(batcher.take(1000).map(keys)).toEqual([['second']]);
  });

  it('flushes at once on request, and gives up waiting entries a filter refuses', () => {
    const batcher = new Batcher<string>({ maxSize: 200, delayMs: 1000, maxInFlight: 1 });
    for (let i = 0; i < 5; i++) batcher.add('g', undefined, {}, `m${i}`, 0);
    const removed = batcher.remove((e) => !e.items[0].endsWith('1'));
    expect(removed.map((e) => e.items[0])).toEqual(['m1']);
    expect(batcher.take(1, true).map(keys)).toEqual([['m0', 'm2', 'm3', 'm4']]);
  });

  it('never puts more than maxSize records in a call, and handles 10,000 quickly', () => {
    const batcher = new Batcher<number>({ maxSize: 200, delayMs: 10, maxInFlight: 4 });
    const started = Date.now();
    for (let i = 0; i < 10_000; i++) batcher.add('g', `k${i}`, {}, i, 0);
    let sent = 0;
    let calls = 0;
    for (;;) {
      const batches = batcher.take(10);
      if (batches.length === 0) break;
      for (const b of batches) {
        expect(b.entries.length).toBeLessThanOrEqual(200);
        sent += b.entries.length;
        calls++;
        batcher.finish(b);
      }
    }
    expect({ sent, calls }).toEqual({ sent: 10_000, calls: 50 });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('record mapping', () => {
  const alert: Alert = {
    id: '5f0c9a',
    key: 'pump-17',
    reading: 'temperature',
    rule: 'above',
    severity: 'critical',
    previousSeverity: 'warning',
    state: 'raised',
    change: 'escalated',
    value: 93.5,
    threshold: 90,
    since: Date.UTC(2026, 10, 21, 10, 0),
    at: Date.UTC(2026, 10, 21, 10, 1),
    text: 'temperature above 90 on pump-17 (93.5)',
  };
  const device = { id: 'pump-17', method: 'hmac', meta: { assetId: '02i8d0000000001AAA', accountId: '0018d0000000001AAA', company: 'Acme Pumps', contactName: 'Dana Ng', contactEmail: 'dana@acme.example' } };
  const options = { externalIdField: 'IoT_Alert_Id__c', origin: 'IoT', closeOnClear: false, leadSource: 'IoT' };

  it('makes a Case: subject, description with reading, rule and times, priority from severity, links, external id', () => {
    expect(caseFromAlert(alert, device, options)).toEqual({
      Subject: 'temperature above 90 on pump-17',
      Description: [
        'temperature above 90 on pump-17 (93.5)',
        '',
        'Device: pump-17',
        'Reading: temperature = 93.5 (threshold 90, rule: above)',
        'Severity: critical (was warning)',
        'Raised: 2026-11-21T10:00:00.000Z',
        'Escalated: 2026-11-21T10:01:00.000Z',
        'Alert id: 5f0c9a',
      ].join('\n'),
      Priority: 'High',
      Origin: 'IoT',
      AssetId: '02i8d0000000001AAA',
      AccountId: '0018d0000000001AAA',
      IoT_Alert_Id__c: '5f0c9a',
    });
  });

  it.each([
    ['critical', 'High'],
    ['major', 'High'],
    ['minor', 'Medium'],
    ['warning', 'Medium'],
    ['info', 'Low'],
  ])('gives a %s alert priority %s', (severity, priority) => {
    expect(caseFromAlert({ ...alert, severity }, undefined, options).Priority).toBe(priority);
  });

  it('on clear keeps the subject and priority of the raise, and closes only when asked', () => {
    const cleared: Alert = { ...alert, state: 'cleared', change: 'cleared', severity: 'warning', value: 64, threshold: 65, text: 'temperature back below 65 on pump-17 (64)' };
    const record = caseFromAlert(cleared, device, options);
    expect(record.Subject).toBeUndefined();
    expect(record.Priority).toBeUndefined();
    expect(record.Status).toBeUndefined();
    expect(record.Description).toContain('Cleared: 2026-11-21T10:01:00.000Z');
    expect(caseFromAlert(cleared, device, { ...options, closeOnClear: true }).Status).toBe('Closed');
  });

  it('on de-escalation keeps the subject and priority of the raise: a Case says what happened, not that it eased', () => {
    const eased: Alert = { ...alert, severity: 'warning', previousSeverity: 'critical', change: 'deescalated', value: 84, threshold: 85, text: 'temperature back below 85 on pump-17 (84), now warning' };
    const record = caseFromAlert(eased, device, options);
    expect(record.Subject).toBeUndefined();
    expect(record.Priority).toBeUndefined();
    expect(record.Description).toContain('temperature back below 85 on pump-17 (84), now warning');
    expect(record.Description).toContain('Deescalated: 2026-11-21T10:01:00.000Z');
  });

  it('makes subjects from the alert text, or from its fields when there is none', () => {
    expect(subjectOf({ ...alert, text: 'temperature above 90 on pump-17 (93.5), now major' })).toBe('temperature above 90 on pump-17');
    expect(subjectOf({ ...alert, text: 'pump-3 silent for 30 s' })).toBe('pump-3 silent for 30 s');
    expect(subjectOf({ id: 'a', state: 'raised', reading: 'pressure', rule: 'outside', threshold: { low: 2, high: 6 }, key: 'valve-2' })).toBe('pressure outside 2 to 6 on valve-2');
    expect(describeAlert({ id: 'a', state: 'raised' }, undefined)).toBe('reading alert ?\n\nAlert id: a');
  });

  it('makes a Lead from the device metadata', () => {
    expect(leadFromAlert(alert, device, options)).toMatchObject({ LastName: 'Dana Ng', Company: 'Acme Pumps', LeadSource: 'IoT', Email: 'dana@acme.example', IoT_Alert_Id__c: '5f0c9a' });
    expect(leadFromAlert(alert, undefined, options)).toMatchObject({ LastName: 'pump-17', Company: 'pump-17' });
  });

  it('makes Web-to forms with Salesforce form field names', () => {
    expect(webToCaseFromAlert(alert, device)).toMatchObject({ subject: 'temperature above 90 on pump-17', priority: 'High', name: 'Dana Ng', email: 'dana@acme.example', company: 'Acme Pumps' });
    expect(webToLeadFromAlert(alert, device, options)).toMatchObject({ last_name: 'Dana Ng', company: 'Acme Pumps', lead_source: 'IoT', email: 'dana@acme.example' });
  });

  it('reads alerts and external ids strictly, and encodes ids for URL paths', () => {
    expect(readAlert(undefined)).toMatch(/msg.alert is missing/);
    expect(readAlert({ state: 'raised' })).toMatch(/msg.alert.id is missing/);
    expect(readAlert({ id: 'a', state: 'open' })).toMatch(/must be "raised" or "cleared"/);
    expect(readAlert(alert)).toBe(alert);
    expect([externalIdValue('a'), externalIdValue(' '), externalIdValue(7), externalIdValue(NaN), externalIdValue({})]).toEqual(['a', undefined, '7', undefined, undefined]);
    expect(externalIdForPath('pump/17 #1?x=y')).toBe('pump%2F17%20%231%3Fx%3Dy');
  });
});

describe('records that cannot be sent at all', () => {
  const cyclic: Record<string, unknown> = { Subject: 'x' };
  cyclic.Self__c = cyclic;
  let deep: unknown = 'x';
  for (let i = 0; i < 40; i++) deep = { a: deep };
  it.each<[string, Record<string, unknown>, string | undefined]>([
    ['a Case', { Subject: 'pump hot', Priority: 'High', Account: { External_Id__c: 'acme' } }, undefined],
    ['a BigInt', { Subject: 'x', Count__c: 10n }, 'not_serializable'],
    ['a cycle', cyclic, 'not_serializable'],
    ['a value 40 levels deep', { Subject: 'x', Description: deep }, 'too_deep'],
    ['2 MB of text', { Subject: 'x', Description: 'x'.repeat(2_000_000) }, 'too_large'],
  ])('%s: %s', (_what, record, code) => {
    expect(recordProblem(record)?.code).toBe(code);
  });
});

describe('output settings', () => {
  it('reads defaults: upsert Cases from alerts, 100 ms batches of 200, 2 calls at a time, 5 retries from 1 s', () => {
    expect(readOutConfig({ externalIdField: 'IoT_Alert_Id__c', object: 'Case' })).toEqual({
      operation: 'upsert',
      object: 'Case',
      recordFrom: 'alert',
      externalIdField: 'IoT_Alert_Id__c',
      fields: [],
      origin: 'IoT',
      closeOnClear: false,
      leadSource: 'IoT',
      batchDelayMs: 100,
      batchSize: 200,
      parallel: 2,
      retries: 5,
      retryDelayMs: 1000,
      timeoutMs: 60_000,
    });
  });

  it.each([
    ['a ready-made Lead to create', { operation: 'create', object: 'Lead', externalIdField: 'IoT_Alert_Id__c' }, 'upsert'],
    ['a ready-made Case to create', { operation: 'create', object: 'Case', externalIdField: 'IoT_Alert_Id__c' }, 'upsert'],
    ['a ready-made Lead with no alert id field', { operation: 'create', object: 'Lead', externalIdField: '' }, 'create'],
    ['a Lead from msg.payload', { operation: 'create', object: 'Lead', recordFrom: 'payload', externalIdField: 'IoT_Alert_Id__c' }, 'create'],
  ])('upserts %s on its alert id: %s', (_what, props, operation) => {
    expect(readOutConfig(props)).toMatchObject({ operation });
  });

  it('takes Case and Lead for the Web-to operations whatever the object says, and form field names', () => {
    expect(readOutConfig({ operation: 'webToLead', object: '', fields: [{ field: '00N8d00000IoTA2', value: 'x', valueType: 'str' }] })).toMatchObject({ object: 'Lead', fields: [{ field: '00N8d00000IoTA2' }] });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['an unknown operation', { operation: 'delete' }, /unknown operation "delete"/],
    ['an unknown source', { recordFrom: 'xml' }, /unknown record source/],
    ['an object name with spaces', { object: 'My Object', recordFrom: 'payload' }, /not an sObject name/],
    ['an event that is not one', { operation: 'event', object: 'Case', recordFrom: 'payload' }, /not a platform event/],
    ['the alert mapping for an Asset', { object: 'Asset' }, /makes a Case or a Lead, not a Asset/],
    ['an upsert without an external id field', { object: 'Case' }, /needs an external id field/],
    ['a bad field name', { object: 'Case', recordFrom: 'payload', operation: 'create', fields: [{ field: 'Bad Name', value: '', valueType: 'str' }] }, /"Bad Name" is not a field name/],
    ['batches over 200', { object: 'Case', operation: 'create', batchSize: '500' }, /batch size must be a number from 1 to 200/],
    ['a negative delay', { object: 'Case', operation: 'create', batchDelay: '-1' }, /batch delay/],
  ])('refuses %s', (_what, props, problem) => {
    expect((readOutConfig(props) as { problem: string }).problem).toMatch(problem);
  });
});

describe('status line', () => {
  // Keys stand for the words: what matters here is which state gives which colour.
  const t = (key: string, values?: Record<string, string | number>) => (values ? `${key} ${Object.values(values).join(' ')}` : key);
  const at = new Date(2026, 11, 2, 14, 5, 9).getTime();
  const sink = (over: Partial<SinkView> = {}): SinkView => ({ counts: { written: 3, refused: 0, failed: 0, released: 0 }, waiting: 0, trouble: undefined, ...over });

  it.each([
    ['before the first login', { phase: 'idle' as const }, sink(), { fill: 'grey', shape: 'ring', text: 'status.ready' }],
    ['logging in', { phase: 'connecting' as const }, sink(), { fill: 'yellow', shape: 'ring', text: 'status.connecting' }],
    ['writing', { phase: 'connected' as const }, sink(), { fill: 'green', shape: 'dot', text: '3 status.written' }],
    ['retrying a 503', { phase: 'connected' as const }, sink({ waiting: 2, trouble: { kind: 'retrying', errorCode: '503', at } }), { fill: 'yellow', shape: 'ring', text: 'status.retrying 503 14:05:09 · 3 status.written · 2 status.waiting' }],
    ['failing past its retries', { phase: 'connected' as const }, sink({ trouble: { kind: 'failing', errorCode: '503' } }), { fill: 'red', shape: 'ring', text: 'status.failing 503 · 3 status.written' }],
    ['holding at the API limit', { phase: 'connected' as const, hold: { reason: 'exceeded' as const, until: at } }, sink(), { fill: 'yellow', shape: 'ring', text: 'status.hold-exceeded 14:05:09 · 3 status.written' }],
    ['login refused', { phase: 'failed' as const, error: 'INVALID_LOGIN', retryAt: at }, sink(), { fill: 'red', shape: 'ring', text: 'status.login-failed: INVALID_LOGIN · status.next-login 14:05:09' }],
  ])('API: %s', (_when, state, view, expected) => {
    expect(apiStatus(state, view, t)).toEqual(expected);
  });

  const webTo = (over: Partial<WebToView> = {}): WebToView => ({ submitted: 0, capped: false, pending: 0, trouble: undefined, ...over });
  it.each([
    ['nothing posted yet', webTo(), { fill: 'grey', shape: 'ring', text: 'status.submitted 0' }],
    ['posting', webTo({ submitted: 4, pending: 1 }), { fill: 'green', shape: 'dot', text: 'status.submitted 4 · status.sending 1' }],
    ['retrying a post', webTo({ submitted: 4, pending: 1, trouble: { kind: 'retrying', errorCode: '503', at } }), { fill: 'yellow', shape: 'ring', text: 'status.retrying 503 14:05:09 · status.submitted 4 · status.sending 1' }],
    ['failing past its retries', webTo({ submitted: 4, trouble: { kind: 'failing', errorCode: '503' } }), { fill: 'red', shape: 'ring', text: 'status.failing 503 · status.submitted 4' }],
    ['past the daily cap', webTo({ submitted: 5000, capped: true }), { fill: 'yellow', shape: 'ring', text: 'status.web-to-capped 5,000' }],
  ])('Web-to: %s', (_when, view, expected) => {
    expect(webToStatus(view, t)).toEqual(expected);
  });
});
