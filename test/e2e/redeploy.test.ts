/**
 * Deploys while devices report, through the admin API as the editor's Deploy makes them: a full
 * deploy, then a "modified flows" deploy that restarts the Buffered and Gateway tabs (their MQTT
 * brokers included). Devices live through a deploy as real ones do: MQTT devices reconnect and
 * send again what was not acknowledged, HTTP senders try again after a 503. So no device is taken
 * for silent, every device goes on being heard, and the endpoints never answer 404 meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceKeys, masterSecret } from '../../simulator/credentials';
import { Simulation, type Report } from '../../simulator/run';
import { PATTERNS } from '../../simulator/scenarios';
import { NodeRedProcess } from '../support/node-red-process';
import { sleep } from '../support/wait';

/** The Buffered flow's rule: a device silent for 30 s opens a Case. */
const SILENCE_MS = 30_000;
const ENDPOINTS = ['/direct/report', '/cloudy/callback', '/augmented/inspection', '/partners/callback', '/double/readings'];

type FlowNode = Record<string, unknown> & { id: string; type: string };

let node: NodeRedProcess;
let simulation: Simulation;
/** The simulation's report; undefined when it did not finish within a minute of being stopped. */
let report: Report | undefined;
const lines: string[] = [];
const deployedAt: Record<'full' | 'flows', number> = { full: 0, flows: 0 };
let silenceCases: Array<Record<string, unknown>> = [];
/** What the endpoints answered to requests sent while each deploy ran (without credentials: 401 once the flows run). */
const answersDuringDeploys: string[] = [];

async function flows(): Promise<FlowNode[]> {
  const response = await fetch(`${node.editorUrl}/flows`);
  expect(response.status).toBe(200);
  return (await response.json()) as FlowNode[];
}

/** Deploys, and meanwhile (and for 3 s after) keeps asking the HTTP endpoints, as senders do. */
async function deployWhileSending(changed: FlowNode[], type: 'full' | 'flows'): Promise<void> {
  let sending = true;
  const senders = ENDPOINTS.map(async (path) => {
    while (sending) {
      try {
        const response = await fetch(`${node.editorUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(10_000) });
        await response.arrayBuffer();
        answersDuringDeploys.push(`${response.status}${response.headers.has('retry-after') ? ' Retry-After' : ''}`);
      } catch (err) {
        // A connection closed under the request is something a sender retries; no answer at all is not.
        if ((err as Error).name === 'TimeoutError') answersDuringDeploys.push(`${path}: no answer within 10 s`);
      }
      await sleep(50);
    }
  });
  deployedAt[type] = Date.now();
  await node.deploy(changed, type);
  await sleep(3_000);
  sending = false;
  await Promise.all(senders);
}

beforeAll(async () => {
  node = await NodeRedProcess.start();
  simulation = new Simulation({
    patterns: PATTERNS,
    devices: 3,
    rate: 0.5,
    duration: Infinity,
    bad: false,
    seed: 11,
    // The devices' own silences off: any silence Case would be the deploy's doing.
    model: { silenceChance: 0 },
    keys: new DeviceKeys(masterSecret(node.dataDir)),
    target: { http: node.editorUrl, brokerHost: '127.0.0.1', brokerPorts: { buffered: node.brokerPorts.buffered, gateway: node.brokerPorts.gateway } },
    summaryEveryMs: 10_000,
    urls: { editor: `${node.editorUrl}/` },
    log: (line) => lines.push(line),
  });
  const done = simulation.run();
  await sleep(15_000);
  await deployWhileSending(await flows(), 'full');
  await sleep(20_000);
  // A changed node in each MQTT tab: a "modified flows" deploy restarts those tabs and their brokers.
  const edited = (await flows()).map((n) => (n.type === 'iot-mqtt-broker' && ['buffered.broker', 'gateway.broker'].includes(n.id) ? { ...n, name: `${String(n.name)} (edited)` } : n));
  await deployWhileSending(edited, 'flows');
  // Past the silence window after the last deploy, with room for the flow to open a Case.
  await sleep(SILENCE_MS + 12_000);
  const cases = (await fetch(`${node.salesforceUrl}/_sandbox/records?type=Case`).then((r) => r.json())) as Array<Record<string, unknown>>;
  silenceCases = cases.filter((c) => /silent/i.test(String(c.Subject)));
  simulation.stop();
  report = await Promise.race([done, sleep(60_000).then(() => undefined)]);
}, 300_000);

afterAll(async () => {
  await node?.dispose();
});

describe('a deploy while devices report', () => {
  it('opens no silence Case: every MQTT device came back within seconds', () => {
    expect(silenceCases.map((c) => `${String(c.IoT_Device_Id__c)}: ${String(c.Subject)}`)).toEqual([]);
  });

  it('hears every device after the last deploy, and acknowledges everything the devices sent', () => {
    expect(report, 'the simulation finished within a minute of being stopped (no message waiting forever)').toBeDefined();
    const honest = (report as Report).sent.filter((s) => !s.bad);
    const after = honest.filter((s) => s.at > deployedAt.flows + 5_000 && s.accepted);
    const heard = new Set(after.map((s) => s.pattern));
    expect([...PATTERNS].filter((p) => !heard.has(p))).toEqual([]);
    const notAcknowledged = honest.filter((s) => !s.accepted).map((s) => `${s.pattern} ${s.sender} at ${new Date(s.at).toISOString()}: ${String(s.status)}${s.code ? ` ${s.code}` : ''}`);
    expect(notAcknowledged).toEqual([]);
  });

  it('reports what was sent, acknowledged, refused and resent, one summary line per interval with the addresses', () => {
    expect(report, 'the simulation finished within a minute of being stopped').toBeDefined();
    for (const t of Object.values((report as Report).totals)) expect(t).toMatchObject({ refused: 0, waiting: 0, unacknowledged: 0, resent: expect.any(Number) });
    expect(lines.length).toBeGreaterThanOrEqual(5);
    for (const line of lines) expect(line).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d · \\d+ sent, \\d+ acknowledged, \\d+ refused(, \\d+ waiting)?(, \\d+ unacknowledged)?, \\d+ resent( · .*)? · editor ${node.editorUrl}/$`));
  });

  it('answers 503 with Retry-After while a deploy restarts the endpoints, never 404', () => {
    expect(answersDuringDeploys.length).toBeGreaterThan(50);
    expect(answersDuringDeploys.filter((answer) => answer !== '401' && answer !== '503 Retry-After')).toEqual([]);
  });
});
