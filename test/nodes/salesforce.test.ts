/**
 * iot-salesforce-connection and iot-salesforce-out in a Node-RED runtime
 * (node-red-node-test-helper) against the local Salesforce sandbox over HTTP: every operation,
 * the ready-made Case, batching with per-record results, each fault of the error policy, token
 * expiry and the renewal cap, the API limit hold with a buffer upstream (a stand-in implementing
 * settleDelivery), Web-to forms, and no secret in logs or messages.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import connectionNode from '../../nodes/salesforce-connection/salesforce-connection';
import outNode from '../../nodes/salesforce-out/salesforce-out';
import type { DeliverySource, Outcome } from '../../nodes/shared/delivery';
import type { SalesforceConnection } from '../../nodes/shared/salesforce-client';
import { helper } from '../support/node-red';
import { CONSUMER_KEY, CONSUMER_SECRET, startTestSandbox, USERNAME, type TestSandbox } from '../support/salesforce';
import { nested, watchProcessFailures } from '../support/process-failures';
import { eventually, sleep } from '../support/wait';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Result = { success: boolean; id?: string | null; created?: boolean; submitted?: boolean; eventUuid?: string };

let sf: TestSandbox;
const settled: Array<[string, Outcome]> = [];
const announced: Array<[string, number]> = [];

/** A stand-in for iot-buffer: it only records settlements and announced capacities. */
function testBuffer(RED: NodeAPI): void {
  RED.nodes.registerType('test-buffer', function (this: Node & DeliverySource, config: object) {
    RED.nodes.createNode(this, config as never);
    this.settleDelivery = (id, outcome) => settled.push([id, outcome]);
    this.announceCapacity = (sink, messages) => announced.push([sink, messages]);
  });
}

beforeAll(async () => {
  sf = await startTestSandbox({ apiAllowance: 15_000 });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  await sf.close();
});
beforeEach(() => {
  sf.sandbox.reset();
  settled.length = 0;
  announced.length = 0;
});
afterEach(async () => {
  await helper.unload();
});

/** Connection, output node and helpers for its two outputs; a stand-in buffer. */
function flow(out: Record<string, unknown> = {}, connection: Record<string, unknown> = {}): Flow {
  return [
    { id: 'conn', type: 'iot-salesforce-connection', loginUrl: sf.sandbox.url, authMethod: 'jwt', consumerKey: CONSUMER_KEY, username: USERNAME, ...connection },
    { id: 'out', type: 'iot-salesforce-out', connection: 'conn', operation: 'upsert', object: 'Case', recordFrom: 'alert', externalIdField: 'IoT_Alert_Id__c', batchDelay: '20', retryDelay: '0.05', wires: [['ok'], ['failed']], ...out },
    { id: 'ok', type: 'helper' },
    { id: 'failed', type: 'helper' },
    { id: 'buffer', type: 'test-buffer' },
  ];
}

const jwtCredentials = () => ({ conn: { privateKey: sf.keys.privateKey } });

async function load(f: Flow, credentials: Record<string, Record<string, string>> = jwtCredentials()): Promise<{ ok: NodeMessage[]; failed: NodeMessage[] }> {
  await helper.load([connectionNode, outNode, testBuffer], f, credentials);
  const seen = { ok: [] as NodeMessage[], failed: [] as NodeMessage[] };
  helper.getNode('ok').on('input', (msg: NodeMessage) => seen.ok.push(msg));
  helper.getNode('failed').on('input', (msg: NodeMessage) => seen.failed.push(msg));
  return seen;
}

const out = () => helper.getNode('out') as Node & { receive(msg: NodeMessage): void };
const send = (...msgs: NodeMessage[]) => msgs.forEach((m) => out().receive(m));
const resultOf = (msg: NodeMessage) => msg.salesforce as Result;
const errorOf = (msg: NodeMessage) => msg.error as { code: string; message: string; errorCode?: string; fields?: string[]; node: string };

function alertMsg(id: string, overrides: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): NodeMessage {
  return {
    payload: { temperature: 93.5 },
    device: { id: 'pump-17', method: 'hmac', meta: {} },
    alert: {
      id,
      key: 'pump-17',
      reading: 'temperature',
      rule: 'above',
      severity: 'warning',
      state: 'raised',
      change: 'raised',
      value: 82.5,
      threshold: 80,
      since: 1_795_300_000_000,
      at: 1_795_300_000_000,
      text: 'temperature above 80 on pump-17 (82.5)',
      ...overrides,
    },
    ...extra,
  };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  return eventually(what, () => probe(), timeoutMs, 20);
}

/** Waits until the connection's session is logged in (sessions outlive a test: it may be at once). */
function connected(): Promise<true> {
  const conn = helper.getNode('conn') as Node & SalesforceConnection;
  return until('the login', () => (conn.client?.state().phase === 'connected' ? true : undefined));
}

/** Records every status the output node shows from now on. */
function watchStatus(): Array<{ fill?: string; shape?: string; text?: string }> {
  const statuses: Array<{ fill?: string; shape?: string; text?: string }> = [];
  const node = out() as Node & { status(s: object): void };
  const original = node.status.bind(node);
  node.status = (s: { text?: string }) => {
    statuses.push(s);
    original(s);
  };
  return statuses;
}

describe('upsert of Cases from alerts', () => {
  it('opens one Case per alert and updates it as the alert escalates and clears', async () => {
    const seen = await load(flow());
    const account = (await fetchAccount()) as string;
    send(alertMsg('alert-1', {}, { device: { id: 'pump-17', method: 'hmac', meta: { accountId: account } } }));
    await until('the raise', () => (seen.ok.length === 1 ? true : undefined));
    expect(resultOf(seen.ok[0])).toEqual({ success: true, id: expect.stringMatching(/^500/), created: true, operation: 'upsert', object: 'Case' });
    send(alertMsg('alert-1', { severity: 'critical', previousSeverity: 'warning', change: 'escalated', value: 93.5, threshold: 90, at: 1_795_300_060_000, text: 'temperature above 90 on pump-17 (93.5)' }));
    await until('the escalation', () => (seen.ok.length === 2 ? true : undefined));
    send(alertMsg('alert-1', { severity: 'critical', state: 'cleared', change: 'cleared', value: 64, threshold: 65, at: 1_795_300_120_000, text: 'temperature back below 65 on pump-17 (64)' }));
    await until('the clear', () => (seen.ok.length === 3 ? true : undefined));
    expect(seen.ok.map((m) => resultOf(m).created)).toEqual([true, false, false]);
    expect(new Set(seen.ok.map((m) => resultOf(m).id)).size).toBe(1);
    const cases = sf.sandbox.records('Case');
    expect(cases).toHaveLength(1);
    expect(cases[0]).toMatchObject({ Subject: 'temperature above 90 on pump-17', Priority: 'High', Origin: 'IoT', Status: 'New', AccountId: account, IoT_Alert_Id__c: 'alert-1' });
    expect(cases[0].Description).toContain('Reading: temperature = 64 (threshold 65, rule: above)');
    expect(cases[0].Description).toContain('Cleared: 2026-11-21T');
    expect(seen.failed).toEqual([]);
  });

  it('URL-encodes the external id of a lone record, and closes the Case on clear when asked', async () => {
    const seen = await load(flow({ closeOnClear: true }));
    const id = 'pump-17/temperature #3?x=1';
    send(alertMsg(id));
    await until('the raise', () => (seen.ok.length === 1 ? true : undefined));
    send(alertMsg(id, { state: 'cleared', change: 'cleared' }));
    await until('the clear', () => (seen.ok.length === 2 ? true : undefined));
    expect(sf.sandbox.records('Case')).toEqual([expect.objectContaining({ IoT_Alert_Id__c: id, Status: 'Closed', IsClosed: true })]);
  });

  it('batches what arrives together: one call for 450 alerts per 200, a result for each message', async () => {
    const seen = await load(flow({ batchDelay: '200' }));
    await connected();
    const before = sf.sandbox.stats().apiCalls;
    for (let i = 0; i < 450; i++) send(alertMsg(`batch-${i}`, {}, { topic: `m${i}` }));
    await until('every result', () => (seen.ok.length === 450 ? true : undefined));
    expect(sf.sandbox.stats().apiCalls - before).toBe(3);
    const byTopic = new Map(seen.ok.map((m) => [m.topic, resultOf(m).id]));
    const cases = new Map(sf.sandbox.records('Case').map((c) => [c.IoT_Alert_Id__c, c.Id]));
    for (let i = 0; i < 450; i++) expect(byTopic.get(`m${i}`)).toBe(cases.get(`batch-${i}`));
  });

  it('merges changes of one alert that wait together, and every message gets the result', async () => {
    const seen = await load(flow({ batchDelay: '100' }));
    send(alertMsg('m-1'), alertMsg('m-1', { severity: 'critical', change: 'escalated', text: 'temperature above 90 on pump-17 (95)' }), alertMsg('m-2'));
    await until('three results', () => (seen.ok.length === 3 ? true : undefined));
    expect(sf.sandbox.records('Case').map((c) => [c.IoT_Alert_Id__c, c.Priority, c.Subject])).toEqual([
      ['m-1', 'High', 'temperature above 90 on pump-17'],
      ['m-2', 'Medium', 'temperature above 80 on pump-17'],
    ]);
    expect(resultOf(seen.ok[0]).id).toBe(resultOf(seen.ok[1]).id);
  });
});

async function fetchAccount(): Promise<string | undefined> {
  const { Connection } = await import('jsforce');
  const conn = new Connection({ loginUrl: sf.sandbox.url, version: '62.0', oauth2: { clientId: CONSUMER_KEY, clientSecret: CONSUMER_SECRET, loginUrl: sf.sandbox.url } });
  await conn.authorize({ grant_type: 'client_credentials' });
  return (await conn.sobject('Account').create({ Name: 'Acme Pumps' })).id;
}

describe('records Salesforce refuses', () => {
  it('sends a wrong record to the failed output with Salesforce reason, never retried, and the others on', async () => {
    const seen = await load(flow({ fields: [{ field: 'Priority', value: 'priority', valueType: 'msg' }] }));
    send(alertMsg('good-1'), { ...alertMsg('bad-1'), priority: 'Urgent' }, alertMsg('good-2'));
    await until('all three', () => (seen.ok.length + seen.failed.length === 3 ? true : undefined));
    expect(seen.ok.map((m) => (m.alert as { id: string }).id)).toEqual(['good-1', 'good-2']);
    expect(errorOf(seen.failed[0])).toEqual({
      code: 'rejected',
      message: 'Priority: bad value for restricted picklist field: Urgent',
      node: 'out',
      errorCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
      fields: ['Priority'],
    });
    expect(resultOf(seen.failed[0]).success).toBe(false);
    expect(sf.sandbox.stats().apiCalls).toBe(1);
  });

  it('splits a call Salesforce refuses as a whole until the wrong record shows', async () => {
    const seen = await load(flow({ operation: 'create', recordFrom: 'payload', batchDelay: '50' }));
    const records = Array.from({ length: 8 }, (_, i) => ({ payload: i === 5 ? { Subject: 's5', Nonsense__c: 1 } : { Subject: `s${i}` } }));
    send(...records);
    await until('all eight', () => (seen.ok.length + seen.failed.length === 8 ? true : undefined));
    expect(seen.failed.map((m) => [(m.payload as { Subject: string }).Subject, errorOf(m).errorCode])).toEqual([['s5', 'INVALID_FIELD']]);
    expect(sf.sandbox.records('Case')).toHaveLength(7);
    // 1 refused call of 8, halves of 4, then 2, then 1 and 1: 1 + 2 + 2 + 2 = 7 calls.
    expect(sf.sandbox.stats().apiCalls).toBe(7);
  });

  it('refuses input it cannot make a record of, with a code, and settles it for the buffer', async () => {
    const seen = await load(flow());
    send({ payload: 1, _delivery: { source: 'buffer', id: 'd1' } }, alertMsg('   '.trim() || ' '));
    await until('two refusals', () => (seen.failed.length === 2 ? true : undefined));
    expect(seen.failed.map((m) => errorOf(m).code)).toEqual(['invalid_input', 'invalid_input']);
    expect(errorOf(seen.failed[0]).message).toMatch(/msg.alert is missing/);
    expect(errorOf(seen.failed[1]).message).toBe('IoT_Alert_Id__c is empty: an upsert needs the external id value');
    expect(settled).toEqual([['d1', { ok: false, retry: false, reason: expect.stringMatching(/msg.alert is missing/) }]]);
  });
});

describe('faults, handled as the error policy says', () => {
  it('retries 503 bursts with backoff and writes once', async () => {
    const seen = await load(flow());
    await connected();
    sf.sandbox.faults.inject({ unavailable: 2 });
    send(alertMsg('f-503'));
    await until('the result', () => (seen.ok.length === 1 ? true : undefined));
    expect(sf.sandbox.stats().faults.unavailable).toBe(2);
    expect(sf.sandbox.records('Case')).toHaveLength(1);
  });

  it('retries a 200-record call that met a 503 or lost its answer as one call, at the default retry delay', async () => {
    for (const fault of [{ unavailable: 1 }, { lostAnswers: 1 }]) {
      sf.sandbox.reset();
      // A batch delay of a second, so that the 200 records make one first call even on a loaded machine.
      const seen = await load(flow({ retryDelay: undefined, batchDelay: '1000' }));
      await connected();
      // Every request the node makes to the API, those answered 503 included.
      const requests = () => sf.sandbox.stats().apiCalls + sf.sandbox.stats().faults.unavailable;
      const before = requests();
      sf.sandbox.faults.inject(fault);
      for (let i = 0; i < 200; i++) send(alertMsg(`again-${i}`));
      await until(`200 results after ${Object.keys(fault)[0]}`, () => (seen.ok.length + seen.failed.length === 200 ? true : undefined));
      expect(seen.failed).toEqual([]);
      // The call that failed and its one retry.
      expect([Object.keys(fault)[0], requests() - before]).toEqual([Object.keys(fault)[0], 2]);
      expect(sf.sandbox.records('Case')).toHaveLength(200);
      await helper.unload();
    }
  });

  it('retries only the records that met a row lock', async () => {
    const seen = await load(flow({ batchDelay: '50' }));
    await connected();
    sf.sandbox.faults.inject({ rowLocks: 1 });
    send(alertMsg('lock-1'), alertMsg('lock-2'), alertMsg('lock-3'));
    await until('three results', () => (seen.ok.length === 3 ? true : undefined));
    expect(sf.sandbox.stats().apiCalls).toBe(2);
    expect(seen.ok.map((m) => resultOf(m).created)).toEqual([true, true, true]);
    expect(sf.sandbox.records('Case')).toHaveLength(3);
  });

  it('never opens a second Case when the answer was lost after the Case was made', async () => {
    const seen = await load(flow({ batchDelay: '50' }));
    await connected();
    sf.sandbox.faults.inject({ lostAnswers: 1 });
    send(alertMsg('lost-1'), alertMsg('lost-2'));
    await until('both results', () => (seen.ok.length === 2 ? true : undefined));
    expect(sf.sandbox.stats().faults.lostAnswers).toBe(1);
    expect(sf.sandbox.records('Case').map((c) => c.IoT_Alert_Id__c).sort()).toEqual(['lost-1', 'lost-2']);
    expect(seen.ok.map((m) => resultOf(m).created)).toEqual([false, false]);
  });

  it('upserts a ready-made Lead on the alert id: a lost answer and the alert escalating make one Lead, never DUPLICATE_VALUE', async () => {
    const seen = await load(flow({ operation: 'create', object: 'Lead', retryDelay: undefined, batchDelay: undefined }));
    await connected();
    sf.sandbox.faults.inject({ lostAnswers: 1 });
    const device = { id: 'pump-17', method: 'hmac', meta: { contactName: 'Dana Ng', company: 'Acme Pumps' } };
    send(alertMsg('lead-1', {}, { device }));
    await until('the Lead', () => (seen.ok.length + seen.failed.length === 1 ? true : undefined));
    send(alertMsg('lead-1', { severity: 'critical', change: 'escalated', text: 'temperature above 90 on pump-17 (95)' }, { device }));
    await until('the escalation', () => (seen.ok.length + seen.failed.length === 2 ? true : undefined));
    expect(seen.failed.map((m) => errorOf(m))).toEqual([]);
    expect(sf.sandbox.stats().faults.lostAnswers).toBe(1);
    const leads = sf.sandbox.records('Lead');
    expect(leads).toEqual([expect.objectContaining({ IoT_Alert_Id__c: 'lead-1', LastName: 'Dana Ng', Company: 'Acme Pumps' })]);
    expect(leads[0].Description).toContain('Severity: critical');
    expect(seen.ok.map((m) => ({ ...resultOf(m), id: resultOf(m).id === leads[0].Id }))).toEqual([
      { success: true, id: true, created: false, operation: 'upsert', object: 'Lead' },
      { success: true, id: true, created: false, operation: 'upsert', object: 'Lead' },
    ]);
  });

  it('counts a create refused as DUPLICATE_VALUE after its answer was lost as written, with the record it made', async () => {
    const seen = await load(flow({ operation: 'create', object: 'Lead', recordFrom: 'payload', retryDelay: undefined, batchDelay: undefined }));
    await connected();
    sf.sandbox.faults.inject({ lostAnswers: 1 });
    send({ payload: { LastName: 'Ng', Company: 'Acme', IoT_Alert_Id__c: 'unique-1' } });
    await until('the result', () => (seen.ok.length + seen.failed.length === 1 ? true : undefined));
    expect(seen.failed.map((m) => errorOf(m))).toEqual([]);
    const leads = sf.sandbox.records('Lead');
    expect(leads).toHaveLength(1);
    expect(resultOf(seen.ok[0])).toEqual({ success: true, id: leads[0].Id, created: true, operation: 'create', object: 'Lead' });
    // Without a lost answer, the same clash is the record's fault: refused, never retried.
    send({ payload: { LastName: 'Ng', Company: 'Acme', IoT_Alert_Id__c: 'unique-1' } });
    await until('the refusal', () => (seen.failed.length === 1 ? true : undefined));
    expect(errorOf(seen.failed[0])).toMatchObject({ code: 'rejected', errorCode: 'DUPLICATE_VALUE' });
  });

  it('treats an answer slower than the timeout as lost, then retries without duplicates', async () => {
    const seen = await load(flow({ timeout: '1' }));
    await connected();
    sf.sandbox.faults.inject({ latencyMs: 1500 });
    send(alertMsg('slow-1'));
    await sleep(1100);
    sf.sandbox.faults.inject({ latencyMs: 0 });
    await until('the result', () => (seen.ok.length === 1 ? true : undefined));
    await sleep(600);
    expect(sf.sandbox.records('Case')).toHaveLength(1);
    expect(seen.failed).toEqual([]);
  });

  it('gives up after the retries, hands the message back to its buffer and says so', async () => {
    const seen = await load(flow({ retries: '2' }));
    await connected();
    sf.sandbox.faults.inject({ unavailable: 10 });
    send({ ...alertMsg('down-1'), _delivery: { source: 'buffer', id: 'd-down' } });
    await until('the failure', () => (seen.failed.length === 1 ? true : undefined));
    expect(errorOf(seen.failed[0])).toMatchObject({ code: 'unavailable', errorCode: 'SERVER_UNAVAILABLE' });
    expect(errorOf(seen.failed[0]).message).toMatch(/^gave up after 2 retries/);
    expect(settled).toEqual([['d-down', { ok: false, retry: true, reason: expect.stringContaining('SERVER_UNAVAILABLE') }]]);
    expect(sf.sandbox.stats().faults.unavailable).toBe(3);
  });
});

describe('tokens', () => {
  it('renews an expired token once in the middle of a batch stream and loses nothing', async () => {
    const seen = await load(flow({ batchDelay: '10', batchSize: '50' }));
    await connected();
    const logins = sf.sandbox.stats().logins;
    for (let i = 0; i < 100; i++) send(alertMsg(`t-${i}`));
    await until('some results', () => (seen.ok.length >= 50 ? true : undefined));
    sf.sandbox.expireTokens();
    for (let i = 100; i < 200; i++) send(alertMsg(`t-${i}`));
    await until('every result', () => (seen.ok.length === 200 ? true : undefined));
    expect(sf.sandbox.stats().logins - logins).toBe(1);
    expect(sf.sandbox.records('Case')).toHaveLength(200);
    expect(seen.failed).toEqual([]);
  });

  it('logs in with client credentials and with a refresh token, once per token', async () => {
    for (const [connection, credentials] of [
      [{ authMethod: 'clientCredentials', username: '' }, { clientSecret: CONSUMER_SECRET }],
      [{ authMethod: 'refreshToken', username: '' }, { clientSecret: CONSUMER_SECRET, refreshToken: sf.sandbox.issueRefreshToken(USERNAME, CONSUMER_KEY) }],
    ] as const) {
      sf.sandbox.reset();
      const logins = sf.sandbox.stats().logins;
      const seen = await load(flow({}, { ...connection, guardPercent: connection.authMethod === 'refreshToken' ? '91' : '92' }), { conn: credentials });
      send(alertMsg('cc-1'), alertMsg('cc-2'));
      await until(`${connection.authMethod} results`, () => (seen.ok.length === 2 ? true : undefined));
      expect(sf.sandbox.stats().logins - logins).toBe(1);
      await helper.unload();
    }
  });

  it('renews a session that timed out from inactivity before its first call, at the node defaults (JWT and client credentials)', async () => {
    // Real orgs end sessions after 2 hours without a call; here after 1.5 s, and the node keeps its defaults.
    const quiet = await startTestSandbox({ sessionTimeoutMs: 1500 });
    try {
      for (const [connection, credentials] of [
        [{ authMethod: 'jwt' }, { privateKey: sf.keys.privateKey }],
        [{ authMethod: 'clientCredentials', username: '' }, { clientSecret: CONSUMER_SECRET }],
      ] as const) {
        const f = flow({ retryDelay: undefined, batchDelay: undefined }, { ...connection, loginUrl: quiet.sandbox.url });
        const seen = await load(f, { conn: credentials });
        await connected();
        const logins = quiet.sandbox.stats().logins;
        // The flow is quiet longer than the session timeout: the token logged in at deploy is never used.
        await sleep(2000);
        send(alertMsg(`after-quiet-${connection.authMethod}`));
        await until(`the alert written (${connection.authMethod})`, () => (seen.ok.length + seen.failed.length === 1 ? true : undefined), 10_000);
        expect(seen.failed.map((m) => errorOf(m))).toEqual([]);
        expect(quiet.sandbox.records('Case').map((c) => c.IoT_Alert_Id__c)).toContain(`after-quiet-${connection.authMethod}`);
        expect(quiet.sandbox.stats().logins - logins).toBe(1);
        await helper.unload();
      }
    } finally {
      await quiet.close();
    }
  });

  it('never renews in a loop when every new token is refused at once', async () => {
    const strict = await startTestSandbox({ sessionTimeoutMs: 0 });
    try {
      // No retry: a retry would wait for the next login allowed (30 s), as records do while logins are held.
      const f = flow({ retries: '0' });
      f[0].loginUrl = strict.sandbox.url;
      const seen = await load(f);
      send(alertMsg('loop-1'));
      await until('the failure', () => (seen.failed.length === 1 ? true : undefined));
      expect(errorOf(seen.failed[0]).code).toBe('login_failed');
      expect(errorOf(seen.failed[0]).message).toMatch(/not logging in again before .*: the new token was refused too/);
      // The token of the first login may have timed out unused: it is renewed once, and its refused successor is not.
      expect(strict.sandbox.stats().logins).toBe(2);
    } finally {
      await strict.close();
    }
  });

  it('shows a failed login in the status and the failed output, without the secret', async () => {
    const seen = await load(flow({ retries: '0' }, { authMethod: 'clientCredentials', username: '' }), { conn: { clientSecret: 'wrong-secret-value' } });
    const statuses = watchStatus();
    send(alertMsg('x'));
    await until('the failure', () => (seen.failed.length === 1 ? true : undefined));
    expect(errorOf(seen.failed[0])).toMatchObject({ code: 'login_failed', errorCode: 'invalid_client' });
    expect(errorOf(seen.failed[0]).message).toMatch(/invalid_client: invalid client credentials/);
    await until('the status', () => statuses.find((s) => /^iot-salesforce-out.status.login-failed: invalid_client: invalid client credentials · iot-salesforce-out.status.next-login$/.test(s.text ?? '')));
    expect(JSON.stringify([seen, statuses])).not.toContain('wrong-secret-value');
  });
  it('reports a refused JWT login with its own code (invalid_grant), not as an expired session', async () => {
    const seen = await load(flow({ retries: '0' }, { username: 'nobody@iot-patterns.example' }));
    send(alertMsg('refused-login'));
    await until('the failure', () => (seen.failed.length === 1 ? true : undefined));
    expect(errorOf(seen.failed[0])).toMatchObject({ code: 'login_failed', errorCode: 'invalid_grant', message: expect.stringMatching(/invalid_grant: invalid assertion/) });
    expect(resultOf(seen.failed[0])).toMatchObject({ success: false, errors: [{ statusCode: 'invalid_grant' }] });
  });
});

describe('the API limit', () => {
  it('holds when Salesforce refuses with REQUEST_LIMIT_EXCEEDED: a buffer keeps its messages, the others wait, then all are written', async () => {
    const seen = await load(flow({ batchDelay: '10' }, { holdMinutes: '0.01', guardPercent: '100' }));
    await connected();
    sf.sandbox.setApiUsage(15_000);
    send({ ...alertMsg('held-1'), _delivery: { source: 'buffer', id: 'd-held' } }, alertMsg('held-2'));
    await until('the refusal', () => (sf.sandbox.stats().rejectedForLimit >= 1 ? true : undefined));
    await sleep(100);
    expect(seen.ok).toEqual([]);
    expect(seen.failed).toEqual([]);
    // The buffer is told to deliver it again once the hold is over (0.01 min), not at its own timeout.
    expect(settled).toEqual([['d-held', { ok: false, retry: true, reason: 'REQUEST_LIMIT_EXCEEDED: holding', retryAfterMs: expect.any(Number) }]]);
    expect((settled[0][1] as { retryAfterMs: number }).retryAfterMs).toBeLessThanOrEqual(600);
    settled.length = 0;
    sf.sandbox.setApiUsage(0);
    await until('the waiting record', () => (seen.ok.length === 1 ? true : undefined));
    expect((seen.ok[0].alert as { id: string }).id).toBe('held-2');
    // The buffer delivers its message again: now it is written and acknowledged.
    send({ ...alertMsg('held-1'), _delivery: { source: 'buffer', id: 'd-held' } });
    await until('the redelivered record', () => (seen.ok.length === 2 ? true : undefined));
    expect(settled).toEqual([['d-held', { ok: true }]]);
  });

  it('makes no call for buffered messages while it holds, and lets one through as the probe after the hold time', async () => {
    const seen = await load(flow({ batchDelay: '10' }, { holdMinutes: '0.01', guardPercent: '99' }));
    await connected();
    const buffered = () => ({ ...alertMsg('only-buffered'), _delivery: { source: 'buffer', id: 'd-only' } });
    sf.sandbox.setApiUsage(15_000);
    send(buffered());
    await until('the refusal', () => (sf.sandbox.stats().rejectedForLimit === 1 ? true : undefined));
    send(buffered());
    await sleep(100);
    expect(sf.sandbox.stats().rejectedForLimit).toBe(1);
    sf.sandbox.setApiUsage(0);
    await sleep(600);
    send(buffered());
    await until('the probe written', () => (seen.ok.length === 1 ? true : undefined));
    // Twice let go during the hold, each time to be delivered again when it ends; then written.
    expect(settled.map(([id, outcome]) => [id, outcome.ok ? 'ok' : `retry ${String((outcome as { retry: boolean }).retry)}`])).toEqual([
      ['d-only', 'retry true'],
      ['d-only', 'retry true'],
      ['d-only', 'ok'],
    ]);
  });

  it('holds for the daily allowance until the hold time is over (5 minutes by default), saying until when', async () => {
    const seen = await load(flow({}, { guardPercent: '100' }));
    await connected();
    const statuses = watchStatus();
    sf.sandbox.setApiUsage(15_000);
    const refusedAt = Date.now();
    send({ ...alertMsg('daily-1'), _delivery: { source: 'buffer', id: 'd-daily' } });
    await until('the hold', () => statuses.find((s) => /status.hold-exceeded/.test(s.text ?? '')));
    const hold = (helper.getNode('conn') as Node & SalesforceConnection).client?.state().hold;
    expect(hold?.reason).toBe('exceeded');
    expect((hold?.until ?? 0) - refusedAt).toBeGreaterThanOrEqual(299_000);
    expect(statuses.at(-1)).toMatchObject({ fill: 'yellow', shape: 'ring' });
    // The buffer keeps the message on disk meanwhile, to deliver it again when the hold ends.
    expect(settled).toEqual([['d-daily', { ok: false, retry: true, reason: 'REQUEST_LIMIT_EXCEEDED: holding', retryAfterMs: expect.any(Number) }]]);
    expect((settled[0][1] as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(290_000);
    expect(seen.ok).toEqual([]);
  });

  it('holds only until the next answer when the limit is the org\'s concurrent long requests (low daily use)', async () => {
    const seen = await load(flow({ retryDelay: undefined, batchDelay: undefined }));
    await connected();
    const statuses = watchStatus();
    // Another integration's request runs long; the org allows one at a time (Salesforce: 25 of 20 s).
    sf.sandbox.configure({ longRequestMs: 100, concurrentLongRequests: 1 });
    sf.sandbox.faults.inject({ latencyMs: 1500 });
    const other = new (await import('jsforce')).Connection({ loginUrl: sf.sandbox.url, version: '62.0', oauth2: { clientId: CONSUMER_KEY, clientSecret: CONSUMER_SECRET, loginUrl: sf.sandbox.url } });
    await other.authorize({ grant_type: 'client_credentials' });
    const report = other.sobject('Case').create({ Subject: 'a long report' });
    await sleep(200);
    const sentAt = Date.now();
    send({ ...alertMsg('busy-1'), _delivery: { source: 'buffer', id: 'd-busy' } }, alertMsg('busy-2'));
    await until('the refusal', () => (sf.sandbox.stats().rejectedForConcurrency >= 1 ? true : undefined));
    await until('the hold in the status', () => statuses.find((s) => /status.hold-concurrent/.test(s.text ?? '')));
    expect(statuses.at(-1)).toMatchObject({ fill: 'yellow', shape: 'ring' });
    await report;
    sf.sandbox.faults.inject({ latencyMs: 0 });
    await until('both written', () => (seen.ok.length === 2 ? true : undefined), 10_000);
    // Seconds, not the 5 minutes of a daily hold; the buffered message was written, not handed back.
    expect(Date.now() - sentAt).toBeLessThan(10_000);
    expect(settled).toEqual([['d-busy', { ok: true }]]);
    expect(seen.failed).toEqual([]);
    await until('green again', () => (statuses.at(-1)?.fill === 'green' ? true : undefined));
  });

  it('stops at the guard share of the daily allowance and says so', async () => {
    const seen = await load(flow({ batchDelay: '10' }, { guardPercent: '50', holdMinutes: '10' }));
    const statuses = watchStatus();
    sf.sandbox.setApiUsage(7_499);
    send(alertMsg('g-1'));
    await until('the first record', () => (seen.ok.length === 1 ? true : undefined));
    send(alertMsg('g-2'));
    await until('the hold in the status', () => statuses.find((s) => /status.hold-guard/.test(s.text ?? '')));
    expect(sf.sandbox.records('Case')).toHaveLength(1);
    expect(statuses.at(-1)).toEqual({ fill: 'yellow', shape: 'ring', text: 'iot-salesforce-out.status.hold-guard · 1 iot-salesforce-out.status.written · 1 iot-salesforce-out.status.waiting · API 7,500/15,000' });
  });
});

describe('with a buffer upstream (issue 13)', () => {
  it('sends at once when the buffer says its delivery was the last, instead of waiting out the batch delay', async () => {
    // A long batch delay, so that only the buffer's word can explain an early call.
    const seen = await load(flow({ batchDelay: '5000', retryDelay: undefined }));
    await connected();
    const sentAt = Date.now();
    send({ ...alertMsg('last-1'), _delivery: { source: 'buffer', id: 'l1' } }, { ...alertMsg('last-2'), _delivery: { source: 'buffer', id: 'l2', last: true } });
    await until('both written', () => (seen.ok.length === 2 ? true : undefined), 4000);
    expect(Date.now() - sentAt).toBeLessThan(2000);
    expect(sf.sandbox.stats().apiCalls).toBe(1);
  });

  it('tells the buffer how many messages it can use at once: batch size × calls in parallel', async () => {
    const seen = await load(flow({ retryDelay: undefined, batchDelay: undefined }));
    send({ ...alertMsg('cap-1'), _delivery: { source: 'buffer', id: 'c1' } });
    await until('written', () => (seen.ok.length === 1 ? true : undefined));
    expect(announced).toEqual([['out', 400]]);
  });
});

describe('status', () => {
  it('is green while writing, yellow while retrying a 503 with its code and time, red once every call fails past its retries', async () => {
    // One retry instead of five, so that the calls run out in seconds: the colours are the point.
    const seen = await load(flow({ retryDelay: undefined, batchDelay: undefined, retries: '1' }));
    await connected();
    const statuses = watchStatus();
    send(alertMsg('st-1'));
    await until('green', () => (statuses.at(-1)?.fill === 'green' ? true : undefined));
    expect(statuses.at(-1)).toEqual({ fill: 'green', shape: 'dot', text: expect.stringMatching(/^1 iot-salesforce-out.status.written · API \d+\/15,000$/) });
    sf.sandbox.faults.inject({ unavailable: 100 });
    send(alertMsg('st-2'), alertMsg('st-3'), alertMsg('st-4'));
    await until('yellow', () => statuses.find((s) => s.fill === 'yellow'));
    expect(statuses.find((s) => s.fill === 'yellow')).toMatchObject({ shape: 'ring', text: expect.stringMatching(/^iot-salesforce-out.status.retrying · 1 iot-salesforce-out.status.written · 3 iot-salesforce-out.status.waiting/) });
    await until('the failures', () => (seen.failed.length === 3 ? true : undefined));
    await until('red', () => (statuses.at(-1)?.fill === 'red' ? true : undefined));
    expect(statuses.at(-1)).toMatchObject({ fill: 'red', shape: 'ring', text: expect.stringMatching(/^iot-salesforce-out.status.failing · 1 iot-salesforce-out.status.written · 3 iot-salesforce-out.status.failed/) });
    sf.sandbox.faults.clear();
    send(alertMsg('st-5'));
    await until('green again', () => (statuses.at(-1)?.fill === 'green' ? true : undefined));
  });
});

describe('other operations', () => {
  it('creates, updates by Id and publishes platform events from msg.payload and the field table', async () => {
    const seen = await load([
      ...flow({ operation: 'create', object: 'Lead', recordFrom: 'payload', fields: [{ field: 'LeadSource', value: 'IoT', valueType: 'str' }] }),
      { id: 'upd', type: 'iot-salesforce-out', connection: 'conn', operation: 'update', object: 'Lead', recordFrom: 'fields', batchDelay: '10', fields: [{ field: 'Id', value: 'payload.id', valueType: 'msg' }, { field: 'Title', value: '$uppercase(payload.title)', valueType: 'jsonata' }], wires: [['ok'], ['failed']] },
      { id: 'evt', type: 'iot-salesforce-out', connection: 'conn', operation: 'event', object: 'IoT_Alert__e', recordFrom: 'fields', batchDelay: '10', fields: [{ field: 'Alert_Id__c', value: 'alert.id', valueType: 'msg' }, { field: 'Value__c', value: 'alert.value', valueType: 'msg' }], wires: [['ok'], ['failed']] },
    ]);
    send({ payload: { LastName: 'Ng', Company: 'Acme' } });
    await until('the lead', () => (seen.ok.length === 1 ? true : undefined));
    const id = resultOf(seen.ok[0]).id as string;
    (helper.getNode('upd') as Node & { receive(m: NodeMessage): void }).receive({ payload: { id, title: 'buyer' } });
    (helper.getNode('upd') as Node & { receive(m: NodeMessage): void }).receive({ payload: { id: 'not an id' } });
    (helper.getNode('evt') as Node & { receive(m: NodeMessage): void }).receive(alertMsg('ev-1'));
    await until('the update and the event', () => (seen.ok.length === 3 && seen.failed.length === 1 ? true : undefined));
    expect(sf.sandbox.records('Lead')).toEqual([expect.objectContaining({ LastName: 'Ng', Company: 'Acme', LeadSource: 'IoT', Title: 'BUYER' })]);
    expect(errorOf(seen.failed[0])).toMatchObject({ code: 'invalid_input', message: expect.stringMatching(/needs the record's Id/) });
    const event = seen.ok.find((m) => m.alert);
    expect(resultOf(event as NodeMessage)).toMatchObject({ success: true, created: true, eventUuid: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(sf.sandbox.events('IoT_Alert__e')).toEqual([expect.objectContaining({ Alert_Id__c: 'ev-1', Value__c: 82.5 })]);
  });

  it('posts Web-to-Case and Web-to-Lead forms with no login, and says submitted, never created', async () => {
    const connection = { authMethod: 'none', loginUrl: '', consumerKey: '', username: '', webToUrl: sf.sandbox.url, orgId: sf.sandbox.orgId };
    const logins = sf.sandbox.stats().logins;
    const seen = await load(
      [
        ...flow({ operation: 'webToCase' }, connection),
        { id: 'lead', type: 'iot-salesforce-out', connection: 'conn', operation: 'webToLead', recordFrom: 'payload', wires: [['ok'], ['failed']] },
      ],
      {},
    );
    send(alertMsg('w-1', {}, { device: { id: 'button-4', meta: { contactName: 'Dana Ng', contactEmail: 'dana@example.com' } } }));
    (helper.getNode('lead') as Node & { receive(m: NodeMessage): void }).receive({ payload: { last_name: 'Ng' } });
    await until('both submitted', () => (seen.ok.length === 2 ? true : undefined));
    expect(seen.ok.map(resultOf)).toEqual([
      { success: true, submitted: true, operation: 'webToCase', object: 'Case' },
      { success: true, submitted: true, operation: 'webToLead', object: 'Lead' },
    ]);
    await until('the Case', () => (sf.sandbox.records('Case').length === 1 ? true : undefined));
    expect(sf.sandbox.records('Case')[0]).toMatchObject({ Subject: 'temperature above 80 on pump-17', SuppliedName: 'Dana Ng', SuppliedEmail: 'dana@example.com', Origin: 'Web' });
    // The lead had no company: Salesforce drops it, silently; the node could only say "submitted".
    await until('the drop', () => (sf.sandbox.droppedWebTo().length === 1 ? true : undefined));
    expect(sf.sandbox.records('Lead')).toEqual([]);
    expect(sf.sandbox.stats().logins).toBe(logins);
  });
});

describe('Web-to and the API on one connection', () => {
  it('takes the org id from the login when none is set, and refuses API writes on a Web-to only connection', async () => {
    const seen = await load(flow({ operation: 'webToCase', recordFrom: 'payload' }, { guardPercent: '93' }));
    send({ payload: { subject: 'from a logged-in connection' } });
    await until('the post', () => (seen.ok.length === 1 ? true : undefined));
    await until('the Case', () => (sf.sandbox.records('Case').length === 1 ? true : undefined));
    await helper.unload();
    const webToOnly = await load(flow({}, { authMethod: 'none', loginUrl: '', consumerKey: '', username: '', orgId: sf.sandbox.orgId }), {});
    send(alertMsg('api-1'));
    await until('the refusal', () => (webToOnly.failed.length === 1 ? true : undefined));
    expect(errorOf(webToOnly.failed[0])).toMatchObject({ code: 'invalid_config', message: expect.stringMatching(/Web-to forms only/) });
  });
});

describe('deep and huge messages, with Catch and Complete nodes wired as real flows do', () => {
  it('refuses each with a specific code, never ending the process with an unhandled rejection', async () => {
    const hostile: Flow = [
      ...flow({ operation: 'create', recordFrom: 'payload', catchErrors: true, z: 'tab' }),
      { id: 'tab', type: 'tab', label: 'hostile' },
      { id: 'done', type: 'complete', z: 'tab', scope: ['out'], uncaught: false, wires: [['completed']] },
      { id: 'catcher', type: 'catch', z: 'tab', scope: ['out'], uncaught: false, wires: [['caught']] },
      { id: 'completed', type: 'helper', z: 'tab' },
      { id: 'caught', type: 'helper', z: 'tab' },
    ];
    const seen = await load(hostile);
    const completed: NodeMessage[] = [];
    const caught: NodeMessage[] = [];
    helper.getNode('completed').on('input', (msg: NodeMessage) => completed.push(msg));
    helper.getNode('caught').on('input', (msg: NodeMessage) => caught.push(msg));
    await connected();
    const failures = watchProcessFailures();
    try {
      const delivered = (id: string) => ({ _delivery: { source: 'buffer', id } });
      send(
        // A good record that drags a 3,000-level value along: Node-RED overflows its stack copying it for Complete.
        { payload: { Subject: 'fine, but deep beside' }, topic: 'deep-beside', trace: nested(3000), ...delivered('deep-beside') },
        { payload: { Subject: 'deep', Description: nested(3000) }, topic: 'deep-record', ...delivered('deep-record') },
        { payload: { Subject: 'huge', Description: 'x'.repeat(2_000_000) }, topic: 'huge-record', ...delivered('huge-record') },
        { payload: { Subject: 'a BigInt', Count__c: 10n }, topic: 'bigint', ...delivered('bigint') },
        { payload: { Subject: 'fine' }, topic: 'fine', ...delivered('fine') },
      );
      await until('five messages done', () => (completed.length + caught.length === 5 ? true : undefined)).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify({ failures: failures.seen, failed: seen.failed.map((m) => [m.topic, errorOf(m).code]), completed: completed.map((m) => m.topic), caught: caught.map((m) => m.topic) })}`);
      });
      await sleep(200);
      expect(failures.seen).toEqual([]);
      expect(seen.failed.map((m) => [m.topic, errorOf(m).code])).toEqual([
        ['deep-beside', 'too_deep'],
        ['deep-record', 'too_deep'],
        ['huge-record', 'too_large'],
        ['bigint', 'not_serializable'],
      ]);
      expect(caught.map((m) => m.topic)).toEqual(['deep-beside', 'deep-record', 'huge-record', 'bigint']);
      expect(completed.map((m) => m.topic)).toEqual(['fine']);
      expect(settled.map(([id, outcome]) => [id, outcome.ok || outcome.retry])).toEqual([
        ['deep-beside', false],
        ['deep-record', false],
        ['huge-record', false],
        ['bigint', false],
        ['fine', true],
      ]);
      expect(sf.sandbox.records('Case').map((c) => c.Subject)).toEqual(['fine']);
    } finally {
      failures.stop();
    }
  });
});

describe('configuration and secrets', () => {
  it('refuses messages with a coded error when the configuration is not usable', async () => {
    const seen = await load(flow({}, { consumerKey: '' }));
    send(alertMsg('c-1'));
    await until('the refusal', () => (seen.failed.length === 1 ? true : undefined));
    expect(errorOf(seen.failed[0])).toMatchObject({ code: 'invalid_config', message: 'the connection is not usable: consumer key missing' });
    await helper.unload();
    const seenToo = await load(flow({ recordFrom: 'alert', object: 'Asset' }));
    send(alertMsg('c-2'));
    await until('the refusal', () => (seenToo.failed.length === 1 ? true : undefined));
    expect(errorOf(seenToo.failed[0]).message).toMatch(/makes a Case or a Lead, not a Asset/);
  });

  it('puts no private key, secret or token in logs or messages', async () => {
    const seen = await load(flow({ retries: '0' }));
    send(alertMsg('s-1'));
    sf.sandbox.expireTokens();
    send({ payload: 'not a record' });
    await until('the results', () => (seen.ok.length === 1 && seen.failed.length === 1 ? true : undefined));
    const logged = JSON.stringify(helper.log().args);
    const messages = JSON.stringify(seen);
    const keyBody = sf.keys.privateKey.split('\n')[1];
    for (const text of [logged, messages]) {
      expect(text).not.toContain(keyBody);
      expect(text).not.toContain(CONSUMER_SECRET);
      expect(text).not.toMatch(/00D\w{12}!/);
    }
  });
});
