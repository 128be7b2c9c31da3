/**
 * The commands example as a user runs it, tested from the outside (README: iot-command, the
 * simulator; issue 17's proof): Node-RED running flows/commands-mqtt.json at its defaults, the local
 * Salesforce sandbox, and `npm run simulate -- commands` as its own process. A device that is away
 * when its command is sent gets it on return and it is done; a command whose expiry passes while
 * its device is away is Expired in Salesforce and never executed, even when the broker hands it
 * over on return; a command record changed again (its own status writes, an agent's edit, even its
 * status set back to New) is executed once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';
import { testAssertion } from '../support/salesforce';
import { eventually, sleep } from '../support/wait';

const CHANNEL = '/data/IoT_Command__ChangeEvent';
const USERNAME = 'integration@sandbox.iot-patterns.local';

type SalesforceRecord = Record<string, unknown> & { Id: string };

/** `npm run simulate -- commands` (what it runs after its build), and everything it printed. */
interface Simulator {
  child: ChildProcess;
  output: string[];
}

let node: NodeRedProcess;
let conn: import('jsforce').Connection;
const simulators: Simulator[] = [];

beforeAll(async () => {
  const flow = JSON.parse(readFileSync(join(repoRoot, 'flows', 'commands-mqtt.json'), 'utf8')) as unknown[];
  node = await NodeRedProcess.start({ flows: flow });
  const app = JSON.parse(readFileSync(join(node.dataDir, 'salesforce', 'connected-app.json'), 'utf8')) as { consumerKey: string };
  const privateKey = readFileSync(join(node.dataDir, 'salesforce', 'connected-app.key'), 'utf8');
  const { Connection } = await import('jsforce');
  conn = new Connection({ loginUrl: node.salesforceUrl, version: '62.0' });
  await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(node.salesforceUrl, { iss: app.consumerKey, sub: USERNAME, key: privateKey }) });
  await eventually('the flow subscribed to command records', async () => {
    const stats = (await fetch(`${node.salesforceUrl}/_sandbox/streaming`).then((r) => r.json())) as { subscriptions: string[] };
    return stats.subscriptions.includes(CHANNEL) ? true : undefined;
  }, 60_000, 250);
});

afterAll(async () => {
  await Promise.all(simulators.splice(0).map(stopSimulator));
  await node?.dispose();
});

/** Devices pump-01... against the running example's broker, as the README runs them. */
async function startSimulator(devices: number): Promise<Simulator> {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/scripts/simulate.js'), 'commands', '--devices', String(devices), '--duration', '120'], {
    env: { ...process.env, IOT_COMMANDS_MQTT_PORT: String(node.brokerPorts.commands), IOT_DATA_DIR: node.dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const simulator = { child, output: [] as string[] };
  simulators.push(simulator);
  const keep = (chunk: Buffer) => simulator.output.push(...chunk.toString().split('\n').filter(Boolean));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  await eventually('the simulator started', () => (simulator.output.some((l) => l.startsWith('simulating ')) ? true : undefined), 20_000);
  // It prints nothing once its devices are connected and subscribed. A device's very first
  // connection must have subscribed before its first command is published, or the broker (no
  // session yet) drops it: time for that, as a person takes before creating a record.
  await sleep(3_000);
  return simulator;
}

/** Ctrl-C, as a user stops it: its devices disconnect, their persistent sessions stay on the broker. */
async function stopSimulator(simulator: Simulator): Promise<void> {
  const index = simulators.indexOf(simulator);
  if (index >= 0) simulators.splice(index, 1);
  if (simulator.child.exitCode !== null || simulator.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => simulator.child.once('exit', () => resolve()));
  simulator.child.kill('SIGINT');
  await Promise.race([exited, sleep(10_000).then(() => simulator.child.kill('SIGKILL'))]);
  await exited;
}

/** The lines where a device says it executes the command `id`. */
function executions(simulators: Simulator[], id: string): string[] {
  return simulators.flatMap((s) => s.output).filter((line) => line.includes(': executing ') && line.endsWith(`(${id})`));
}

async function record(id: string): Promise<SalesforceRecord | undefined> {
  const records = (await fetch(`${node.salesforceUrl}/_sandbox/records?type=IoT_Command__c`).then((r) => r.json())) as SalesforceRecord[];
  return records.find((r) => r.Id === id);
}

async function status(id: string, wanted: string, timeoutMs = 20_000): Promise<SalesforceRecord> {
  return eventually(`command ${id} ${wanted} in Salesforce`, async () => {
    const found = await record(id);
    return found?.Status__c === wanted ? found : undefined;
  }, timeoutMs);
}

const caseOf = new Map<string, string>();

async function command(name: string, device: string, fields: { args?: unknown; expires?: Date } = {}): Promise<string> {
  const caseId = ((await conn.sobject('Case').create({ Subject: `${device} needs ${name}` })) as { id: string }).id;
  const id = ((await conn.sobject('IoT_Command__c').create({
    Name: name,
    Device__c: device,
    Case__c: caseId,
    ...(fields.args === undefined ? {} : { Arguments__c: JSON.stringify(fields.args) }),
    ...(fields.expires === undefined ? {} : { Expires__c: fields.expires.toISOString() }),
  })) as { id: string }).id;
  caseOf.set(id, caseId);
  return id;
}

/** The first line of each comment on a command's Case after its first line: Queued at..., Done at... */
async function caseComments(id: string): Promise<string[]> {
  const comments = (await fetch(`${node.salesforceUrl}/_sandbox/records?type=CaseComment`).then((r) => r.json())) as SalesforceRecord[];
  return comments.filter((c) => c.ParentId === caseOf.get(id)).map((c) => String(c.CommentBody).split('\n')[1].split(' at ')[0]);
}

describe('the commands example with the simulator, from the outside', () => {
  it('a device away when its command is sent gets it on return and it is done; one whose expiry passed while away is Expired and never executed', async () => {
    const first = await startSimulator(2);
    // Each device known to the broker (a persistent session) by a command it has done.
    const hello1 = await command('set_interval', 'pump-01', { args: { seconds: 2 } });
    const hello2 = await command('set_interval', 'pump-02', { args: { seconds: 2 } });
    await status(hello1, 'Done');
    await status(hello2, 'Done');
    await stopSimulator(first);

    const light = await command('light', 'pump-01', { args: { on: true, colour: 'green' } });
    const reboot = await command('reboot', 'pump-02', { expires: new Date(Date.now() + 3_000) });
    await status(light, 'Sent');
    await status(reboot, 'Sent');
    const expired = await status(reboot, 'Expired', 20_000);
    expect(expired.Result__c).toBe('not done before it expired');
    // Still away: not done by anyone.
    expect((await record(light))?.Status__c).toBe('Sent');

    const second = await startSimulator(2);
    const done = await status(light, 'Done');
    expect(JSON.parse(String(done.Result__c))).toEqual({ light: { on: true, colour: 'green' } });
    expect(executions([second], light)).toHaveLength(1);
    // A command after the expired one: the broker hands over what it kept for pump-02 first.
    const after = await command('light', 'pump-02', { args: { on: false, colour: 'white' } });
    await status(after, 'Done');
    expect(executions([first, second], reboot)).toEqual([]);
    expect(second.output.join('\n')).not.toMatch(/reboot/);
    expect((await record(reboot))?.Status__c).toBe('Expired');
    await eventually('the Case says the reboot expired, and nothing after', async () => ((await caseComments(reboot)).length >= 2 ? true : undefined), 10_000);
    expect(await caseComments(reboot)).toEqual(['Queued', 'Expired']);
    await eventually('the Case says the light was done', async () => ((await caseComments(light)).length >= 2 ? true : undefined), 10_000);
    expect(await caseComments(light)).toEqual(['Queued', 'Done']);
    await stopSimulator(second);
  });

  it('a command record changed again (an edit, its status set back to New) is executed once', async () => {
    const simulator = await startSimulator(3);
    const id = await command('set_threshold', 'pump-03', { args: { temperature: 80 } });
    const done = await status(id, 'Done');
    expect(executions([simulator], id)).toHaveLength(1);
    // The same command delivered again as record changes: an agent edits it, then sets it back to New.
    await conn.sobject('IoT_Command__c').update({ Id: id, Arguments__c: JSON.stringify({ temperature: 70 }) });
    await conn.sobject('IoT_Command__c').update({ Id: id, Status__c: 'New' });
    // A later command to the same device is done: anything sent before it has reached the device.
    const later = await command('light', 'pump-03', { args: { on: true, colour: 'blue' } });
    await status(later, 'Done');
    await sleep(2_000);
    // The device would answer a repeat without executing it: what shows that the node did not take
    // the command again is Salesforce (no new status, no new comment on the Case).
    expect(executions([simulator], id)).toHaveLength(1);
    expect(await caseComments(id)).toEqual(['Queued', 'Done']);
    expect((await record(id))?.Status_Time__c).toBe(done.Status_Time__c);
    expect(executions([simulator], later)).toHaveLength(1);
    expect((await record(id))?.Result__c).toBe(done.Result__c);
    await stopSimulator(simulator);
  });
});
