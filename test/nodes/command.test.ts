/**
 * iot-command in a Node-RED runtime, carrying commands through a real iot-mqtt-broker to mqtt.js
 * devices that execute them (each id once, never after its expiry) and answer on their reply
 * topic: the life of a command as the flow sees it, one at a time per device and in order, an id
 * taken once, expiry, only the device or its owner answering, a device that is away getting its
 * command when it is back, and the commands surviving a restart. Then from Salesforce and back: a
 * command record created in the local sandbox (through iot-salesforce-in) reaches the device and
 * its status and a Case comment are written back (through iot-salesforce-out).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import commandNode from '../../nodes/command/command';
import registryNode from '../../nodes/device-registry/device-registry';
import mqttBrokerNode from '../../nodes/mqtt-broker/mqtt-broker';
import connectionNode from '../../nodes/salesforce-connection/salesforce-connection';
import inNode from '../../nodes/salesforce-in/salesforce-in';
import outNode from '../../nodes/salesforce-out/salesforce-out';
import { settleDelivery } from '../../nodes/shared/delivery';
import { helper } from '../support/node-red';
import { CONSUMER_KEY, startTestSandbox, testAssertion, testKeys, USERNAME, type TestSandbox } from '../support/salesforce';
import { freePort } from '../support/services';
import { eventually, sleep } from '../support/wait';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;

const KEYS: Record<string, string> = { 'pump-1': 'key-for-pump-1-0123456789abcdef', 'pump-2': 'key-for-pump-2-0123456789abcdef', 'gw-1': 'key-for-gw-1-0123456789abcdefgh' };
const devices = [
  { id: 'pump-1', enabled: true },
  { id: 'pump-2', enabled: true },
  { id: 'gw-1', enabled: true },
  { id: 's-1', enabled: true, gateway: 'gw-1' },
  { id: 'old-1', enabled: false },
];
const secrets = Object.fromEntries(Object.entries(KEYS).map(([id, apiKey]) => [id, { apiKey }]));

let userDir: string;
let port: number;
const clients: MqttClient[] = [];

/** A stand-in for the Salesforce writer: settles each write it gets (ok), as iot-salesforce-out does once written. */
function testSettler(RED: NodeAPI): void {
  RED.nodes.registerType('test-settler', function (this: Node, config: object) {
    RED.nodes.createNode(this, config as never);
    this.on('input', (msg: NodeMessage) => settleDelivery(RED, msg, { ok: true }));
  });
}

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});
beforeEach(async () => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-command-'));
  helper.settings({ userDir });
  port = await freePort();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

interface Outputs {
  changes: NodeMessage[];
  records: NodeMessage[];
  comments: NodeMessage[];
  rejected: NodeMessage[];
}

/** Broker -> command (replies and online events) and command -> broker (commands to devices). */
function flow(command: Record<string, unknown> = {}): Flow {
  return [
    { id: 'registry', type: 'iot-device-registry', source: 'list', devices },
    { id: 'broker', type: 'iot-mqtt-broker', registry: 'registry', host: '127.0.0.1', port, wires: [['command'], ['command'], []] },
    { id: 'command', type: 'iot-command', registry: 'registry', wires: [['changes'], ['broker'], ['records', 'settler'], ['comments', 'settler'], ['rejected']], ...command },
    { id: 'settler', type: 'test-settler' },
    ...['changes', 'records', 'comments', 'rejected'].map((id) => ({ id, type: 'helper' })),
  ];
}

async function load(command?: Record<string, unknown>): Promise<Outputs> {
  await helper.load([registryNode, mqttBrokerNode, commandNode, testSettler], flow(command), { registry: { secrets: JSON.stringify(secrets) } });
  const out: Outputs = { changes: [], records: [], comments: [], rejected: [] };
  for (const id of Object.keys(out) as Array<keyof Outputs>) helper.getNode(id).on('input', (msg: NodeMessage) => out[id].push(msg));
  await eventually('the broker listening', () => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username: 'x', password: 'y' }).then(() => true, (err: Error) => (/refused|Not authorized|Bad username/i.test(err.message) ? true : undefined)));
  return out;
}

/**
 * A device as a simulator plays it: a persistent session on its command topic; executes a command
 * id once (a command sent again is answered, not executed again), never one past its expiresAt,
 * and answers on its reply topic.
 */
interface TestDevice {
  client: MqttClient;
  executed: string[];
  received: string[];
  end(): Promise<void>;
}

async function device(id: string, options: { answer?: boolean } = {}, executed: string[] = []): Promise<TestDevice> {
  // The handler is set before the CONNACK: a persistent session's kept messages follow it at once.
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password: KEYS[id], clean: false, reconnectPeriod: 0 });
  clients.push(client);
  const received: string[] = [];
  client.on('message', (_topic, payload) => {
    const command = JSON.parse(payload.toString()) as { id: string; name: string; args: unknown; expiresAt: string };
    received.push(command.id);
    if (options.answer === false) return;
    const reply = (status: string, extra: Record<string, unknown> = {}) => client.publish(`devices/${id}/replies`, JSON.stringify({ id: command.id, status, ...extra }), { qos: 1 });
    if (executed.includes(command.id)) reply('done', { result: 'executed before' });
    else if (Date.parse(command.expiresAt) <= Date.now()) reply('expired', { reason: 'came after its expiry' });
    else {
      executed.push(command.id);
      reply('delivered');
      reply('done', { result: { [command.name]: command.args } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
  return { client, executed, received, end: () => client.endAsync(true) };
}

const lifeOf = (out: Outputs, id: string) => out.changes.filter((m) => (m.payload as { id: string }).id === id).map((m) => (m.payload as { state: string }).state);
const ended = (out: Outputs, id: string, state = 'done') => eventually(`${id} ${state}`, () => (lifeOf(out, id).includes(state) ? true : undefined), 10_000);

describe('iot-command over MQTT', () => {
  it('carries a command to its device at QoS 1 and tracks it: queued, sent, delivered, done, written back', async () => {
    const out = await load();
    const pump = await device('pump-1');
    helper.getNode('command').receive({ command: { id: 'c1', device: 'pump-1', name: 'set_interval', args: { seconds: 5 }, caseId: '500000000000001AAA' } } as NodeMessage);
    await ended(out, 'c1');
    expect(lifeOf(out, 'c1')).toEqual(['queued', 'sent', 'delivered', 'done']);
    expect(pump.executed).toEqual(['c1']);
    expect(out.changes.at(-1)?.payload).toMatchObject({ id: 'c1', device: 'pump-1', state: 'done', from: 'delivered', result: { set_interval: { seconds: 5 } } });
    // A flow command has no record; its Case gets a comment when taken and when done.
    expect(out.records).toEqual([]);
    await eventually('two comments', () => (out.comments.length === 2 ? true : undefined));
    expect(out.comments.map((m) => (m.payload as { ParentId: string }).ParentId)).toEqual(['500000000000001AAA', '500000000000001AAA']);
    expect(String((out.comments[1].payload as { CommentBody: string }).CommentBody)).toMatch(/^Command: set_interval \{"seconds":5\} to pump-1\.\nDone at /);
    expect(out.rejected).toEqual([]);
  });

  it('sends a device its commands one at a time and in order, and takes a command id once', async () => {
    const out = await load();
    const pump = await device('pump-1', { answer: false });
    const node = helper.getNode('command');
    for (const id of ['a', 'b', 'c']) node.receive({ command: { id, device: 'pump-1', name: 'reboot' } } as NodeMessage);
    node.receive({ command: { id: 'a', device: 'pump-1', name: 'reboot' } } as NodeMessage);
    await eventually('a received', () => (pump.received.length === 1 ? true : undefined));
    await sleep(300);
    // Only the head is sent while it is not answered.
    expect(pump.received).toEqual(['a']);
    for (const id of ['a', 'b', 'c']) {
      await eventually(`${id} received`, () => (pump.received.includes(id) ? true : undefined));
      pump.client.publish('devices/pump-1/replies', JSON.stringify({ id, status: 'done' }), { qos: 1 });
      await ended(out, id);
    }
    expect(pump.received).toEqual(['a', 'b', 'c']);
    expect(lifeOf(out, 'a')).toEqual(['queued', 'sent', 'done']);
    expect(out.changes.filter((m) => (m.payload as { state: string }).state === 'queued')).toHaveLength(3);
  });

  it('lets no other device answer for a command, and refuses an unknown device', async () => {
    const out = await load();
    await device('pump-1', { answer: false });
    const other = await device('pump-2', { answer: false });
    const node = helper.getNode('command');
    node.receive({ command: { id: 'c1', device: 'pump-1', name: 'reboot' } } as NodeMessage);
    node.receive({ command: { id: 'c2', device: 'pump-404', name: 'reboot' } } as NodeMessage);
    node.receive({ command: { id: 'c3', device: 'old-1', name: 'reboot' } } as NodeMessage);
    await eventually('c1 sent', () => (lifeOf(out, 'c1').includes('sent') ? true : undefined));
    other.client.publish('devices/pump-2/replies', JSON.stringify({ id: 'c1', status: 'done' }), { qos: 1 });
    await eventually('three refusals', () => (out.rejected.length === 3 ? true : undefined));
    expect(out.rejected.map((m) => (m.error as { code: string }).code).sort()).toEqual(['device_disabled', 'not_owner', 'unknown_device']);
    expect(lifeOf(out, 'c1')).toEqual(['queued', 'sent']);
    expect(lifeOf(out, 'c2')).toEqual(['failed']);
  });

  it("carries a sensor's command to its gateway, which may answer for it", async () => {
    const out = await load();
    const gateway = await device('gw-1', { answer: false });
    helper.getNode('command').receive({ command: { id: 'g1', device: 's-1', name: 'light', args: { on: true } } } as NodeMessage);
    await eventually('the gateway got it', () => (gateway.received.length === 1 ? true : undefined));
    gateway.client.publish('devices/gw-1/replies', JSON.stringify({ id: 'g1', status: 'done' }), { qos: 1 });
    await ended(out, 'g1');
    expect(out.changes[0].payload).toMatchObject({ device: 's-1' });
    expect((out.changes[0].command as { owner: string }).owner).toBe('gw-1');
  });

  it('gives a device that is away its command when it is back, and expires one it is not back for, which it never executes', async () => {
    const out = await load();
    // Known to the broker (a persistent session), then away.
    const executed: string[] = [];
    await (await device('pump-1', {}, executed)).end();
    const node = helper.getNode('command');
    node.receive({ command: { id: 'soon', device: 'pump-1', name: 'reboot', expiresIn: 1 } } as NodeMessage);
    await ended(out, 'soon', 'expired');
    node.receive({ command: { id: 'later', device: 'pump-1', name: 'set_interval', args: { seconds: 10 } } } as NodeMessage);
    await eventually('later sent', () => (lifeOf(out, 'later').includes('sent') ? true : undefined));
    await sleep(200);
    const back = await device('pump-1', {}, executed);
    await ended(out, 'later');
    expect(executed).toEqual(['later']);
    expect(lifeOf(out, 'soon')).toEqual(['queued', 'sent', 'expired']);
    expect(out.changes.find((m) => (m.payload as { id: string; state: string }).id === 'soon' && (m.payload as { state: string }).state === 'expired')?.payload).toMatchObject({ reason: 'not done before it expired' });
    // The expired command, kept by the broker's session, reached the device: refused there, by its expiry.
    expect(back.received).toContain('soon');
  });

  it('keeps its commands across a restart: one sent and not answered goes again, and is executed once', async () => {
    let out = await load();
    const executed: string[] = [];
    const silent = await device('pump-1', { answer: false });
    helper.getNode('command').receive({ command: { id: 'r1', device: 'pump-1', name: 'reboot' } } as NodeMessage);
    helper.getNode('command').receive({ command: { id: 'r2', device: 'pump-1', name: 'reboot' } } as NodeMessage);
    await eventually('r1 received', () => (silent.received.length === 1 ? true : undefined));
    await silent.end();
    await helper.unload();
    out = await load();
    await device('pump-1', {}, executed);
    await ended(out, 'r2');
    expect(executed).toEqual(['r1', 'r2']);
    expect(lifeOf(out, 'r1')).toEqual(['delivered', 'done']);
    expect(lifeOf(out, 'r2')).toEqual(['sent', 'delivered', 'done']);
  });

  it("sends a rule's command when an alert is raised to its severity, once per alert, limited per device, and comments on the Case the alert opened", async () => {
    const out = await load({ autoRules: [{ severity: 'critical', reading: 'temperature', command: 'reduce_power', args: '{"percent":50}', expiresIn: '300' }], autoInterval: '600' });
    const pump = await device('pump-1');
    const node = helper.getNode('command');
    const alert = (id: string, extra: Record<string, unknown> = {}) => ({ alert: { id, key: 'pump-1', state: 'raised', change: 'escalated', severity: 'critical', reading: 'temperature', value: 97 }, device: { id: 'pump-1' }, ...extra }) as unknown as NodeMessage;
    node.receive(alert('al-1'));
    await eventually('the automatic command executed', () => (pump.executed.length === 1 ? true : undefined));
    const id = pump.executed[0];
    await ended(out, id);
    expect(out.changes[0].command).toMatchObject({ name: 'reduce_power', args: { percent: 50 }, origin: { kind: 'automatic', alertId: 'al-1', because: 'temperature alert escalated to critical (97)' } });
    // The same alert again (a retry) sends nothing; another alert of the device within the interval is limited.
    node.receive(alert('al-1'));
    node.receive(alert('al-2'));
    await eventually('the limit said', () => (out.rejected.length === 1 ? true : undefined));
    expect(out.rejected[0].error).toMatchObject({ code: 'auto_limited' });
    // Wired after the Case writer: the alert's Case gets the comment of what was done.
    node.receive(alert('al-1', { salesforce: { object: 'Case', id: '500000000000007AAA', success: true } }));
    await eventually('a comment on the Case', () => (out.comments.length === 1 ? true : undefined));
    expect(out.comments[0].payload).toMatchObject({ ParentId: '500000000000007AAA', CommentBody: expect.stringMatching(/^Automatic action: reduce_power \{"percent":50\} to pump-1, because temperature alert escalated to critical \(97\)\.\nDone at /) });
    await sleep(300);
    expect(pump.executed).toEqual([id]);
  });

  it('refuses a command it cannot read on its error output, with a code', async () => {
    const out = await load();
    helper.getNode('command').receive({ command: { id: 'x', device: 'pump-1', name: '9lives' } } as NodeMessage);
    helper.getNode('command').receive({ payload: 'what' } as NodeMessage);
    await eventually('two refusals', () => (out.rejected.length === 2 ? true : undefined));
    expect(out.rejected.map((m) => (m.error as { code: string }).code)).toEqual(['bad_command', 'unknown_input']);
  });
});

describe('iot-command over HTTP', () => {
  it('hands a device its command in the answer to its next report, and takes its reply from a later one', async () => {
    const out = await load({ transport: 'http' });
    const answers: NodeMessage[] = [];
    helper.getNode('command').receive({ command: { id: 'h1', device: 'pump-1', name: 'light', args: { on: true } } } as NodeMessage);
    await eventually('queued', () => (lifeOf(out, 'h1').length === 1 ? true : undefined));
    const broker = helper.getNode('broker') as Node & { receive(msg: NodeMessage): void };
    // The second output goes to the broker in this flow: catch what it would publish instead.
    broker.receive = (msg: NodeMessage) => answers.push(msg);
    const report = (payload: unknown) => ({ device: { id: 'pump-1' }, req: { method: 'POST' }, res: {}, payload }) as unknown as NodeMessage;
    helper.getNode('command').receive(report({ temperature: 21 }));
    await eventually('the answer', () => (answers.length === 1 ? true : undefined));
    expect(answers[0].commands).toEqual([{ id: 'h1', device: 'pump-1', name: 'light', args: { on: true }, expiresAt: expect.any(String), seq: 1 }]);
    expect(answers[0].payload).toEqual({ temperature: 21 });
    expect(lifeOf(out, 'h1')).toEqual(['queued', 'sent']);
    helper.getNode('command').receive(report({ temperature: 22, replies: [{ id: 'h1', status: 'done', result: { on: true } }] }));
    await ended(out, 'h1');
    await eventually('the second answer', () => (answers.length === 2 ? true : undefined));
    expect(answers[1].commands).toEqual([]);
  });
});

describe('iot-command from Salesforce and back', () => {
  let sf: TestSandbox;
  beforeAll(async () => {
    sf = await startTestSandbox({ streamingHoldMs: 2_000 });
  });
  afterAll(async () => {
    await sf?.close();
  });

  it('carries a command record created in the org to the device, and writes its status and a Case comment back', async () => {
    const f: Flow = [
      { id: 'conn', type: 'iot-salesforce-connection', loginUrl: sf.sandbox.url, authMethod: 'jwt', consumerKey: CONSUMER_KEY, username: USERNAME },
      { id: 'in', type: 'iot-salesforce-in', connection: 'conn', channel: '/data/IoT_Command__ChangeEvent', wires: [['command'], []] },
      ...flow().map((n) => (n.id === 'command' ? { ...n, wires: [['changes'], ['broker'], ['records-out'], ['comments-out'], ['rejected']] } : n)),
      { id: 'records-out', type: 'iot-salesforce-out', connection: 'conn', operation: 'update', object: 'IoT_Command__c', recordFrom: 'payload', wires: [[], []] },
      { id: 'comments-out', type: 'iot-salesforce-out', connection: 'conn', operation: 'create', object: 'CaseComment', recordFrom: 'payload', wires: [[], []] },
    ];
    await helper.load([registryNode, mqttBrokerNode, commandNode, testSettler, connectionNode, inNode, outNode], f, { registry: { secrets: JSON.stringify(secrets) }, conn: { privateKey: testKeys().privateKey } });
    const out: Outputs = { changes: [], records: [], comments: [], rejected: [] };
    helper.getNode('changes').on('input', (msg: NodeMessage) => out.changes.push(msg));
    helper.getNode('rejected').on('input', (msg: NodeMessage) => out.rejected.push(msg));
    let inStatus: { fill?: string; text?: string } = {};
    const input = helper.getNode('in') as Node & { status(s: object): void };
    const original = input.status.bind(input);
    input.status = (s: object) => {
      inStatus = s as typeof inStatus;
      original(s);
    };
    const pump = await device('pump-1');
    await eventually('subscribed', () => (inStatus.fill === 'green' && /subscribed/.test(inStatus.text ?? '') ? true : undefined), 15_000);

    const { Connection } = await import('jsforce');
    const conn = new Connection({ loginUrl: sf.sandbox.url, version: '62.0' });
    await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(sf.sandbox.url) });
    const caseId = ((await conn.sobject('Case').create({ Subject: 'pump-1 overheating' })) as { id: string }).id;
    const recordId = ((await conn.sobject('IoT_Command__c').create({ Name: 'set_interval', Device__c: 'pump-1', Arguments__c: '{"seconds":5}', Case__c: caseId })) as { id: string }).id;
    await eventually('the command reaching the device', () => (pump.executed.length > 0 ? true : undefined), 15_000);
    expect(pump.executed).toEqual([recordId]);
    await eventually('Done in Salesforce', () => (sf.sandbox.records('IoT_Command__c').find((r) => r.Id === recordId)?.Status__c === 'Done' ? true : undefined), 15_000);
    const record = sf.sandbox.records('IoT_Command__c').find((r) => r.Id === recordId);
    expect(record).toMatchObject({ Status__c: 'Done', Result__c: '{"set_interval":{"seconds":5}}' });
    expect(typeof record?.Status_Time__c).toBe('string');
    await eventually('two Case comments', () => (sf.sandbox.records('CaseComment').filter((c) => c.ParentId === caseId).length === 2 ? true : undefined), 15_000);
    const comments = sf.sandbox.records('CaseComment').filter((c) => c.ParentId === caseId).map((c) => String(c.CommentBody));
    expect(comments[0]).toMatch(/^Command: set_interval \{"seconds":5\} to pump-1\.\nQueued at /);
    expect(comments[1]).toMatch(/^Command: set_interval \{"seconds":5\} to pump-1\.\nDone at /);
    // The pack's own status writes come back as record changes: ignored, nothing executed twice.
    await sleep(1_000);
    expect(pump.executed).toEqual([recordId]);
    expect(lifeOf(out, recordId)).toEqual(['queued', 'sent', 'delivered', 'done']);
    expect(out.rejected).toEqual([]);
  }, 60_000);
});
