/**
 * iot-mqtt-broker in a Node-RED runtime with real mqtt.js clients: CONNECT with good and bad API
 * keys, JWTs and SAS tokens, client ids, topic rules (publish, subscribe, gateways), events,
 * device publishes into the flow and commands out of it, the broker identity checked by
 * iot-device-auth (and a forged one refused), revocation, and a persistent QoS 1 session that
 * survives a redeploy.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as connectSocket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import { signSas } from '../../nodes/device-registry/sas';
import mqttBrokerNode from '../../nodes/mqtt-broker/mqtt-broker';
import type { Outcome } from '../../nodes/shared/delivery';
import { deviceJwt, keyPairs, nowSeconds } from '../support/device-credentials';
import { helper } from '../support/node-red';
import { freePort } from '../support/services';
import { eventually, sleep } from '../support/wait';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;

const SECRET = 'a-shared-secret-of-32-characters';
const KEYS = { 'pump-1': 'key-for-pump-1-0123456789abcdef', 'pump-2': 'key-for-pump-2-0123456789abcdef', 'gw-1': 'key-for-gw-1-0123456789abcdefgh', 'old-1': 'key-for-old-1-0123456789abcdef' };
const devices = [
  { id: 'pump-1', enabled: true, meta: '{"assetId":"02i000000000001","thresholds":{"temperature":{"warning":70}}}' },
  { id: 'pump-2', enabled: true },
  { id: 'cam-1', enabled: true, publicKey: keyPairs().es256.pem },
  { id: 'gw-1', enabled: true },
  { id: 's-1', enabled: true, gateway: 'gw-1', meta: '{"assetId":"02iS1"}' },
  { id: 'gw-1:s-01', enabled: true, gateway: 'gw-1' },
  { id: 'old-1', enabled: false },
];
const secrets = Object.fromEntries([...Object.entries(KEYS).map(([id, apiKey]) => [id, { apiKey, ...(id === 'pump-1' ? { secret: SECRET } : {}) }])]);

let userDir: string;
let port: number;
const clients: MqttClient[] = [];

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});
beforeEach(async () => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-broker-'));
  helper.settings({ userDir });
  port = await freePort();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

interface Outputs {
  published: NodeMessage[];
  events: NodeMessage[];
  authenticated: NodeMessage[];
  rejected: NodeMessage[];
  refusedPublishes: NodeMessage[];
}

function flow(broker: Record<string, unknown> = {}, registry: Record<string, unknown> = {}): Flow {
  return [
    { id: 'registry', type: 'iot-device-registry', source: 'list', devices, ...registry },
    { id: 'broker', type: 'iot-mqtt-broker', registry: 'registry', host: '127.0.0.1', port, wires: [['published', 'auth'], ['events'], ['refusedPublishes']], ...broker },
    { id: 'auth', type: 'iot-device-auth', method: 'broker', wires: [['authenticated'], ['rejected']] },
    ...['published', 'events', 'authenticated', 'rejected', 'refusedPublishes'].map((id) => ({ id, type: 'helper' })),
  ];
}

async function load(broker?: Record<string, unknown>, registry?: Record<string, unknown>): Promise<Outputs> {
  await helper.load([registryNode, mqttBrokerNode, deviceAuthNode], flow(broker, registry), { registry: { secrets: JSON.stringify(secrets) } });
  const out: Outputs = { published: [], events: [], authenticated: [], rejected: [], refusedPublishes: [] };
  for (const id of Object.keys(out) as Array<keyof Outputs>) helper.getNode(id).on('input', (msg: NodeMessage) => out[id].push(msg));
  await eventually('the broker listening', async () => ((await connectOrError('probe', 'x')) instanceof Error ? true : undefined));
  return out;
}

async function connect(id: string, password: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  clients.push(client);
  return client;
}

async function connectOrError(id: string, password: string, options: IClientOptions = {}): Promise<MqttClient | Error> {
  return connect(id, password, options).catch((err: Error) => err);
}

/** A CONNECT of MQTT 3.1.1 written byte by byte, which no client library will send with an empty id and a persistent session. */
function connectBytes(fields: { clientId: string; clean: boolean; username: string; password: Buffer }): Buffer {
  const text = (value: string | Buffer) => {
    const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value);
    return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
  };
  const flags = 0x80 | 0x40 | (fields.clean ? 0x02 : 0);
  const body = Buffer.concat([text('MQTT'), Buffer.from([4, flags, 0, 30]), text(fields.clientId), text(fields.username), text(fields.password)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** The CONNACK return code a hand-written CONNECT gets. */
async function rawConnack(fields: { clientId: string; clean: boolean; username: string; password: Buffer }): Promise<number> {
  const packet = connectBytes(fields);
  const socket = connectSocket(port, '127.0.0.1');
  try {
    return await new Promise<number>((resolve, reject) => {
      socket.once('data', (data) => (data[0] === 0x20 ? resolve(data[3]) : reject(new Error(`not a CONNACK: ${data.toString('hex')}`))));
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed without a CONNACK')));
      socket.write(packet);
    });
  } finally {
    socket.destroy();
  }
}

const eventsOf = (out: Outputs, kind: string) => out.events.filter((e) => e.topic === kind).map((e) => e.payload as Record<string, unknown>);
const brokerNode = () => helper.getNode('broker') as Node & { receive(msg: NodeMessage): void; settleDelivery(id: string, outcome: Outcome): void };
const authNode = () => helper.getNode('auth') as Node & { receive(msg: NodeMessage): void };

describe('iot-mqtt-broker', () => {
  it('lets a registered device in, delivers its publishes with its identity, and device-auth accepts it', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    await pump.publishAsync('devices/pump-1/telemetry', JSON.stringify({ temperature: 72 }), { qos: 1 });
    await eventually('the publish in the flow', () => (out.authenticated.length > 0 ? true : undefined));
    const published = out.published[0];
    expect(published).toMatchObject({ topic: 'devices/pump-1/telemetry', payload: { temperature: 72 }, qos: 1, retain: false });
    expect(published.device).toEqual({ id: 'pump-1', method: 'apikey', meta: { assetId: '02i000000000001', thresholds: { temperature: { warning: 70 } } } });
    expect(published._broker).toMatchObject({ node: 'broker', client: 'pump-1', device: 'pump-1' });
    expect(out.authenticated[0].device).toEqual(published.device);
    expect(out.authenticated[0]._broker).toBeUndefined();
    expect(eventsOf(out, 'online')).toEqual([{ event: 'online', clientId: 'pump-1', device: 'pump-1', address: '127.0.0.1' }]);
    expect(out.events.find((e) => e.topic === 'online')?.device).toMatchObject({ id: 'pump-1' });
    await pump.endAsync();
    await eventually('offline', () => (eventsOf(out, 'offline').length > 0 ? true : undefined));
  });

  it('refuses bad credentials and says why on the events output, never with the password', async () => {
    const out = await load();
    const wrong = await connectOrError('pump-1', 'guessed-key-0123456789abcdef');
    const unknown = await connectOrError('ghost-9', KEYS['pump-1']);
    const revoked = await connectOrError('old-1', KEYS['old-1']);
    const none = await connectOrError('pump-1', '');
    const foreignId = await connectOrError('pump-2', KEYS['pump-1'], { username: 'pump-1' });
    expect([wrong, unknown, revoked, none, foreignId].every((r) => r instanceof Error)).toBe(true);
    await eventually('five refusals', () => (eventsOf(out, 'refused').filter((e) => e.clientId !== 'probe').length >= 5 ? true : undefined));
    expect((wrong as Error & { code?: number }).code).toBe(4);
    expect((revoked as Error & { code?: number }).code).toBe(5);
    expect((foreignId as Error & { code?: number }).code).toBe(2);
    const refused = eventsOf(out, 'refused').filter((e) => e.clientId !== 'probe');
    expect(refused.map((e) => e.code)).toEqual(['bad_key', 'unknown_device', 'revoked', 'missing_credentials', 'wrong_subject']);
    expect(JSON.stringify(out.events)).not.toContain(KEYS['pump-1']);
    expect(JSON.stringify(out.events)).not.toContain('guessed-key');
  });

  it('accepts JWT and SAS passwords, with Azure-style usernames', async () => {
    const out = await load({ audience: 'mqtts://broker.example.com' });
    const token = await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1', aud: 'mqtts://broker.example.com' });
    const camera = await connect('cam-1', token);
    const sas = signSas(Buffer.from(SECRET), 'hub.example.com/devices/pump-1', nowSeconds() + 3600);
    const pump = await connect('pump-1', sas, { username: 'hub.example.com/pump-1/?api-version=2021-04-12' });
    await camera.publishAsync('devices/cam-1/image', 'ok');
    await pump.publishAsync('devices/pump-1/t', 'ok');
    await eventually('both publishes', () => (out.published.length >= 2 ? true : undefined));
    expect(out.published.map((m) => `${(m.device as { id: string }).id}/${(m.device as { method: string }).method}`).sort()).toEqual(['cam-1/jwt', 'pump-1/sas']);
    expect((out.published.find((m) => (m.device as { id: string }).id === 'cam-1')?.device as { claims: object }).claims).toMatchObject({ sub: 'cam-1' });
    const expired = await connectOrError('cam-1', await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1', aud: 'mqtts://broker.example.com', exp: nowSeconds() - 3600, iat: nowSeconds() - 3700 }));
    expect(expired).toBeInstanceOf(Error);
    expect(eventsOf(out, 'refused').map((e) => e.code)).toContain('expired');
  });

  it('keeps each device to its own topics: subscriptions refused, foreign publishes disconnected', async () => {
    const out = await load({ subscribeTopics: 'devices/{id}/commands/#' });
    const pump = await connect('pump-1', KEYS['pump-1']);
    const granted = await pump.subscribeAsync('devices/pump-1/commands/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    for (const foreign of ['devices/+/commands/#', '#']) {
      const refused = await pump.subscribeAsync(foreign, { qos: 1 }).catch((err: Error & { packet?: { granted?: number[] } }) => err.packet?.granted);
      expect(refused).toEqual([128]);
    }
    const closed = new Promise<void>((resolve) => pump.once('close', () => resolve()));
    pump.publish('devices/pump-2/telemetry', 'spoofed');
    await closed;
    await eventually('the denials', () => (eventsOf(out, 'denied').length >= 3 ? true : undefined));
    expect(eventsOf(out, 'denied').map((e) => `${e.action} ${e.topic}`)).toEqual(['subscribe devices/+/commands/#', 'subscribe #', 'publish devices/pump-2/telemetry']);
    expect(out.published).toEqual([]);
  });

  it('sends commands from the flow to subscribed devices', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    await pump.subscribeAsync('devices/pump-1/commands/#', { qos: 1 });
    const received = new Promise<string>((resolve) => pump.on('message', (topic, payload) => resolve(`${topic} ${payload.toString()}`)));
    brokerNode().receive({ topic: 'devices/pump-1/commands/reboot', payload: { delay: 5 }, qos: 1 } as NodeMessage);
    expect(await received).toBe('devices/pump-1/commands/reboot {"delay":5}');
    const rejectedInput: NodeMessage[] = [];
    await helper.unload();
    await helper.load([registryNode, mqttBrokerNode, deviceAuthNode], flow().map((n) => (n.id === 'broker' ? { ...n, wires: [[], [], ['rejectedInput']] } : n)).concat([{ id: 'rejectedInput', type: 'helper' }]), { registry: { secrets: JSON.stringify(secrets) } });
    helper.getNode('rejectedInput').on('input', (msg: NodeMessage) => rejectedInput.push(msg));
    brokerNode().receive({ topic: 'devices/+/commands', payload: 'x' } as NodeMessage);
    brokerNode().receive({ topic: 'devices/pump-1/commands', payload: 'x', qos: 3 } as NodeMessage);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    brokerNode().receive({ topic: 'devices/pump-1/commands', payload: circular } as NodeMessage);
    brokerNode().receive({ topic: 'devices/pump-1/commands', payload: { big: 10n } } as NodeMessage);
    await eventually('four rejections', () => (rejectedInput.length >= 4 ? true : undefined));
    expect(rejectedInput.map((m) => (m.error as { code: string }).code)).toEqual(['bad_topic', 'bad_qos', 'not_serializable', 'not_serializable']);
    expect(out.events.length).toBeGreaterThan(0);
  });

  it('lets a gateway publish for its sensors, delivered as the sensor', async () => {
    const out = await load();
    const gateway = await connect('gw-1', KEYS['gw-1']);
    await gateway.publishAsync('devices/s-1/telemetry', '{"temperature":19}', { qos: 1 });
    await eventually('the sensor reading', () => (out.authenticated.length > 0 ? true : undefined));
    expect(out.authenticated[0].device).toEqual({ id: 's-1', method: 'apikey', gateway: 'gw-1', meta: { assetId: '02iS1' } });
    const closed = new Promise<void>((resolve) => gateway.once('close', () => resolve()));
    gateway.publish('devices/pump-1/telemetry', 'not my sensor');
    await closed;
  });

  it('refuses a forged identity: a made-up mark, a copied mark, and a mark of an earlier broker', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    await pump.publishAsync('devices/pump-1/t', '1', { qos: 1 });
    await eventually('the publish', () => (out.published.length > 0 ? true : undefined));
    const mark = out.published[0]._broker as Record<string, string>;
    authNode().receive({ payload: 1, device: { id: 'pump-1' }, _broker: { ...mark, session: randomBytes(16).toString('hex') } } as NodeMessage);
    authNode().receive({ payload: 1, _broker: { ...mark, device: 'pump-2' } } as NodeMessage);
    authNode().receive({ payload: 1, _broker: { ...mark, node: 'auth' } } as NodeMessage);
    authNode().receive({ payload: 1, _broker: { ...mark, client: 'pump-2' } } as NodeMessage);
    authNode().receive({ payload: 1, device: { id: 'pump-2', method: 'apikey' } } as NodeMessage);
    authNode().receive({ payload: 1, _broker: { ...mark } } as NodeMessage);
    await eventually('seven answers', () => (out.rejected.length + out.authenticated.length >= 7 ? true : undefined));
    expect(out.rejected.map((m) => (m.error as { code: string }).code)).toEqual(Array(5).fill('not_authenticated'));
    expect(out.authenticated).toHaveLength(2);
    // A device may publish and disconnect at once: its messages are still vouched for.
    await pump.endAsync();
    await eventually('offline', () => (eventsOf(out, 'offline').length > 0 ? true : undefined));
    authNode().receive({ payload: 1, _broker: { ...mark } } as NodeMessage);
    await eventually('accepted after the disconnect', () => (out.authenticated.length >= 3 ? true : undefined));
    // A new broker (a redeploy) vouches for none of its predecessor's marks.
    await helper.unload();
    const again = await load();
    authNode().receive({ payload: 1, _broker: { ...mark } } as NodeMessage);
    await eventually('the old mark refused', () => (again.rejected.length >= 1 ? true : undefined));
    expect(again.authenticated).toEqual([]);
  });

  it('disconnects a device as soon as it is revoked', async () => {
    writeFileSync(join(userDir, 'revoked.txt'), '');
    const out = await load({}, { revokedFile: 'revoked.txt' });
    // The registry refuses everyone until it has read its revocation file.
    const pump = await eventually('pump-1 connected', () => connect('pump-1', KEYS['pump-1']).catch(() => undefined));
    const closed = new Promise<void>((resolve) => pump.once('close', () => resolve()));
    writeFileSync(join(userDir, 'revoked.txt'), 'pump-1\n');
    await closed;
    expect(await connectOrError('pump-1', KEYS['pump-1'])).toBeInstanceOf(Error);
    await eventually('the refusal as revoked', () => (eventsOf(out, 'refused').some((e) => e.code === 'revoked') ? true : undefined));
  });

  it('keeps a persistent QoS 1 session across a redeploy', async () => {
    await load();
    const subscriber = await connect('pump-1', KEYS['pump-1'], { clean: false });
    await subscriber.subscribeAsync('devices/pump-1/commands/#', { qos: 1 });
    await subscriber.endAsync();
    for (let i = 1; i <= 3; i++) brokerNode().receive({ topic: 'devices/pump-1/commands/set', payload: `setting ${i}`, qos: 1 } as NodeMessage);
    await sleep(100);
    await helper.unload();
    await load();
    const received: string[] = [];
    // Listening before the connection is up: queued messages follow the CONNACK at once.
    const again = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'pump-1', username: 'pump-1', password: KEYS['pump-1'], clean: false, reconnectPeriod: 0 });
    clients.push(again);
    again.on('message', (_topic, payload) => received.push(payload.toString()));
    await eventually('the queued messages', () => (received.length >= 3 ? true : undefined));
    expect(received).toEqual(['setting 1', 'setting 2', 'setting 3']);
  });

  it('does not let a gateway take over its sensor’s session, nor a client without an id keep one', async () => {
    const out = await load();
    const takeover = await connectOrError('gw-1:s-01', KEYS['gw-1'], { username: 'gw-1' });
    expect((takeover as Error & { code?: number }).code).toBe(2);
    const spare = await connect('gw-1:spare', KEYS['gw-1'], { username: 'gw-1' });
    expect(spare.connected).toBe(true);
    // mqtt.js will not send this (MQTT-3.1.3-8 makes it the server's to refuse): a CONNECT by hand.
    expect(await rawConnack({ clientId: '', clean: false, username: 'pump-1', password: Buffer.from(KEYS['pump-1']) })).toBe(2);
    const cleanNameless = await connect('', KEYS['pump-1'], { username: 'pump-1', clean: true });
    expect(cleanNameless.connected).toBe(true);
    await eventually('two refusals', () => (eventsOf(out, 'refused').filter((e) => e.clientId !== 'probe').length >= 2 ? true : undefined));
    expect(eventsOf(out, 'refused').filter((e) => e.clientId !== 'probe').map((e) => e.code)).toEqual(['wrong_subject', 'bad_client_id']);
  });

  it('answers a wrong password the same for registered and unknown ids', async () => {
    await load();
    const jwtOnly = await connectOrError('cam-1', 'guessed-key-0123456789abcdef');
    const unknown = await connectOrError('ghost-9', 'guessed-key-0123456789abcdef');
    const wrong = await connectOrError('pump-1', 'guessed-key-0123456789abcdef');
    expect([jwtOnly, unknown, wrong].map((r) => (r as Error & { code?: number }).code)).toEqual([4, 4, 4]);
  });

  it('refuses a will on a topic the device may not publish to, at CONNECT', async () => {
    const out = await load();
    const foreign = await connectOrError('pump-1', KEYS['pump-1'], { will: { topic: 'devices/pump-2/status', payload: Buffer.from('pump-2 is dead'), qos: 1, retain: true } });
    expect((foreign as Error & { code?: number }).code).toBe(5);
    const own = await connect('pump-1', KEYS['pump-1'], { will: { topic: 'devices/pump-1/status', payload: Buffer.from('offline'), qos: 1, retain: false } });
    expect(own.connected).toBe(true);
    await eventually('the refusal', () => (eventsOf(out, 'refused').some((e) => e.code === 'topic_not_allowed') ? true : undefined));
  });

  it('checks the wills of sessions lost in a crash against their devices before publishing them', async () => {
    const dir = join(userDir, 'iot-state', 'mqtt-broker-broker');
    mkdirSync(dir, { recursive: true });
    const will = (clientId: string, device: string | undefined, topic: string, text: string) => ({
      o: 'putWill',
      c: clientId,
      p: { cmd: 'publish', topic, payload: { b64: Buffer.from(text).toString('base64') }, qos: 0, retain: false, brokerId: 'a-broker-that-crashed', clientId, ...(device ? { device } : {}) },
    });
    const journal = [
      will('pump-1', 'pump-1', 'devices/pump-2/status', 'forged: pump-2 is dead'),
      will('pump-2:old', 'pump-2', 'devices/pump-2/lwt', 'pump-2 went away'),
      will('old-1', 'old-1', 'devices/old-1/lwt', 'revoked since'),
    ];
    writeFileSync(join(dir, 'sessions.snapshot'), journal.map((op) => JSON.stringify(op)).join('\n') + '\n');
    const out = await load();
    const watcher = await connect('pump-2', KEYS['pump-2']);
    const seen: string[] = [];
    watcher.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await watcher.subscribeAsync('devices/pump-2/#', { qos: 0 });
    await eventually('the allowed will', () => (seen.length > 0 ? true : undefined), 15_000);
    await sleep(300);
    expect(seen).toEqual(['devices/pump-2/lwt pump-2 went away']);
    const denied = eventsOf(out, 'denied').filter((e) => e.action === 'will');
    expect(denied.map((e) => `${e.clientId} ${e.topic} ${e.code}`).sort()).toEqual(['old-1 devices/old-1/lwt topic_not_allowed', 'pump-1 devices/pump-2/status topic_not_allowed']);
  });

  it('refuses a 50 MB publish as soon as its header arrives, and keeps serving others', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    const closed = new Promise<void>((resolve) => pump.once('close', () => resolve()));
    pump.publish('devices/pump-1/blob', Buffer.alloc(50_000_000, 0x61), { qos: 0 });
    await closed;
    await eventually('the denial', () => (eventsOf(out, 'denied').some((e) => e.code === 'too_large') ? true : undefined));
    expect(eventsOf(out, 'denied').find((e) => e.code === 'too_large')).toMatchObject({ action: 'publish', clientId: 'pump-1', device: 'pump-1', reason: expect.stringMatching(/^a publish of 500000\d\d bytes; at most 131072 are accepted$/) });
    const other = await connect('pump-2', KEYS['pump-2']);
    await other.publishAsync('devices/pump-2/t', Buffer.alloc(100_000, 0x62), { qos: 1 });
    await eventually('the reading under the cap', () => (out.published.length > 0 ? true : undefined));
    expect(out.published.map((m) => m.topic)).toEqual(['devices/pump-2/t']);
  });

  it('keeps at most 10 retained messages per device', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    for (let i = 0; i < 10; i++) await pump.publishAsync(`devices/pump-1/r${i}`, Buffer.alloc(1_000, 0x61), { qos: 1, retain: true });
    // Replacing one of its own, and removing one, is always allowed.
    await pump.publishAsync('devices/pump-1/r0', 'again', { qos: 1, retain: true });
    await pump.publishAsync('devices/pump-1/r9', '', { qos: 1, retain: true });
    await pump.publishAsync('devices/pump-1/r10', 'tenth', { qos: 1, retain: true });
    const closed = new Promise<void>((resolve) => pump.once('close', () => resolve()));
    pump.publish('devices/pump-1/r11', 'one too many', { qos: 1, retain: true });
    await closed;
    expect(eventsOf(out, 'denied').map((e) => `${e.topic} ${e.code}`)).toEqual(['devices/pump-1/r11 retained_limit']);
    const reader = await connect('pump-1:reader', KEYS['pump-1'], { username: 'pump-1' });
    const retained: string[] = [];
    reader.on('message', (topic) => retained.push(topic));
    await reader.subscribeAsync('devices/pump-1/#', { qos: 1 });
    await eventually('the retained messages', () => (retained.length >= 10 ? true : undefined));
    await sleep(200);
    expect(retained.sort()).toEqual(['r0', 'r1', 'r10', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8'].map((r) => `devices/pump-1/${r}`));
  });

  it('queues at most 1,000 messages for a device that is away, and says which were dropped', async () => {
    const out = await load();
    const subscriber = await connect('pump-1', KEYS['pump-1'], { clean: false });
    await subscriber.subscribeAsync('devices/pump-1/commands/#', { qos: 1 });
    await subscriber.endAsync();
    for (let i = 1; i <= 1_003; i++) brokerNode().receive({ topic: 'devices/pump-1/commands/set', payload: `setting ${i}`, qos: 1 } as NodeMessage);
    await eventually('three drops', () => (eventsOf(out, 'dropped').length >= 3 ? true : undefined));
    expect(eventsOf(out, 'dropped')[0]).toMatchObject({ event: 'dropped', clientId: 'pump-1', device: 'pump-1', code: 'queue_full' });
    const received: string[] = [];
    const again = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'pump-1', username: 'pump-1', password: KEYS['pump-1'], clean: false, reconnectPeriod: 0 });
    clients.push(again);
    again.on('message', (_topic, payload) => received.push(payload.toString()));
    await eventually('the queued messages', () => (received.length >= 1_000 ? true : undefined));
    await sleep(300);
    expect(received.length).toBe(1_000);
    expect(received[999]).toBe('setting 1000');
    expect(eventsOf(out, 'dropped')).toHaveLength(3);
  });

  it('refuses MQTT 5 clients (aedes speaks 3.1.1)', async () => {
    await load();
    expect(await connectOrError('pump-1', KEYS['pump-1'], { protocolVersion: 5 })).toBeInstanceOf(Error);
  });

  it('is grey while it listens with no device connected, and green with one online', async () => {
    await load();
    // load() made sure of the broker with a CONNECT that is refused: counted, not coloured.
    const refused = '( · 1 iot-mqtt-broker.status.refused)?';
    await eventually('listening', () => (brokerStatus().text.includes(':') ? true : undefined));
    expect(brokerStatus()).toEqual({ fill: 'grey', shape: 'ring', text: expect.stringMatching(new RegExp(`^0 iot-mqtt-broker.status.online${refused} · :${port}$`)) });
    await connect('pump-1', KEYS['pump-1']);
    await eventually('a device shown online', () => (brokerStatus().fill === 'green' ? true : undefined));
    expect(brokerStatus()).toEqual({ fill: 'green', shape: 'dot', text: expect.stringMatching(new RegExp(`^1 iot-mqtt-broker.status.online${refused} · :${port}$`)) });
  });

  it('reports a configuration that cannot work, and a port in use', async () => {
    await helper.load([registryNode, mqttBrokerNode], flow({ port: '', wsPort: '' }).slice(0, 2));
    const statusOf = brokerStatus;
    expect(statusOf()).toEqual({ fill: 'red', shape: 'ring', text: 'iot-mqtt-broker.status.invalid-config' });
    await helper.unload();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', () => resolve()));
    try {
      await helper.load([registryNode, mqttBrokerNode], flow().slice(0, 2), { registry: { secrets: JSON.stringify(secrets) } });
      await eventually('the port reported in use', () => (statusOf().fill === 'red' ? true : undefined));
      expect(statusOf()).toMatchObject({ fill: 'red', shape: 'ring', text: expect.stringMatching(/port-in-use · iot-mqtt-broker.status.next-try$/) });
    } finally {
      blocker.close();
    }
  });
});

/** A reading nested 3,000 levels deep: 6 KB that overflow the stack of anything that walks it recursively. */
const DEEP = `{"temperature":${'['.repeat(3000)}1${']'.repeat(3000)}}`;

describe('iot-mqtt-broker parsing within limits', () => {
  it('refuses a reading nested 3,000 levels deep with too_deep on its error output, and hands nothing of it to the flow', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    await pump.publishAsync('devices/pump-1/telemetry', DEEP, { qos: 1 });
    await pump.publishAsync('devices/pump-1/telemetry', '{"temperature":21}', { qos: 1 });
    await eventually('the good reading', () => (out.authenticated.length > 0 ? true : undefined));
    expect(out.published.map((m) => m.payload)).toEqual([{ temperature: 21 }]);
    await eventually('the refusal', () => (out.refusedPublishes.length > 0 ? true : undefined));
    expect(out.refusedPublishes[0]).toMatchObject({ topic: 'devices/pump-1/telemetry', device: { id: 'pump-1' }, error: { code: 'too_deep', node: 'broker' } });
    expect(Buffer.isBuffer(out.refusedPublishes[0].payload)).toBe(true);
  });

  it('takes its limits from its settings, and with payload JSON refuses what is not JSON', async () => {
    const out = await load({ payloadFormat: 'json', maxDepth: '2', maxKeys: '3', maxBytes: '100' });
    const pump = await connect('pump-1', KEYS['pump-1']);
    for (const body of ['{"a":[1]}', '{"a":[[1]]}', '{"a":1,"b":2,"c":3,"d":4}', `{"a":"${'x'.repeat(100)}"}`, 'hello']) await pump.publishAsync('devices/pump-1/t', body, { qos: 1 });
    await eventually('four refusals', () => (out.refusedPublishes.length >= 4 ? true : undefined));
    expect(out.published.map((m) => m.payload)).toEqual([{ a: [1] }]);
    expect(out.refusedPublishes.map((m) => (m.error as { code: string }).code)).toEqual(['too_deep', 'too_many_keys', 'too_large', 'malformed']);
  });
});

describe('iot-mqtt-broker acknowledging QoS 1/2', () => {
  const tokenOf = (msg: NodeMessage) => msg._delivery as { source: string; id: string } | undefined;
  /** Whether a publish's promise settled within a short while (an absence cannot be waited for). */
  const within = async (p: Promise<unknown>, ms = 300) => Promise.race([p.then(() => 'acknowledged', () => 'failed'), sleep(ms).then(() => 'waiting')]);

  it('on arrival when not set (an older flow): no delivery token, the PUBACK at once', async () => {
    const out = await load();
    const pump = await connect('pump-1', KEYS['pump-1']);
    await pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 1 });
    await eventually('the publish', () => (out.published.length > 0 ? true : undefined));
    expect(tokenOf(out.published[0])).toBeUndefined();
  });

  it('once stored: the PUBACK waits for the settlement, and comes once it is ok', async () => {
    const out = await load({ acknowledge: 'stored' });
    const pump = await connect('pump-1', KEYS['pump-1']);
    const acked = pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 1 });
    await eventually('the publish in the flow', () => (out.published.length > 0 ? true : undefined));
    const token = tokenOf(out.published[0]);
    expect(token).toMatchObject({ source: 'broker' });
    expect(await within(acked)).toBe('waiting');
    await eventually('the receipt shown waiting', () => (statusText().includes('iot-mqtt-broker.status.waiting') ? true : undefined));
    brokerNode().settleDelivery(token?.id as string, { ok: true });
    expect(await within(acked, 5_000)).toBe('acknowledged');
    // Handed to the flow once only (not again when aedes publishes it on).
    await sleep(100);
    expect(out.published).toHaveLength(1);
  });

  it('once stored: a publish refused for good is acknowledged (MQTT 3.1.1 has no negative PUBACK)', async () => {
    const out = await load({ acknowledge: 'stored' });
    const pump = await connect('pump-1', KEYS['pump-1']);
    const acked = pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 1 });
    await eventually('the publish in the flow', () => (out.published.length > 0 ? true : undefined));
    brokerNode().settleDelivery(tokenOf(out.published[0])?.id as string, { ok: false, retry: false, code: 'too_deep', reason: 'too_deep: …' });
    expect(await within(acked, 5_000)).toBe('acknowledged');
  });

  it('once stored: a publish not taken gets no PUBACK; the device is disconnected, reconnects and sends it again', async () => {
    const out = await load({ acknowledge: 'stored' });
    const pump = await connect('pump-1', KEYS['pump-1'], { reconnectPeriod: 200 });
    const acked = pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 1 });
    await eventually('the publish in the flow', () => (out.published.length > 0 ? true : undefined));
    brokerNode().settleDelivery(tokenOf(out.published[0])?.id as string, { ok: false, retry: true, code: 'disk_full', reason: 'disk_full: no space left on the device' });
    await eventually('sent again', () => (out.published.length >= 2 ? true : undefined));
    expect(await within(acked)).toBe('waiting');
    expect(out.published[1].payload).toEqual({ temperature: 21 });
    expect(eventsOf(out, 'not_taken')).toEqual([{ event: 'not_taken', clientId: 'pump-1', device: 'pump-1', address: '127.0.0.1', reason: 'disk_full: no space left on the device', topic: 'devices/pump-1/t' }]);
    brokerNode().settleDelivery(tokenOf(out.published[1])?.id as string, { ok: true });
    expect(await within(acked, 5_000)).toBe('acknowledged');
  });

  it('once stored: a receipt not settled within "Answer within" is not taken, and the broker warns that a buffer must follow', async () => {
    const out = await load({ acknowledge: 'stored', answerWithin: '0.5' });
    const pump = await connect('pump-1', KEYS['pump-1'], { reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => pump.once('close', () => resolve()));
    const acked = pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 1 });
    await closed;
    expect(await within(acked)).not.toBe('acknowledged');
    expect(eventsOf(out, 'not_taken').map((e) => e.reason)).toEqual(['not settled within 0.5 s']);
    await eventually('the warning', () => (JSON.stringify(helper.log().args).includes('iot-mqtt-broker.errors.not-settled') ? true : undefined));
  });

  it('once stored: a delivery wired back to the broker’s input settles it (a Catch node: not taken, unless msg.retry is false), and is not published', async () => {
    const out = await load({ acknowledge: 'stored' });
    const pump = await connect('pump-1', KEYS['pump-1'], { reconnectPeriod: 200 });
    const acked = pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 1 });
    await eventually('the publish in the flow', () => (out.published.length > 0 ? true : undefined));
    brokerNode().receive({ _delivery: out.published[0]._delivery, error: { message: 'Error: decoder busy', source: { type: 'function' } } } as NodeMessage);
    await eventually('sent again', () => (out.published.length >= 2 ? true : undefined));
    expect(eventsOf(out, 'not_taken').map((e) => e.reason)).toEqual(['function: decoder busy']);
    brokerNode().receive({ _delivery: out.published[1]._delivery, retry: false, error: { message: 'Error: cannot decode', source: { type: 'function' } } } as NodeMessage);
    expect(await within(acked, 5_000)).toBe('acknowledged');
  });

  it('once stored: QoS 0 stays fire and forget, without a token', async () => {
    const out = await load({ acknowledge: 'stored' });
    const pump = await connect('pump-1', KEYS['pump-1']);
    await pump.publishAsync('devices/pump-1/t', '{"temperature":21}', { qos: 0 });
    await eventually('the publish', () => (out.published.length > 0 ? true : undefined));
    expect(tokenOf(out.published[0])).toBeUndefined();
  });

  it('once stored: a QoS 2 PUBREC waits for the settlement; not taken, the publish comes again', async () => {
    const out = await load({ acknowledge: 'stored' });
    const pump = await connect('pump-1', KEYS['pump-1'], { reconnectPeriod: 200, clean: false });
    const completed = pump.publishAsync('devices/pump-1/t', '{"temperature":22}', { qos: 2 });
    await eventually('the publish in the flow', () => (out.published.length > 0 ? true : undefined));
    expect(await within(completed)).toBe('waiting');
    brokerNode().settleDelivery(tokenOf(out.published[0])?.id as string, { ok: false, retry: true, reason: 'queue_full: …' });
    await eventually('sent again', () => (out.published.length >= 2 ? true : undefined));
    brokerNode().settleDelivery(tokenOf(out.published[1])?.id as string, { ok: true });
    expect(await within(completed, 5_000)).toBe('acknowledged');
    await sleep(200);
    expect(out.published).toHaveLength(2);
  });
});

type Status = { fill: string; shape: string; text: string };

/** The broker's latest status: the helper's spy on status is shared by every node of the flow. */
function brokerStatus(): Status {
  const broker = helper.getNode('broker');
  const calls = (broker.status as unknown as { getCalls(): Array<{ thisValue: unknown; args: [Status] }> }).getCalls();
  return calls.filter((call) => call.thisValue === broker).at(-1)?.args[0] ?? { fill: '', shape: '', text: '' };
}

function statusText(): string {
  return brokerStatus().text;
}
