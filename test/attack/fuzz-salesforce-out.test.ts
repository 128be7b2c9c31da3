/**
 * iot-salesforce-out fuzzed: 10,000 hostile messages (seeded) into the alert-to-Case upsert the
 * pattern flows use, against the Salesforce sandbox on loopback, with Catch and Complete nodes
 * scoped to it: no crash, no unhandled rejection, every message done once (written, or refused
 * with a code its help lists), nothing polluted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import connectionNode from '../../nodes/salesforce-connection/salesforce-connection';
import outNode from '../../nodes/salesforce-out/salesforce-out';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems, readingMessage, type Hostile } from '../support/fuzz';
import { CONSUMER_KEY, startTestSandbox, USERNAME, type TestSandbox } from '../support/salesforce';

const CODES = ['rejected', 'unavailable', 'login_failed', 'invalid_input', 'too_deep', 'too_large', 'not_serializable', 'backlog_full', 'invalid_config'];
fuzzRuntime('salesforce-out');
let sf: TestSandbox;
beforeAll(async () => {
  sf = await startTestSandbox();
});
afterAll(async () => {
  await sf?.close();
});

/** An alert as iot-threshold sends it, each field hostile now and then; or anything at all. */
function alert(h: Hostile, n: number): unknown {
  if (h.chance(0.15)) return h.value();
  const field = (good: unknown) => (h.chance(0.85) ? good : h.value());
  return {
    id: field(`pump-${n % 50}:temperature:above:${n % 7}`),
    key: field(`pump-${n % 50}`),
    reading: field('temperature'),
    rule: field('above'),
    severity: field(h.pick(['warning', 'critical'])),
    state: field(h.pick(['raised', 'cleared'])),
    change: field(h.pick(['raised', 'escalated', 'deescalated', 'cleared'])),
    value: field(82.5),
    threshold: field(80),
    since: field(Date.now() - 60_000),
    at: field(Date.now()),
    text: field(`temperature above 80 on pump-${n % 50}`),
  };
}

it('takes 10,000 hostile messages: nothing crashes, every message is done once, every refusal is coded', async () => {
  const report = await fuzzNode({
    modules: [connectionNode, outNode],
    flow: [
      { id: 'conn', type: 'iot-salesforce-connection', loginUrl: sf.sandbox.url, authMethod: 'jwt', consumerKey: CONSUMER_KEY, username: USERNAME },
      { id: 'out', type: 'iot-salesforce-out', connection: 'conn', operation: 'upsert', object: 'Case', recordFrom: 'alert', externalIdField: 'IoT_Alert_Id__c', wires: [['written'], ['failed']] },
      { id: 'written', type: 'helper' },
      { id: 'failed', type: 'helper' },
    ],
    credentials: { conn: { privateKey: sf.keys.privateKey } },
    under: 'out',
    outputs: ['written'],
    errorOutputs: ['failed'],
    codes: CODES,
    count: 10_000,
    seed: 1205,
    message: (h, n) => {
      const msg = readingMessage(h);
      msg.alert = alert(h, n);
      if (h.chance(0.2) && msg.device !== null && typeof msg.device === 'object') (msg.device as Record<string, unknown>).meta = h.chance(0.5) ? { assetId: h.chance(0.5) ? '02i000000000001' : h.value(), company: h.value(), contactEmail: h.value() } : h.value();
      return msg;
    },
  });
  console.log(`fuzz salesforce-out: ${JSON.stringify({ sendMs: report.sendMs, settleMs: report.settleMs, codes: report.codes, outputs: report.outputs, generic: report.genericMessages })}`);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.accounted).toBe(10_000);
  expect(report.outputs.written).toBeGreaterThan(0);
});
