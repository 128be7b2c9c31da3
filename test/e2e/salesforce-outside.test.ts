/**
 * iot-salesforce-out as an integrator meets it, tested from outside (README, help, Salesforce's
 * documented behaviour; not from the implementation): a whole Node-RED (npm start) whose
 * connection and out nodes carry their editor defaults and only what a user must set, talking
 * to the local Salesforce sandbox through a recording proxy that counts every call as the org's
 * access log would, with real time passing.
 *
 * - after a quiet period longer than the org's session timeout, an alert is written with one new
 *   login (JWT bearer and client credentials; a token used before, a token never used, a burst);
 * - a 200-record burst hit by one 503, or one lost answer, costs one more call, not one per
 *   record, and writes each record once;
 * - a ready-made Lead whose answer was lost is written once and reported written;
 * - REQUEST_LIMIT_EXCEEDED for too many long requests at once holds for seconds, not the daily
 *   hold, and loses nothing;
 * - a refused login shows Salesforce's own error code in red (never INVALID_SESSION_ID), the
 *   alerts waiting without spending their retries, written once logins work again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shown } from '../support/editor-status';
import { alertIdsIn, described, errorIn, once, OutsideSalesforce, type Method } from '../support/outside-salesforce';
import type { ProxiedCall } from '../support/recording-proxy';
import { testAssertion } from '../support/salesforce';
import { alertOf, deploySalesforceTab, outcomesOf, results, salesforceTab, sendAlerts } from '../support/salesforce-flow';
import { eventually, sleep } from '../support/wait';

/** The org's session timeout for these tests (a real org's default is 2 hours). */
const SESSION_TIMEOUT_MS = 2_000;
/** A quiet period: well past the session timeout. */
const QUIET_MS = 2 * SESSION_TIMEOUT_MS + 500;

const org = new OutsideSalesforce();
beforeAll(() => org.start());
afterAll(() => org.dispose());

describe.each<Method>(['jwt', 'clientCredentials'])('after a quiet period longer than the session timeout (%s)', (method) => {
  beforeAll(async () => {
    await org.settings({ sessionTimeoutMs: SESSION_TIMEOUT_MS });
    await org.startNodeRed();
  });
  afterAll(async () => {
    await org.settings({ sessionTimeoutMs: 7_200_000 });
  });

  it('writes the alert with one new login, when the token logged in at deploy was never used before it expired', async () => {
    const from = org.proxy.calls.length;
    const prefix = await org.deployTab(method);
    // A new Node-RED logs in when the flow starts; then the org sees no call for longer than its
    // session timeout, and the token dies unused.
    await eventually('the login at deploy', () => (org.proxy.logins(from).length > 0 ? true : undefined));
    await sleep(QUIET_MS);
    expect(org.proxy.logins(from).map((c) => c.status)).toEqual([200]);
    expect(org.proxy.apiCalls(from)).toEqual([]);
    const afterQuiet = org.proxy.calls.length;
    const id = `${prefix}-never-used`;
    await sendAlerts(org.node, 'cases', [alertOf(id)]);
    const seen = await outcomesOf(org.node, [id]);
    expect(seen.failed.filter((r) => r.alertId === id)).toEqual([]);
    expect(org.proxy.logins(afterQuiet).map((c) => c.status)).toEqual([200]);
    expect(described(org.proxy.apiCalls(afterQuiet))).toEqual(['PATCH 1 records -> 401', 'PATCH 1 records -> 201']);
    expect(await org.copiesPerAlert('Case', [id])).toEqual(once([id]));
  });

  it('writes the alert with one new login, when the token worked before', async () => {
    const prefix = await org.deployTab(method);
    const first = `${prefix}-first`;
    await sendAlerts(org.node, 'cases', [alertOf(first)]);
    await outcomesOf(org.node, [first]);
    await sleep(QUIET_MS);

    const from = org.proxy.calls.length;
    const id = `${prefix}-after-quiet`;
    const sent = Date.now();
    await sendAlerts(org.node, 'cases', [alertOf(id)]);
    const seen = await outcomesOf(org.node, [id]);
    expect(seen.failed.filter((r) => r.alertId === id)).toEqual([]);
    expect(seen.written.find((r) => r.alertId === id)?.at ?? Infinity).toBeLessThan(sent + 5_000);
    expect(org.proxy.logins(from).map((c) => c.status)).toEqual([200]);
    expect(await org.copiesPerAlert('Case', [id])).toEqual(once([id]));
  });

  it('writes a burst of 50 alerts right after the quiet period with one new login and one retried call', async () => {
    const prefix = await org.deployTab(method);
    await sendAlerts(org.node, 'cases', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);
    await sleep(QUIET_MS);

    const from = org.proxy.calls.length;
    const ids = Array.from({ length: 50 }, (_, i) => `${prefix}-burst-${i}`);
    await sendAlerts(org.node, 'cases', ids.map((id) => alertOf(id, `pump-${ids.indexOf(id)}`)));
    const seen = await outcomesOf(org.node, ids);
    expect(seen.failed.filter((r) => ids.includes(r.alertId))).toEqual([]);
    expect(org.proxy.logins(from).map((c) => c.status)).toEqual([200]);
    // One collection refused with 401, the same collection again once renewed.
    expect(described(org.proxy.apiCalls(from))).toEqual(['PATCH 50 records -> 401', 'PATCH 50 records -> 200']);
    expect(await org.copiesPerAlert('Case', ids)).toEqual(once(ids));
  });
});

describe.each<Method>(['jwt', 'clientCredentials'])('a session the org ended before its first call (%s)', (method) => {
  beforeAll(async () => {
    await org.startNodeRed();
  });

  it('is renewed at the first alert: written with one new login, within seconds', async () => {
    const from = org.proxy.calls.length;
    const prefix = await org.deployTab(method);
    await eventually('the login at deploy', () => (org.proxy.logins(from).length > 0 ? true : undefined));
    // The org ends every session (an admin's "expire all", a timeout): this token never made a call.
    await org.expireTokens();
    const before = org.proxy.calls.length;
    const id = `${prefix}-ended-unused`;
    const sent = Date.now();
    await sendAlerts(org.node, 'cases', [alertOf(id)]);
    const seen = await outcomesOf(org.node, [id], 60_000);
    expect(seen.failed.filter((r) => r.alertId === id).map((r) => r.error)).toEqual([]);
    expect(seen.written.find((r) => r.alertId === id)?.at ?? Infinity).toBeLessThan(sent + 5_000);
    expect(org.proxy.logins(before).map((c) => c.status)).toEqual([200]);
    expect(await org.copiesPerAlert('Case', [id])).toEqual(once([id]));
  });
});

/**
 * What the org saw of a burst: every record written by exactly one successful call, the one
 * failed call sent again as one call with the same records, and no more calls than the batch
 * size and the failure call for (one, plus one if a loaded machine split the burst, plus the retry).
 */
function checkBurstCalls(calls: ProxiedCall[], ids: string[], failedAs: number | 'lost'): void {
  const failed = calls.filter((c) => c.status === failedAs);
  const succeeded = calls.filter((c) => c.status === 200 || c.status === 201);
  expect(calls.length - failed.length - succeeded.length, `other answers: ${described(calls).join(', ')}`).toBe(0);
  expect(failed.length, described(calls).join(', ')).toBe(1);
  const retriedAs = [...alertIdsIn(failed[0])].sort();
  const retries = succeeded.filter((c) => c.at > failed[0].at && JSON.stringify([...alertIdsIn(c)].sort()) === JSON.stringify(retriedAs));
  expect(retries.length, `the ${retriedAs.length} records of the failed call sent again as one call: ${described(calls).join(', ')}`).toBe(1);
  const written = succeeded.flatMap(alertIdsIn).sort();
  expect(written).toEqual([...ids].sort());
  expect(calls.length).toBeLessThanOrEqual(3);
}

describe('a 200-record burst hit by one transient failure, at the default retry delay', () => {
  beforeAll(async () => {
    if (!org.node) await org.startNodeRed();
  });

  it.each<[string, Record<string, number>, number | 'lost']>([
    ['one 503', { unavailable: 1 }, 503],
    ['one lost answer', { lostAnswers: 1 }, 'lost'],
  ])('%s: the failed collection goes again as one call, each record written once', async (_what, fault, failedAs) => {
    const prefix = await org.deployTab('clientCredentials');
    await sendAlerts(org.node, 'cases', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);

    await org.faults(fault);
    const from = org.proxy.calls.length;
    const ids = Array.from({ length: 200 }, (_, i) => `${prefix}-burst-${i}`);
    await sendAlerts(org.node, 'cases', ids.map((id, i) => alertOf(id, `pump-${i}`)));
    const seen = await outcomesOf(org.node, ids, 60_000);
    const calls = org.proxy.apiCalls(from);
    console.log(`[burst ${_what}] ${described(calls).join(', ')}; retry ${calls.length > 1 ? calls[1].at - calls[0].at : '-'} ms after the failure`);
    expect(seen.failed.filter((r) => ids.includes(r.alertId))).toEqual([]);
    expect(seen.written.filter((r) => ids.includes(r.alertId)).length).toBe(200);
    checkBurstCalls(calls, ids, failedAs);
    expect(await org.copiesPerAlert('Case', ids)).toEqual(once(ids));
  });
});

describe('a ready-made Lead whose answer was lost', () => {
  beforeAll(async () => {
    if (!org.node) await org.startNodeRed();
  });

  it.each(['upsert', 'create'])('is written once and reported written (operation %s), alone and in a collection', async (operation) => {
    const set = operation === 'upsert' ? { object: 'Lead' } : { object: 'Lead', operation };
    const prefix = await org.deployTab('clientCredentials', [{ name: 'leads', set }]);
    await sendAlerts(org.node, 'leads', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);

    for (const size of [1, 5]) {
      await org.faults({ lostAnswers: 1 });
      const from = org.proxy.calls.length;
      const ids = Array.from({ length: size }, (_, i) => `${prefix}-lead-${size}-${i}`);
      await sendAlerts(org.node, 'leads', ids.map((id, i) => alertOf(id, `pump-${i}`)));
      const seen = await outcomesOf(org.node, ids);
      const calls = org.proxy.apiCalls(from);
      expect(seen.failed.filter((r) => ids.includes(r.alertId)).map((r) => r.error)).toEqual([]);
      expect(seen.written.filter((r) => ids.includes(r.alertId)).map((r) => r.salesforce?.success)).toEqual(ids.map(() => true));
      expect(calls.map((c) => c.status)[0]).toBe('lost');
      expect(await org.copiesPerAlert('Lead', ids)).toEqual(once(ids));
    }
  });
});

describe('REQUEST_LIMIT_EXCEEDED for too many long requests at once', () => {
  beforeAll(async () => {
    if (!org.node) await org.startNodeRed();
  });
  afterAll(async () => {
    await org.settings({ longRequestMs: 20_000, concurrentLongRequests: 25 });
    await org.faults({ latencyMs: 0 });
  });

  it('holds for seconds, not the daily hold, says so in the status, and loses nothing', async () => {
    const prefix = await org.deployTab('clientCredentials');
    const out = `${prefix}.out.cases`;
    await sendAlerts(org.node, 'cases', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);

    // Another integration of the org runs a long request (4 s) while its limit of long requests
    // at once is 1 (25 in a production org; 20 s makes a request long there, 100 ms here).
    await org.settings({ longRequestMs: 100, concurrentLongRequests: 1 });
    const token = (await fetch(`${org.sf.sandbox.url}/services/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(org.sf.sandbox.url) }),
    }).then((r) => r.json())) as { access_token: string };
    await org.faults({ latencyMs: 4_000 });
    const otherStarted = Date.now();
    let otherEnded = 0;
    const other = fetch(`${org.sf.sandbox.url}/services/data/v62.0/sobjects/Case`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token.access_token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ Subject: 'a long report of another integration' }),
    }).then((r) => {
      otherEnded = Date.now();
      return r.status;
    });
    await sleep(300);
    await org.faults({ latencyMs: 0 });

    const from = org.proxy.calls.length;
    const ids = Array.from({ length: 10 }, (_, i) => `${prefix}-long-${i}`);
    await sendAlerts(org.node, 'cases', ids.map((id, i) => alertOf(id, `pump-${i}`)));
    const seen = await outcomesOf(org.node, ids, 60_000);
    expect(await other).toBe(201);
    const calls = org.proxy.apiCalls(from);
    const refusals = calls.filter((c) => c.status === 403);
    console.log(`[long requests] ${described(calls).join(', ')}; the other request ran ${otherEnded - otherStarted} ms`);
    expect(seen.failed.filter((r) => ids.includes(r.alertId))).toEqual([]);
    expect(await org.copiesPerAlert('Case', ids)).toEqual(once(ids));
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals.map(errorIn)).toEqual(
      refusals.map(() => ({ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'ConcurrentPerOrgLongTxn Limit exceeded.' })),
    );
    // The hold ends with the first answer after the other request is over: 1 s doubling, so
    // within a few seconds of it, never the 5-minute daily hold.
    const written = Math.max(...seen.written.filter((r) => ids.includes(r.alertId)).map((r) => r.at));
    expect(written - otherEnded).toBeLessThan(5_000);
    expect(refusals.length).toBeLessThanOrEqual(4);
    // Yellow while it held, saying why; green once written.
    const during = org.statuses.history(out).filter((s) => s.at >= refusals[0].at && s.at <= written);
    // The README's status names this hold "API limit reached: holding until …"; the help says
    // the status says which of the two holds it is: either wording, with the time it ends.
    expect(during.filter((s) => s.fill === 'yellow' && /(API limit reached|long requests).*: holding until \d\d:\d\d:\d\d/.test(s.text ?? '')).map(shown), org.statuses.history(out).map(shown).join(' | ')).not.toEqual([]);
    expect(during.filter((s) => s.fill === 'red').map(shown)).toEqual([]);
    await org.statuses.until(out, 'green once written', (s) => s.fill === 'green');
  });
});

describe('a refused login', () => {
  beforeAll(async () => {
    // A new process: no session from the tests before.
    await org.startNodeRed();
  });
  afterAll(() => {
    org.proxy.refuseLogins = undefined;
  });

  const otherKey = () =>
    import('node:crypto').then((c) => c.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());

  it('shows Salesforce\'s own code in red, with the next try, and holds the alerts without spending their retries', async () => {
    const refusals: Array<[string, Record<string, unknown>, string]> = [
      ['badkey', { ...org.connection('jwt'), credentials: { privateKey: await otherKey() } }, 'invalid_grant'],
      ['badsecret', { ...org.connection('clientCredentials'), credentials: { clientSecret: 'not-the-secret' } }, 'invalid_client'],
      ['badapp', { ...org.connection('clientCredentials'), consumerKey: '3MVG9NoSuchConsumerKey' }, 'invalid_client_id'],
    ];
    // One deploy, three tabs: each its own connection refused for its own reason.
    const from = org.proxy.calls.length;
    const prefix = org.nextPrefix();
    const flows = refusals.flatMap(([name, conn]) => salesforceTab(`${prefix}${name}`, conn, [{ name }]).filter((n) => !(n.type === 'http in' && n.url === '/results' && name !== 'badkey')));
    await deploySalesforceTab(org.node, flows);
    for (const [name] of refusals) await sendAlerts(org.node, name, [alertOf(`${prefix}-${name}`)]);
    const ids = refusals.map(([name]) => `${prefix}-${name}`);
    // The README: red `login failed: …` with the time of the next try, the code Salesforce's own.
    for (const [name, , errorCode] of refusals) {
      const status = await org.statuses.until(`${prefix}${name}.out.${name}`, `red login failed: ${errorCode}`, (s) => s.fill === 'red' && /^login failed: /.test(s.text ?? ''));
      expect(status.text).toContain(errorCode);
      expect(status.text).not.toContain('INVALID_SESSION_ID');
      expect(status.text, 'the time of the next try').toMatch(/\d\d:\d\d(:\d\d)?/);
    }
    // Past the records' retries (5 tries at 1 s doubling: about 31 s): "while no login is allowed,
    // records wait for the next one rather than spend their retries": none has failed as
    // unavailable or INVALID_SESSION_ID, and none was written.
    await sleep(35_000);
    const now = await results(org.node);
    const outcomes = [...now.written, ...now.failed].filter((r) => ids.includes(r.alertId));
    expect(outcomes.filter((r) => r.error?.code !== 'login_failed')).toEqual([]);
    expect(outcomes.map((r) => r.error?.errorCode)).toEqual(outcomes.map((r) => refusals.find(([name]) => r.alertId === `${prefix}-${name}`)?.[2]));
    // Refused logins in those ~40 s: a backoff (30 s doubling), not a loop: at most three per connection.
    expect(org.proxy.logins(from).filter((c) => c.status !== 200).length).toBeLessThanOrEqual(3 * refusals.length);
  });

  it('a renewal refused after the session ended shows the renewal\'s code, not INVALID_SESSION_ID; the alert waits and is written once logins work again', async () => {
    const prefix = await org.deployTab('jwt');
    await sendAlerts(org.node, 'cases', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);
    // The admin revokes the app's approval, and the org ends the session.
    org.proxy.refuseLogins = { error: 'invalid_grant', error_description: "user hasn't approved this consumer" };
    await org.expireTokens();
    const from = org.proxy.calls.length;
    const id = `${prefix}-renewal-refused`;
    await sendAlerts(org.node, 'cases', [alertOf(id)]);
    const status = await org.statuses.until(`${prefix}.out.cases`, 'red login failed', (s) => s.fill === 'red', 60_000);
    expect(status.text).toMatch(/^login failed: invalid_grant/);
    const failedMeanwhile = (await results(org.node)).failed.filter((r) => r.alertId === id);
    expect(failedMeanwhile.filter((r) => r.error?.errorCode !== 'invalid_grant').map((r) => r.error)).toEqual([]);
    // The admin approves the app again: the next try (30 s backoff) logs in and writes the alert.
    org.proxy.refuseLogins = undefined;
    const renewed = Date.now();
    if (failedMeanwhile.length === 0) {
      const seen = await outcomesOf(org.node, [id], 120_000);
      expect(seen.failed.filter((r) => r.alertId === id).map((r) => r.error)).toEqual([]);
      console.log(`[renewal refused] written ${(seen.written.find((r) => r.alertId === id)?.at ?? 0) - renewed} ms after logins worked again; logins: ${org.proxy.logins(from).map((c) => `${new Date(c.at).toISOString().slice(11, 19)} ${c.status}`).join(', ')}`);
      expect(await org.copiesPerAlert('Case', [id])).toEqual(once([id]));
      await org.statuses.until(`${prefix}.out.cases`, 'green once written', (s) => s.fill === 'green');
    }
    // Logins while refused: a backoff, not a loop (30 s doubling, at most 60 an hour).
    expect(org.proxy.logins(from).filter((c) => c.status !== 200).length).toBeLessThanOrEqual(4);
  });
});
