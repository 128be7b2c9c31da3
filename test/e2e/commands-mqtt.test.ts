/**
 * The commands example (flows/commands-mqtt.json) in a real Node-RED with the local Salesforce
 * sandbox, and MQTT devices played as a simulator plays them (an id executed once, never after its
 * expiresAt): a command record an agent creates on a Case reaches its device, is done, and its
 * status, result and Case comments are in Salesforce; a command whose device is away past its
 * expiry is marked Expired in Salesforce and never executed, even when the broker hands it over
 * once the device is back.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceKeys, masterSecret } from '../../simulator/credentials';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';
import { testAssertion } from '../support/salesforce';
import { eventually, sleep } from '../support/wait';

const CHANNEL = '/data/IoT_Command__ChangeEvent';
const USERNAME = 'integration@sandbox.iot-patterns.local';

type SalesforceRecord = Record<string, unknown> & { Id: string };

let node: NodeRedProcess;
/** The first Node-RED, once a test killed it: its data folder is the second one's. */
let killed: NodeRedProcess | undefined;
let conn: import('jsforce').Connection;
let keys: DeviceKeys;
const clients: MqttClient[] = [];

beforeAll(async () => {
  const flow = JSON.parse(readFileSync(join(repoRoot, 'flows', 'commands-mqtt.json'), 'utf8')) as unknown[];
  node = await NodeRedProcess.start({ flows: flow });
  keys = new DeviceKeys(masterSecret(node.dataDir));
  await connected();
});

/** Logs in to the sandbox of the running Node-RED and waits for the flow's subscription. */
async function connected(): Promise<void> {
  const app = JSON.parse(readFileSync(join(node.dataDir, 'salesforce', 'connected-app.json'), 'utf8')) as { consumerKey: string };
  const privateKey = readFileSync(join(node.dataDir, 'salesforce', 'connected-app.key'), 'utf8');
  const { Connection } = await import('jsforce');
  conn = new Connection({ loginUrl: node.salesforceUrl, version: '62.0' });
  await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(node.salesforceUrl, { iss: app.consumerKey, sub: USERNAME, key: privateKey }) });
  // Commands made before the flow subscribed are not its (it starts with new events only).
  await eventually('the flow subscribed to command records', async () => {
    const stats = (await fetch(`${node.salesforceUrl}/_sandbox/streaming`).then((r) => r.json())) as { subscriptions: string[] };
    return stats.subscriptions.includes(CHANNEL) ? true : undefined;
  }, 60_000, 250);
}

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await node?.dispose();
  await killed?.dispose();
});

async function records(type: string): Promise<SalesforceRecord[]> {
  return (await fetch(`${node.salesforceUrl}/_sandbox/records?type=${type}`).then((r) => r.json())) as SalesforceRecord[];
}

async function record(type: string, id: string): Promise<SalesforceRecord | undefined> {
  return (await records(type)).find((r) => r.Id === id);
}

/** A device as the simulator plays it: executes a command id once, never one past its expiresAt, and answers. */
async function device(id: string, executed: string[] = [], options: { answer?: boolean } = {}): Promise<{ client: MqttClient; executed: string[]; received: string[] }> {
  // The handler is set before the CONNACK: a persistent session's kept messages follow it at once.
  const client = mqtt.connect(`mqtt://127.0.0.1:${node.brokerPorts.commands}`, { clientId: id, username: id, password: keys.apiKey(id), clean: false, reconnectPeriod: 0 });
  clients.push(client);
  const received: string[] = [];
  client.on('message', (_topic, payload) => {
    const command = JSON.parse(payload.toString()) as { id: string; name: string; args: Record<string, unknown>; expiresAt: string };
    received.push(command.id);
    const reply = (status: string, extra: Record<string, unknown> = {}) => client.publish(`devices/${id}/replies`, JSON.stringify({ id: command.id, status, ...extra }), { qos: 1 });
    if (executed.includes(command.id)) reply('done', { result: 'executed before' });
    else if (Date.parse(command.expiresAt) <= Date.now()) reply('expired', { reason: 'came after its expiry' });
    else {
      executed.push(command.id);
      // A device that is slow to answer: Node-RED may be gone before it does.
      if (options.answer !== false) reply('done', { result: { [command.name]: command.args } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
  return { client, executed, received };
}

async function createCase(subject: string): Promise<string> {
  return ((await conn.sobject('Case').create({ Subject: subject })) as { id: string }).id;
}

describe('the commands example flow', () => {
  it('carries a command record created on a Case to its MQTT device, and its status and comments are in Salesforce', async () => {
    const pump = await device('pump-17');
    const caseId = await createCase('pump-17 overheating');
    const recordId = ((await conn.sobject('IoT_Command__c').create({ Name: 'set_interval', Device__c: 'pump-17', Arguments__c: '{"seconds":5}', Case__c: caseId })) as { id: string }).id;
    const done = await eventually('the command Done in Salesforce', async () => {
      const r = await record('IoT_Command__c', recordId);
      return r?.Status__c === 'Done' ? r : undefined;
    }, 30_000);
    expect(pump.executed).toEqual([recordId]);
    expect(done).toMatchObject({ Status__c: 'Done', Result__c: '{"set_interval":{"seconds":5}}' });
    expect(Date.parse(String(done.Status_Time__c))).toBeGreaterThan(Date.now() - 60_000);
    const comments = await eventually('two comments on the Case', async () => {
      const found = (await records('CaseComment')).filter((c) => c.ParentId === caseId);
      return found.length >= 2 ? found : undefined;
    }, 15_000);
    expect(comments.map((c) => String(c.CommentBody).split('\n').slice(0, 2).join(' | '))).toEqual([
      expect.stringMatching(/^Command: set_interval \{"seconds":5\} to pump-17\. \| Queued at /),
      expect.stringMatching(/^Command: set_interval \{"seconds":5\} to pump-17\. \| Done at /),
    ]);
    // The flow's own status writes come back as record changes: nothing is executed twice.
    await sleep(2_000);
    expect(pump.executed).toEqual([recordId]);
    expect((await records('CaseComment')).filter((c) => c.ParentId === caseId)).toHaveLength(2);
  });

  it('marks a command Expired when its device is away past its expiry, and the device never executes it', async () => {
    // Known to the broker (a persistent session), then away.
    const executed: string[] = [];
    const first = await device('pump-18', executed);
    await first.client.endAsync(true);
    const caseId = await createCase('pump-18 vibrating');
    const expires = new Date(Date.now() + 4_000).toISOString();
    const recordId = ((await conn.sobject('IoT_Command__c').create({ Name: 'reboot', Device__c: 'pump-18', Expires__c: expires, Case__c: caseId })) as { id: string }).id;
    await eventually('the command Sent', async () => ((await record('IoT_Command__c', recordId))?.Status__c === 'Sent' ? true : undefined), 20_000);
    const expired = await eventually('the command Expired in Salesforce', async () => {
      const r = await record('IoT_Command__c', recordId);
      return r?.Status__c === 'Expired' ? r : undefined;
    }, 30_000);
    expect(expired.Result__c).toBe('not done before it expired');
    const back = await device('pump-18', executed);
    await eventually('the kept command handed over', () => (back.received.includes(recordId) ? true : undefined), 10_000);
    await sleep(1_000);
    expect(executed).toEqual([]);
    expect((await record('IoT_Command__c', recordId))?.Status__c).toBe('Expired');
    const comments = await eventually('two comments on the Case', async () => {
      const found = (await records('CaseComment')).filter((c) => c.ParentId === caseId);
      return found.length >= 2 ? found : undefined;
    }, 15_000);
    expect(String(comments[1].CommentBody)).toMatch(/\nExpired at .*: not done before it expired\./);
  });

  it('loses nothing and executes nothing twice when Node-RED is killed -9 between the event and the device\'s answer', async () => {
    const executed: string[] = [];
    const slow = await device('pump-19', executed, { answer: false });
    const caseId = await createCase('pump-19 noisy');
    const recordId = ((await conn.sobject('IoT_Command__c').create({ Name: 'reboot', Device__c: 'pump-19', Case__c: caseId })) as { id: string }).id;
    await eventually('the command executed, not yet answered', () => (executed.length === 1 ? true : undefined), 20_000);
    killed = node;
    await node.crash();
    await slow.client.endAsync(true);
    node = await NodeRedProcess.start({ dataDir: killed.dataDir });
    await connected();
    const back = await device('pump-19', executed);
    const done = await eventually('the command Done in Salesforce', async () => {
      const r = await record('IoT_Command__c', recordId);
      return r?.Status__c === 'Done' ? r : undefined;
    }, 30_000);
    expect(back.received).toContain(recordId);
    expect(executed).toEqual([recordId]);
    expect(done.Result__c).toBe('executed before');
    const comments = await eventually('the Done comment on the Case', async () => {
      const found = (await records('CaseComment')).filter((c) => c.ParentId === caseId);
      return found.some((c) => /\nDone at /.test(String(c.CommentBody))) ? found : undefined;
    }, 15_000);
    expect(comments.map((c) => String(c.CommentBody).split('\n')[1].split(' at ')[0])).toEqual(['Queued', 'Done']);
  });
});
