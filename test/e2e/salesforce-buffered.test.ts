/**
 * Alerts through iot-buffer into iot-salesforce-out (Cases upserted on the alert id) in a whole
 * Node-RED, against the local Salesforce sandbox it runs (issues 4 and 6). While alerts keep
 * coming, Salesforce has a bad spell: a burst of 503 answers, answers lost after the Cases were
 * made, then the org's daily API allowance spent (REQUEST_LIMIT_EXCEEDED) for a while. The
 * buffer holds the alerts meanwhile and drains once the allowance is back; every alert becomes
 * exactly one Case: none missing, none twice.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { bufferedTab, bufferStats, deployBufferFlow, ReadingStream, reportedFailures, type FlowNode } from '../support/buffer-flow';
import { NodeRedProcess } from '../support/node-red-process';
import { countBy, type SalesforceRecord } from '../support/patterns';
import { eventually } from '../support/wait';

/** 20 alerts a second. */
const PACE = { perTick: 2, tickMs: 100 };
const PHASE_MS = { normal: 3_000, faults: 4_000, limit: 12_000, after: 3_000 };
const FAULTS = { unavailable: 6, lostAnswers: 2 };

const flow: FlowNode[] = [
  // The output lets go of what it cannot send while the limit holds: the buffer delivers it again after 5 s.
  ...bufferedTab('sfbuf', 'buffered Salesforce', ['sfbuf.alert'], { maxInFlight: '200', ackTimeout: '5', maxAttempts: '0', retryDelay: '0.5', retryDelayMax: '2' }),
  { id: 'sfbuf.alert', type: 'change', z: 'sfbuf.tab', rules: [{ t: 'set', p: 'alert', pt: 'msg', to: 'payload', tot: 'msg' }], wires: [['sfbuf.out']] },
  {
    id: 'sfbuf.conn',
    type: 'iot-salesforce-connection',
    loginUrl: '${SF_LOGIN_URL}',
    authMethod: 'jwt',
    consumerKey: '${SF_CONSUMER_KEY}',
    username: '${SF_USERNAME}',
    privateKeyFile: '${SF_PRIVATE_KEY_FILE}',
    guardPercent: '90',
    // Six seconds: the hold ends, and a probe finds the allowance back, within the test.
    holdMinutes: '0.1',
  },
  // Upserts on the alert id; retries a 503 or a lost answer (up to 10 times, from 0.2 s on) before giving up.
  { id: 'sfbuf.out', type: 'iot-salesforce-out', z: 'sfbuf.tab', connection: 'sfbuf.conn', operation: 'upsert', object: 'Case', recordFrom: 'alert', externalIdField: 'IoT_Alert_Id__c', batchDelay: '100', retries: '10', retryDelay: '0.2', wires: [[], ['sfbuf.failed']] },
];

let node: NodeRedProcess | undefined;
afterAll(async () => {
  await node?.dispose();
});

interface SandboxStats {
  apiCalls: number;
  apiAllowance: number;
  rejectedForLimit: number;
  faults: { unavailable: number; lostAnswers: number };
}

describe('buffered alerts into Salesforce through 503s, lost answers and a spent API allowance', () => {
  it('turns every alert into exactly one Case, the buffer holding them meanwhile', async () => {
    // No time-series store: this flow writes none (npm start would run one, left behind by a kill).
    node = await NodeRedProcess.start({ env: { INFLUX_URL: 'http://127.0.0.1:9' } });
    const running = node;
    await deployBufferFlow(running, flow);
    const sandbox = running.salesforceUrl;
    const post = (path: string, body: object) => fetch(`${sandbox}/_sandbox/${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
    const sandboxStats = () => fetch(`${sandbox}/_sandbox/stats`).then((r) => r.json()) as Promise<SandboxStats>;

    const alert = (seq: number) => ({ id: `sfbuf-${seq}`, state: 'raised', severity: 'major', key: `pump-${seq % 5}`, reading: 'pressure', value: 8 + (seq % 10) / 10, threshold: 8, rule: 'above' });
    const stream = new ReadingStream(running, alert, PACE.perTick, PACE.tickMs);
    const empty = async () => ((await bufferStats(running)).depth === 0 ? true : undefined);

    await stream.pushFor(PHASE_MS.normal);
    await eventually('the first alerts written', empty, 20_000);

    await post('faults', FAULTS);
    await stream.pushFor(PHASE_MS.faults);

    const { apiAllowance } = await sandboxStats();
    await post('api-usage', { used: apiAllowance });
    const sentBeforeLimit = stream.sent;
    const peak = await stream.pushFor(PHASE_MS.limit);
    const sentInLimit = stream.sent - sentBeforeLimit;
    await post('api-usage', { used: 0 });
    await stream.pushFor(PHASE_MS.after);
    const sent = stream.sent;

    const drainStart = Date.now();
    await eventually('an empty buffer', empty, 60_000, 250);
    const drainMs = Date.now() - drainStart;
    const stats = await bufferStats(running);
    const reported = await reportedFailures(running);
    const sf = await sandboxStats();
    const cases = (await fetch(`${sandbox}/_sandbox/records?type=Case`).then((r) => r.json())) as SalesforceRecord[];
    console.log(
      `[buffered Salesforce] sent ${sent} alerts (${sentInLimit} while the allowance was spent); the buffer held up to ${peak.depth}; ` +
        `drained ${drainMs} ms after the last one; redelivered ${stats.redelivered}; ${sf.apiCalls} API calls, ${sf.rejectedForLimit} refused for the limit; ${cases.length} Cases`,
    );

    expect(stream.refused).toBe(0);
    // Salesforce really had its bad spell.
    expect(sf.faults).toEqual(expect.objectContaining(FAULTS));
    expect(sf.rejectedForLimit).toBeGreaterThan(0);
    // The buffer held the alerts while the limit held, and delivered them again afterwards.
    expect(peak.depth).toBeGreaterThanOrEqual(sentInLimit * 0.9);
    expect(stats.redelivered).toBeGreaterThan(0);
    expect(stats.accepted).toBe(sent);
    expect(stats.acknowledged).toBe(sent);
    // No alert failed for good, none was dead-lettered.
    expect(reported.failed).toEqual([]);
    expect(reported.dead).toBe(0);
    // Every alert is exactly one Case, however often it was sent.
    const perAlert = countBy(cases, 'IoT_Alert_Id__c');
    expect([...perAlert.keys()].sort()).toEqual(Array.from({ length: sent }, (_, seq) => `sfbuf-${seq}`).sort());
    expect([...perAlert.values()].filter((count) => count !== 1)).toEqual([]);
    for (const c of cases) expect(String(c.Subject)).toMatch(/^pressure above 8 on pump-\d$/);
  });
});
