/**
 * Load through the whole node: 10,000 alerts from a burst become 10,000 Cases in at most 60 API
 * calls, with no duplicate and none lost; and again while the sandbox answers 503s, locks rows,
 * loses answers after making the Cases and expires the token in the middle.
 */
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import connectionNode from '../../nodes/salesforce-connection/salesforce-connection';
import outNode from '../../nodes/salesforce-out/salesforce-out';
import { helper } from '../support/node-red';
import { CONSUMER_KEY, startTestSandbox, USERNAME, type TestSandbox } from '../support/salesforce';
import { eventually, sleep } from '../support/wait';

const ALERTS = 10_000;
let sf: TestSandbox;

beforeAll(async () => {
  sf = await startTestSandbox({ apiAllowance: 100_000 });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  await sf.close();
});
afterEach(async () => {
  await helper.unload();
  sf.sandbox.reset();
});

async function run(guardPercent: string, during?: (sent: number) => void): Promise<{ ok: NodeMessage[]; failed: NodeMessage[]; calls: number }> {
  const flow = [
    // A distinct guard share gives each run its own session (sessions outlive a test).
    { id: 'conn', type: 'iot-salesforce-connection', loginUrl: sf.sandbox.url, authMethod: 'jwt', consumerKey: CONSUMER_KEY, username: USERNAME, guardPercent },
    { id: 'out', type: 'iot-salesforce-out', connection: 'conn', operation: 'upsert', object: 'Case', recordFrom: 'alert', externalIdField: 'IoT_Alert_Id__c', wires: [['ok'], ['failed']] },
    { id: 'ok', type: 'helper' },
    { id: 'failed', type: 'helper' },
  ];
  await helper.load([connectionNode, outNode], flow, { conn: { privateKey: sf.keys.privateKey } });
  const seen = { ok: [] as NodeMessage[], failed: [] as NodeMessage[] };
  helper.getNode('ok').on('input', (msg: NodeMessage) => seen.ok.push(msg));
  helper.getNode('failed').on('input', (msg: NodeMessage) => seen.failed.push(msg));
  const out = helper.getNode('out') as Node & { receive(msg: NodeMessage): void };
  const before = sf.sandbox.stats().apiCalls;
  for (let i = 0; i < ALERTS; i++) {
    // A burst in ten waves, so that calls are under way while faults come.
    if (i % 1000 === 0 && i > 0) await sleep(40);
    during?.(i);
    out.receive({
      topic: `pump-${i % 500}`,
      device: { id: `pump-${i % 500}`, meta: {} },
      alert: { id: `load-${i}`, key: `pump-${i % 500}`, reading: 'temperature', rule: 'above', severity: i % 3 === 0 ? 'critical' : 'warning', state: 'raised', change: 'raised', value: 90 + (i % 10), threshold: 80, since: 1_795_300_000_000 + i, at: 1_795_300_000_000 + i, text: `temperature above 80 on pump-${i % 500} (${90 + (i % 10)})` },
    });
  }
  await eventually('every alert answered', () => (seen.ok.length + seen.failed.length >= ALERTS ? true : undefined), 60_000, 50);
  return { ...seen, calls: sf.sandbox.stats().apiCalls - before };
}

function check(seen: { ok: NodeMessage[]; failed: NodeMessage[] }): void {
  expect(seen.failed).toEqual([]);
  expect(seen.ok).toHaveLength(ALERTS);
  const cases = sf.sandbox.records('Case');
  const alertIds = cases.map((c) => c.IoT_Alert_Id__c as string);
  expect(new Set(alertIds).size).toBe(cases.length);
  expect(cases).toHaveLength(ALERTS);
  // Each message carries the id of its own alert's Case.
  const caseOf = new Map(cases.map((c) => [c.IoT_Alert_Id__c, c.Id]));
  for (const msg of seen.ok) expect((msg.salesforce as { id: string }).id).toBe(caseOf.get((msg.alert as { id: string }).id));
}

describe('10,000 alerts', () => {
  it('become 10,000 Cases in at most 60 API calls, with no duplicate and none lost', async () => {
    const seen = await run('90');
    check(seen);
    expect(seen.calls).toBeLessThanOrEqual(60);
  });

  it('still do under 503 bursts, row locks, lost answers and a token expiry in the middle', async () => {
    const loginsBefore = sf.sandbox.stats().logins;
    const seen = await run('89', (i) => {
      if (i === 1000) sf.sandbox.faults.inject({ unavailable: 3 });
      if (i === 3000) sf.sandbox.faults.inject({ rowLocks: 5 });
      if (i === 5000) sf.sandbox.faults.inject({ lostAnswers: 2 });
      if (i === 7000) sf.sandbox.expireTokens();
    });
    check(seen);
    expect(sf.sandbox.stats().faults).toEqual({ unavailable: 3, rowLocks: 5, lostAnswers: 2 });
    // The login at deploy, and one renewal after the expiry.
    expect(sf.sandbox.stats().logins - loginsBefore).toBe(2);
    // 50 calls, the failed ones again, and the row-locked records in a call of their own.
    expect(seen.calls).toBeLessThanOrEqual(60);
  });
});
