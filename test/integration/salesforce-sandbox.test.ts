/**
 * The local Salesforce sandbox, driven the way the pack drives Salesforce: through jsforce over
 * HTTP, and by plain form posts for Web-to-Case and Web-to-Lead. Each test checks a wire fact
 * from shared/salesforce.md: status codes, result and error shapes, limits, tokens, faults.
 */
import { Connection } from 'jsforce';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSalesforceSandbox } from '../../sandbox/salesforce/server';
import { CONSUMER_KEY, CONSUMER_SECRET, OTHER_PASSWORD, OTHER_USER, startTestSandbox, testAssertion, testKeys, USERNAME, type TestSandbox } from '../support/salesforce';
import { eventually, sleep } from '../support/wait';

const JWT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
let sf: TestSandbox;
let conn: Connection;

beforeAll(async () => {
  sf = await startTestSandbox({ validationRules: [{ object: 'Case', field: 'Subject', pattern: '^TEST REJECT', message: 'Subjects starting with TEST REJECT are refused' }] });
});
afterAll(async () => {
  await sf.close();
});
beforeEach(async () => {
  sf.sandbox.reset();
  conn = new Connection({ loginUrl: sf.sandbox.url, version: '62.0' });
  await conn.authorize({ grant_type: JWT, assertion: await testAssertion(sf.sandbox.url) });
});

async function tokenRequestTo(url: string, params: Record<string, string>): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${url}/services/oauth2/token`, { method: 'POST', body: new URLSearchParams(params) });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

const tokenRequest = (params: Record<string, string>) => tokenRequestTo(sf.sandbox.url, params);

/** A save result as it is on the wire (jsforce's types name the error code errorCode). */
interface WireResult {
  id?: string;
  success: boolean;
  created?: boolean;
  errors: Array<{ statusCode: string; message: string; fields: string[] }>;
}
const wire = (results: unknown): WireResult[] => (Array.isArray(results) ? results : [results]) as WireResult[];
const outcomes = (results: unknown): string[] => wire(results).map((r) => (r.success ? 'ok' : r.errors[0].statusCode));

function errorOf(promise: PromiseLike<unknown>): Promise<{ errorCode?: string; name?: string; message: string; data?: unknown }> {
  return Promise.resolve(promise).then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: { errorCode?: string; message: string; data?: unknown }) => err,
  );
}

describe('OAuth token endpoint', () => {
  it('answers the JWT bearer flow with a Salesforce-shaped token response', async () => {
    const { status, body } = await tokenRequest({ grant_type: JWT, assertion: await testAssertion('https://login.salesforce.com') });
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['access_token', 'id', 'instance_url', 'issued_at', 'scope', 'signature', 'token_type']);
    expect(body.token_type).toBe('Bearer');
    expect(body.instance_url).toBe(sf.sandbox.url);
    expect(body.id).toMatch(new RegExp(`/id/${sf.sandbox.orgId}/005\\w{15}$`));
    expect(body.access_token.startsWith(sf.sandbox.orgId.slice(0, 15) + '!')).toBe(true);
    expect(body.refresh_token).toBeUndefined();
  });

  it('checks the JWT signature against the certificate, and iss, sub, aud and exp', async () => {
    const other = await import('node:crypto').then((c) => c.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const cases: Array<[string, Promise<string>, string, string]> = [
      ['another key', testAssertion(sf.sandbox.url, { key: other }), 'invalid_grant', 'invalid assertion'],
      ['unknown consumer key', testAssertion(sf.sandbox.url, { iss: 'nope' }), 'invalid_client_id', 'client identifier invalid'],
      ['unknown user', testAssertion(sf.sandbox.url, { sub: 'nobody@example.com' }), 'invalid_grant', 'invalid assertion'],
      ['wrong audience', testAssertion('https://example.com'), 'invalid_grant', 'audience is invalid'],
      ['expired', testAssertion(sf.sandbox.url, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), 'invalid_grant', 'expired authorization code'],
    ];
    for (const [what, assertion, error, description] of cases) {
      const { status, body } = await tokenRequest({ grant_type: JWT, assertion: await assertion });
      expect({ what, status, body }).toEqual({ what, status: 400, body: { error, error_description: description } });
    }
  });

  it('accepts a public key instead of a certificate, and refuses users not pre-authorised', async () => {
    const sandbox = await startSalesforceSandbox({ apps: [{ consumerKey: 'k', certificate: testKeys().publicKey, preAuthorised: [USERNAME] }], users: [{ username: USERNAME }, { username: OTHER_USER }] });
    try {
      expect((await tokenRequestTo(sandbox.url, { grant_type: JWT, assertion: await testAssertion(sandbox.url, { iss: 'k' }) })).status).toBe(200);
      const refused = await tokenRequestTo(sandbox.url, { grant_type: JWT, assertion: await testAssertion(sandbox.url, { iss: 'k', sub: OTHER_USER }) });
      expect(refused.body).toEqual({ error: 'invalid_grant', error_description: "user hasn't approved this consumer" });
    } finally {
      await sandbox.close();
    }
  });

  it('runs the client credentials flow as the integration user, and checks the secret', async () => {
    const ok = await tokenRequest({ grant_type: 'client_credentials', client_id: CONSUMER_KEY, client_secret: CONSUMER_SECRET });
    expect(ok.status).toBe(200);
    const cc = new Connection({ loginUrl: sf.sandbox.url, version: '62.0', oauth2: { clientId: CONSUMER_KEY, clientSecret: CONSUMER_SECRET, loginUrl: sf.sandbox.url } });
    const user = await cc.authorize({ grant_type: 'client_credentials' });
    expect(user.organizationId).toBe(sf.sandbox.orgId);
    const bad = await tokenRequest({ grant_type: 'client_credentials', client_id: CONSUMER_KEY, client_secret: 'wrong' });
    expect(bad).toEqual({ status: 400, body: { error: 'invalid_client', error_description: 'invalid client credentials' } });
  });

  it('renews with a refresh token, and refuses an unknown one', async () => {
    const refreshToken = sf.sandbox.issueRefreshToken(USERNAME, CONSUMER_KEY);
    const rc = new Connection({ loginUrl: sf.sandbox.url, version: '62.0', oauth2: { clientId: CONSUMER_KEY, clientSecret: CONSUMER_SECRET, loginUrl: sf.sandbox.url }, refreshToken, instanceUrl: sf.sandbox.url });
    // No access token yet: the first call answers 401 and jsforce renews with the refresh token.
    expect((await rc.sobject('Case').create({ Subject: 'via refresh token' })).success).toBe(true);
    const bad = await tokenRequest({ grant_type: 'refresh_token', client_id: CONSUMER_KEY, refresh_token: 'nope' });
    expect(bad.body).toEqual({ error: 'invalid_grant', error_description: 'expired access/refresh token' });
  });

  it('offers the username-password flow unless the org blocks it', async () => {
    const ok = await tokenRequest({ grant_type: 'password', client_id: CONSUMER_KEY, client_secret: CONSUMER_SECRET, username: OTHER_USER, password: OTHER_PASSWORD });
    expect(ok.status).toBe(200);
    const wrong = await tokenRequest({ grant_type: 'password', client_id: CONSUMER_KEY, client_secret: CONSUMER_SECRET, username: OTHER_USER, password: 'x' });
    expect(wrong.body).toEqual({ error: 'invalid_grant', error_description: 'authentication failure' });
    const blocked = await startSalesforceSandbox({ passwordFlow: false, apps: [{ consumerKey: 'k', consumerSecret: 's' }], users: [{ username: 'u', password: 'p' }] });
    try {
      const refused = await tokenRequestTo(blocked.url, { grant_type: 'password', client_id: 'k', client_secret: 's', username: 'u', password: 'p' });
      expect(refused.body.error).toBe('unsupported_grant_type');
    } finally {
      await blocked.close();
    }
  });

  it('ends sessions by inactivity, answering 401 INVALID_SESSION_ID, and jsforce renews through a refreshFn', async () => {
    const sandbox = await startSalesforceSandbox({ sessionTimeoutMs: 400, apps: [{ consumerKey: CONSUMER_KEY, certificate: testKeys().certificate }], users: [{ username: USERNAME }] });
    try {
      let renewals = 0;
      const short = new Connection({
        loginUrl: sandbox.url,
        version: '62.0',
        refreshFn: (c, callback) => {
          renewals++;
          testAssertion(sandbox.url)
            .then((assertion) => c.authorize({ grant_type: JWT, assertion }))
            .then(() => callback(null, c.accessToken as string), (err: Error) => callback(err));
        },
      });
      await short.authorize({ grant_type: JWT, assertion: await testAssertion(sandbox.url) });
      const limits = (token: string | null | undefined) => fetch(`${sandbox.url}/services/data/v62.0/limits`, { headers: { Authorization: `Bearer ${token}` } });
      // A session in use lives on: a call every 250 ms for 1.5 s, nearly four timeouts.
      const token = short.accessToken;
      for (let i = 0; i < 6; i++) {
        await sleep(250);
        expect((await limits(token)).status).toBe(200);
      }
      // Idle for longer than the timeout: gone, as Salesforce ends idle sessions.
      await sleep(450);
      const raw = await limits(token);
      expect(raw.status).toBe(401);
      expect(await raw.json()).toEqual([{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
      expect((await short.sobject('Case').create({ Subject: 'after expiry' })).success).toBe(true);
      expect(renewals).toBe(1);
      expect(sandbox.stats().logins).toBe(2);
    } finally {
      await sandbox.close();
    }
  });

  it('extends a session only once half of the timeout has passed since its activity was last recorded', async () => {
    const sandbox = await startSalesforceSandbox({ sessionTimeoutMs: 1000, apps: [{ consumerKey: CONSUMER_KEY, certificate: testKeys().certificate }], users: [{ username: USERNAME }] });
    try {
      const session = new Connection({ loginUrl: sandbox.url, version: '62.0' });
      await session.authorize({ grant_type: JWT, assertion: await testAssertion(sandbox.url) });
      const status = async () => (await fetch(`${sandbox.url}/services/data/v62.0/limits`, { headers: { Authorization: `Bearer ${session.accessToken}` } })).status;
      // Used at 300 ms (before half the timeout: not recorded), then idle: it ends 1 s after the login.
      await sleep(300);
      expect(await status()).toBe(200);
      await sleep(800);
      expect(await status()).toBe(401);
    } finally {
      await sandbox.close();
    }
  });

  it('takes its session timeout over HTTP: 2 hours unless set', async () => {
    const configure = async (body: Record<string, unknown>) => {
      const response = await fetch(`${sf.sandbox.url}/_sandbox/settings`, { method: 'POST', body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as unknown };
    };
    expect(await configure({})).toEqual({
      status: 200,
      body: { sessionTimeoutMs: 7_200_000, longRequestMs: 20_000, concurrentLongRequests: 25, eventRetentionMs: 72 * 3_600_000, streamingHoldMs: 110_000, streamingClientTimeoutMs: 40_000 },
    });
    expect((await configure({ sessionTimeoutMs: 300 })).body).toMatchObject({ sessionTimeoutMs: 300 });
    expect((await configure({ sessionTimeoutMs: 'soon' })).status).toBe(400);
    await sleep(350);
    expect((await errorOf(conn.sobject('Case').create({ Subject: 'idle too long' }))).errorCode).toBe('INVALID_SESSION_ID');
    sf.sandbox.reset();
    expect(sf.sandbox.configure({}).sessionTimeoutMs).toBe(7_200_000);
  });
});

describe('REST API through jsforce', () => {
  it('creates, gets, updates and queries a record', async () => {
    const created = await conn.sobject('Case').create({ Subject: 'pump-17 too hot', Priority: 'High' });
    expect(created).toEqual({ id: expect.stringMatching(/^500\w{15}$/), success: true, errors: [] });
    const fetched = (await conn.sobject('Case').retrieve(created.id as string)) as Record<string, unknown>;
    expect(fetched).toMatchObject({ attributes: { type: 'Case' }, Id: created.id, Subject: 'pump-17 too hot', Priority: 'High', Status: 'New', CaseNumber: '00001001', IsClosed: false });
    expect(await conn.sobject('Case').update({ Id: created.id as string, Status: 'Closed' })).toEqual({ id: created.id, success: true, errors: [] });
    const closed = await conn.query<{ Id: string; IsClosed: boolean }>(`SELECT Id, IsClosed FROM Case WHERE Status = 'closed'`);
    expect(closed.records).toEqual([{ attributes: expect.any(Object), Id: created.id, IsClosed: true }]);
    expect((await conn.query('SELECT COUNT() FROM Case')).totalSize).toBe(1);
    // The 15-character form of an id works too.
    expect(((await conn.sobject('Case').retrieve((created.id as string).slice(0, 15))) as { Id: string }).Id).toBe(created.id);
  });

  it('upserts on an external id: 201 created, then 200 updated, 204 before API 46, 300 when ambiguous', async () => {
    const id = encodeURIComponent('alert/17 #1?');
    const first = await conn.sobject('Case').upsert({ IoT_Alert_Id__c: id, Subject: 'raised' } as never, 'IoT_Alert_Id__c');
    expect(first).toEqual({ id: expect.any(String), success: true, errors: [], created: true });
    const second = await conn.sobject('Case').upsert({ IoT_Alert_Id__c: id, Subject: 'escalated' } as never, 'IoT_Alert_Id__c');
    expect(second).toEqual({ id: wire(first)[0].id, success: true, errors: [], created: false });
    const cases = sf.sandbox.records('Case');
    expect(cases.map((c) => [c.IoT_Alert_Id__c, c.Subject])).toEqual([['alert/17 #1?', 'escalated']]);
    const byExternal = (await conn.request(`/sobjects/Case/IoT_Alert_Id__c/${id}`)) as Record<string, unknown>;
    expect(byExternal.Id).toBe(wire(first)[0].id);

    const old = new Connection({ instanceUrl: conn.instanceUrl, accessToken: conn.accessToken as string, version: '45.0' });
    expect(await old.sobject('Case').upsert({ IoT_Alert_Id__c: id, Subject: 'v45' } as never, 'IoT_Alert_Id__c')).toEqual({ success: true, errors: [] });

    await conn.sobject('Case').create([{ IoT_Device_Id__c: 'pump-9', Subject: 'a' }, { IoT_Device_Id__c: 'PUMP-9', Subject: 'b' }]);
    const ambiguous = await errorOf(conn.sobject('Case').upsert({ IoT_Device_Id__c: 'pump-9', Subject: 'c' } as never, 'IoT_Device_Id__c'));
    expect(ambiguous.errorCode).toBe('MULTIPLE_CHOICES');
    expect(ambiguous.data).toEqual([expect.stringMatching(/^\/services\/data\/v62\.0\/sobjects\/Case\/500/), expect.stringMatching(/^\/services\/data\/v62\.0\/sobjects\/Case\/500/)]);
  });

  it('answers collections with a result per record, and rolls back with allOrNone', async () => {
    const results = await conn.create('Case', [{ Subject: 'ok' }, { Subject: 'x'.repeat(256) }, { Subject: 'TEST REJECT me' }, { Priority: 'Urgent' }]);
    expect(outcomes(results)).toEqual(['ok', 'STRING_TOO_LONG', 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST']);
    expect(results[1]).toEqual({ success: false, errors: [{ statusCode: 'STRING_TOO_LONG', message: expect.stringContaining('Subject: data value too large'), fields: ['Subject'] }] });

    const rolledBack = await conn.create('Lead', [{ LastName: 'Ng', Company: 'Acme' }, { LastName: 'Ok' }], { allOrNone: true });
    expect(wire(rolledBack).map((r) => r.errors[0].statusCode)).toEqual(['ALL_OR_NONE_OPERATION_ROLLED_BACK', 'REQUIRED_FIELD_MISSING']);
    expect(rolledBack[1].errors[0]).toEqual({ statusCode: 'REQUIRED_FIELD_MISSING', message: 'Required fields are missing: [Company]', fields: ['Company'] });
    expect(sf.sandbox.records('Lead')).toEqual([]);

    const upserted = await conn.upsert('Case', [{ IoT_Alert_Id__c: 'a1', Subject: 'one' }, { IoT_Alert_Id__c: 'a2', Subject: 'two' }, { IoT_Alert_Id__c: 'a2', Subject: 'dup' }] as never, 'IoT_Alert_Id__c');
    expect(wire(upserted).map((r) => (r.success ? `created ${r.created}` : r.errors[0].statusCode))).toEqual(['created true', 'DUPLICATE_EXTERNAL_ID', 'DUPLICATE_EXTERNAL_ID']);
    const again = await conn.upsert('Case', [{ IoT_Alert_Id__c: 'A1', Subject: 'one again' }] as never, 'IoT_Alert_Id__c');
    expect(wire(again)[0].created).toBe(false);

    const ids = sf.sandbox.records('Case').map((c) => c.Id);
    const updated = await conn.update('Case', [{ Id: ids[0], Status: 'Working' }, { Id: '500000000000000AAA', Status: 'Working' }, { Id: 'bad', Status: 'Working' }]);
    expect(outcomes(updated)).toEqual(['ok', 'INVALID_CROSS_REFERENCE_KEY', 'MALFORMED_ID']);
  });

  it('fails a whole collection on an unknown field, and one of more than 200 records', async () => {
    const unknown = await errorOf(conn.create('Case', [{ Subject: 'a' }, { Nope__c: 1 }]));
    expect(unknown).toMatchObject({ errorCode: 'INVALID_FIELD', message: "No such column 'Nope__c' on sobject of type Case" });
    const tooMany = await errorOf(conn.create('Case', Array.from({ length: 201 }, (_, i) => ({ Subject: `s${i}` }))));
    expect(tooMany.errorCode).toBe('EXCEEDED_ID_LIMIT');
    expect(sf.sandbox.records('Case')).toEqual([]);
  });

  it('checks references, required fields, e-mail addresses, read-only fields and unique values', async () => {
    const account = await conn.sobject('Account').create({ Name: 'Acme Pumps' });
    const asset = await conn.sobject('Asset').create({ Name: 'pump-17', AccountId: account.id as string, IoT_Device_Id__c: 'pump-17' });
    expect(asset.success).toBe(true);
    const linked = await conn.sobject('Case').create({ Subject: 's', AssetId: asset.id as string, AccountId: account.id as string });
    expect(linked.success).toBe(true);
    const failures: Array<[string, Promise<unknown>]> = [
      ['MALFORMED_ID', conn.sobject('Case').create({ AssetId: account.id as string })],
      ['INVALID_CROSS_REFERENCE_KEY', conn.sobject('Case').create({ AssetId: '02i8d0000000zzzAAA' })],
      ['REQUIRED_FIELD_MISSING', conn.sobject('Lead').create({ LastName: 'x' })],
      ['INVALID_EMAIL_ADDRESS', conn.sobject('Lead').create({ LastName: 'x', Company: 'y', Email: 'not-an-address' })],
      ['INVALID_FIELD_FOR_INSERT_UPDATE', conn.sobject('Case').create({ CaseNumber: '1' })],
      ['FIELD_INTEGRITY_EXCEPTION', conn.sobject('Asset').create({ Name: 'orphan' })],
      ['DUPLICATE_VALUE', conn.sobject('Asset').create({ Name: 'again', AccountId: account.id as string, IoT_Device_Id__c: 'PUMP-17' })],
      ['INVALID_FIELD', conn.sobject('Case').create({ Bogus: 1 })],
      ['NOT_FOUND', conn.sobject('Nope__c').create({ Name: 'x' })],
    ];
    for (const [code, call] of failures) expect((await errorOf(call)).errorCode, code).toBe(code);
  });

  it('publishes platform events, singly and in a collection, with OPERATION_ENQUEUED', async () => {
    const one = await conn.sobject('IoT_Alert__e').create({ Alert_Id__c: 'a1', Device_Id__c: 'pump-17', Value__c: 93.5 });
    expect(one).toEqual({ id: expect.stringMatching(/^e00/), success: true, errors: [{ statusCode: 'OPERATION_ENQUEUED', message: expect.stringMatching(/^[0-9a-f-]{36}$/), fields: [] }] });
    const many = await conn.create('IoT_Alert__e', [{ Alert_Id__c: 'a2' }, { Alert_Id__c: 'a3' }]);
    expect(wire(many).every((r) => r.success && r.errors[0].statusCode === 'OPERATION_ENQUEUED')).toBe(true);
    expect(sf.sandbox.events('IoT_Alert__e').map((e) => e.Alert_Id__c)).toEqual(['a1', 'a2', 'a3']);
    // Replay ids grow with gaps, as Salesforce's do: a client must keep them, never compute them.
    const ids = sf.sandbox.events().map((e) => Number(e.ReplayId));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(3);
    expect(ids[2] - ids[0]).toBeGreaterThan(2);
  });

  it('reports API use on every answer and refuses calls past the daily allowance', async () => {
    await conn.sobject('Case').create({ Subject: 'a' });
    expect(conn.limitInfo.apiUsage).toEqual({ used: 1, limit: 15_000 });
    const raw = await fetch(`${sf.sandbox.url}/services/data/v62.0/limits`, { headers: { Authorization: `Bearer ${conn.accessToken}` } });
    expect(raw.headers.get('sforce-limit-info')).toBe('api-usage=2/15000');
    expect(await raw.json()).toEqual({ DailyApiRequests: { Max: 15_000, Remaining: 14_998 } });
    sf.sandbox.setApiUsage(15_000);
    const refused = await errorOf(conn.sobject('Case').create({ Subject: 'b' }));
    expect(refused).toMatchObject({ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' });
    expect(conn.limitInfo.apiUsage).toEqual({ used: 15_000, limit: 15_000 });
    expect(sf.sandbox.records('Case')).toHaveLength(1);
  });

  it('refuses a call with REQUEST_LIMIT_EXCEEDED while the org runs its limit of long requests, however low the daily use', async () => {
    sf.sandbox.configure({ longRequestMs: 100, concurrentLongRequests: 1 });
    sf.sandbox.faults.inject({ latencyMs: 600 });
    const other = new Connection({ loginUrl: sf.sandbox.url, version: '62.0' });
    await other.authorize({ grant_type: JWT, assertion: await testAssertion(sf.sandbox.url) });
    // Another integration's request, running long.
    const long = other.sobject('Case').create({ Subject: 'a long report' });
    await sleep(200);
    const used = sf.sandbox.stats().apiUsed;
    const refused = await errorOf(conn.sobject('Case').create({ Subject: 'b' }));
    expect(refused).toMatchObject({ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'ConcurrentPerOrgLongTxn Limit exceeded.' });
    expect(conn.limitInfo.apiUsage).toEqual({ used, limit: 15_000 });
    expect(sf.sandbox.stats()).toMatchObject({ rejectedForConcurrency: 1, rejectedForLimit: 0, apiUsed: used });
    expect((await long).success).toBe(true);
    sf.sandbox.faults.inject({ latencyMs: 0 });
    expect((await conn.sobject('Case').create({ Subject: 'b' })).success).toBe(true);
  });

  it('answers a small query language and refuses what it cannot parse', async () => {
    await conn.create('Case', [
      { Subject: 'a', Priority: 'High', IoT_Alert_Id__c: 'x1' },
      { Subject: 'b', Priority: 'Low', IoT_Alert_Id__c: 'x2' },
      { Subject: 'c', Priority: 'High', IoT_Alert_Id__c: 'x3' },
    ]);
    const high = await conn.query<{ Subject: string }>("SELECT Subject FROM Case WHERE Priority = 'High' ORDER BY Subject DESC LIMIT 5");
    expect(high.records.map((r) => r.Subject)).toEqual(['c', 'a']);
    const inList = await conn.query<{ Subject: string }>("SELECT Subject FROM Case WHERE IoT_Alert_Id__c IN ('x1', 'x2') AND Subject LIKE 'b%'");
    expect(inList.records.map((r) => r.Subject)).toEqual(['b']);
    expect((await errorOf(conn.query('SELECT FROM Case'))).errorCode).toBe('MALFORMED_QUERY');
    expect((await errorOf(conn.query('SELECT Nope FROM Case'))).errorCode).toBe('INVALID_FIELD');
  });
});

describe('faults', () => {
  it('answers 503 in bursts, then works', async () => {
    sf.sandbox.faults.inject({ unavailable: 2 });
    for (let i = 0; i < 2; i++) expect((await errorOf(conn.sobject('Case').create({ Subject: 'x' }))).errorCode).toBe('SERVER_UNAVAILABLE');
    expect((await conn.sobject('Case').create({ Subject: 'x' })).success).toBe(true);
    expect(sf.sandbox.stats().faults.unavailable).toBe(2);
  });

  it('is unavailable for a given time (an outage), then works', async () => {
    await fetch(`${sf.sandbox.url}/_sandbox/faults`, { method: 'POST', body: JSON.stringify({ unavailableForMs: 1_500 }) });
    const started = Date.now();
    let refused = 0;
    while (Date.now() - started < 500) {
      expect((await errorOf(conn.sobject('Case').create({ Subject: 'x' }))).errorCode).toBe('SERVER_UNAVAILABLE');
      refused++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1_500 - (Date.now() - started)));
    expect((await conn.sobject('Case').create({ Subject: 'after the outage' })).success).toBe(true);
    expect(refused).toBeGreaterThan(0);
  });

  it('fails record writes with UNABLE_TO_LOCK_ROW: per record in a collection', async () => {
    sf.sandbox.faults.inject({ rowLocks: 1 });
    const results = await conn.create('Case', [{ Subject: 'a' }, { Subject: 'b' }]);
    expect(outcomes(results)).toEqual(['UNABLE_TO_LOCK_ROW', 'ok']);
  });

  it('loses the answer after making the record', async () => {
    sf.sandbox.faults.inject({ lostAnswers: 1 });
    const lost = await errorOf(conn.sobject('Case').upsert({ IoT_Alert_Id__c: 'lost-1', Subject: 'a' } as never, 'IoT_Alert_Id__c'));
    expect(lost.message).toMatch(/socket hang up|ECONNRESET/);
    expect(sf.sandbox.records('Case').map((c) => c.IoT_Alert_Id__c)).toEqual(['lost-1']);
    const retried = await conn.sobject('Case').upsert({ IoT_Alert_Id__c: 'lost-1', Subject: 'a' } as never, 'IoT_Alert_Id__c');
    expect(wire(retried)[0].created).toBe(false);
    expect(sf.sandbox.records('Case')).toHaveLength(1);
  });

  it('adds latency, expires tokens on demand, and takes faults over HTTP too', async () => {
    await fetch(`${sf.sandbox.url}/_sandbox/faults`, { method: 'POST', body: JSON.stringify({ latencyMs: 150 }) });
    const started = Date.now();
    await conn.sobject('Case').create({ Subject: 'slow' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await fetch(`${sf.sandbox.url}/_sandbox/expire-tokens`, { method: 'POST' });
    expect((await errorOf(conn.sobject('Case').create({ Subject: 'x' }))).errorCode).toBe('INVALID_SESSION_ID');
  });
});

describe('Web-to-Case and Web-to-Lead', () => {
  const post = (servlet: 'WebToCase' | 'WebToLead', form: Record<string, string>) =>
    fetch(`${sf.sandbox.url}/servlet/servlet.${servlet}?encoding=UTF-8`, { method: 'POST', body: new URLSearchParams(form) });
  const org15 = () => sf.sandbox.orgId.slice(0, 15);

  it('answers 200 at once and makes the record a little later, custom fields by their id', async () => {
    const response = await post('WebToCase', { orgid: org15(), subject: 'Easy button pressed', description: 'room 4', email: 'a@example.com', '00N8d00000IoTD1': 'button-4', unknown_field: 'x' });
    expect(response.status).toBe(200);
    expect(sf.sandbox.records('Case')).toEqual([]);
    const cases = await eventually('the Web-to-Case record', () => {
      const c = sf.sandbox.records('Case');
      return c.length > 0 ? c : undefined;
    });
    expect(cases[0]).toMatchObject({ Subject: 'Easy button pressed', Description: 'room 4', SuppliedEmail: 'a@example.com', Origin: 'Web', IoT_Device_Id__c: 'button-4' });
  });

  it('drops, silently, posts for another org and leads without last name or company', async () => {
    expect((await post('WebToCase', { orgid: '00D000000000001', subject: 'x' })).status).toBe(200);
    expect((await post('WebToLead', { oid: org15(), last_name: 'Ng' })).status).toBe(200);
    expect((await post('WebToLead', { oid: org15(), last_name: 'Ng', company: 'Acme', lead_source: 'IoT' })).status).toBe(200);
    await eventually('the good lead', () => (sf.sandbox.records('Lead').length === 1 ? true : undefined));
    await sleep(50);
    expect(sf.sandbox.records('Case')).toEqual([]);
    expect(sf.sandbox.droppedWebTo().map((d) => d.reason)).toEqual([expect.stringContaining('no org 00D000000000001'), 'REQUIRED_FIELD_MISSING: Required fields are missing: [Company]']);
  });

  it('queues posts past the daily cap, refuses them past the queue, and refuses all without reCAPTCHA when required', async () => {
    const capped = await startSalesforceSandbox({ webTo: { leadCap: 2, pendingCap: 1, delayMs: 5 }, dayMs: 60_000 });
    try {
      const lead = (n: number) => fetch(`${capped.url}/servlet/servlet.WebToLead`, { method: 'POST', body: new URLSearchParams({ oid: capped.orgId.slice(0, 15), last_name: `L${n}`, company: 'Acme' }) });
      for (let n = 0; n < 4; n++) expect((await lead(n)).status).toBe(200);
      await eventually('two leads and one refusal', () => (capped.records('Lead').length === 2 && capped.droppedWebTo().length === 1 ? true : undefined));
      expect(capped.droppedWebTo()[0].reason).toBe('daily limit reached and the pending queue is full');
    } finally {
      await capped.close();
    }
    const captcha = await startSalesforceSandbox({ webTo: { requireCaptcha: true, delayMs: 5 } });
    try {
      await fetch(`${captcha.url}/servlet/servlet.WebToCase`, { method: 'POST', body: new URLSearchParams({ orgid: captcha.orgId.slice(0, 15), subject: 'x' }) });
      await eventually('the refusal', () => (captcha.droppedWebTo().length === 1 ? true : undefined));
      expect(captcha.records('Case')).toEqual([]);
    } finally {
      await captcha.close();
    }
  });
});

describe('records file and CRM page', () => {
  it('keeps records across a restart and lists them on the page', async () => {
    const dataFile = `${sf.dataDir}/restart.jsonl`;
    const first = await startSalesforceSandbox({ dataFile, apps: [{ consumerKey: CONSUMER_KEY, certificate: testKeys().certificate }], users: [{ username: USERNAME }] });
    const c1 = new Connection({ loginUrl: first.url, version: '62.0' });
    await c1.authorize({ grant_type: JWT, assertion: await testAssertion(first.url) });
    const made = await c1.sobject('Case').create({ Subject: 'survives', IoT_Alert_Id__c: 'keep-1' });
    await c1.sobject('Case').update({ Id: made.id as string, Priority: 'High' });
    await c1.sobject('IoT_Alert__e').create({ Alert_Id__c: 'keep-1' });
    await first.close();

    const second = await startSalesforceSandbox({ dataFile });
    try {
      expect(second.records('Case')).toEqual([expect.objectContaining({ Id: made.id, Subject: 'survives', Priority: 'High', CaseNumber: '00001001' })]);
      expect(second.events()).toHaveLength(1);
      const page = await fetch(`${second.url}/`).then((r) => r.text());
      expect(page).toContain('<title>Salesforce sandbox');
      const view = (await fetch(`${second.url}/_sandbox/view`).then((r) => r.json())) as { cases: { total: number; rows: Array<{ Subject: string }> } };
      expect(view.cases.total).toBe(1);
      expect(view.cases.rows[0].Subject).toBe('survives');
    } finally {
      await second.close();
    }
  });
});
