/**
 * iot-mqtt-broker with the clients devices really use: Debian's mosquitto_pub and mosquitto_sub
 * (good and bad credentials, a topic outside the device's rules, a command received), mqtt.js
 * over WebSocket, and both over TLS with a certificate made by openssl for the test.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import mqttBrokerNode from '../../nodes/mqtt-broker/mqtt-broker';
import { helper, nodeRedPath } from '../support/node-red';
import { freePort, portOpen } from '../support/services';
import { ensureInstalled, SYSTEM_PACKAGES } from '../support/system-packages';
import { eventually } from '../support/wait';

const run = promisify(execFile);
/** Node-RED's own tls-config node, which the broker takes its certificate from. */
const tlsConfigNode = createRequire(nodeRedPath)('@node-red/nodes/core/network/05-tls.js') as typeof registryNode;
const KEY = 'key-for-pump-1-0123456789abcdef';
const devices = [
  { id: 'pump-1', enabled: true, meta: '{"assetId":"02i000000000001"}' },
  { id: 'old-1', enabled: false },
];
const credentials = { registry: { secrets: JSON.stringify({ 'pump-1': { apiKey: KEY }, 'old-1': { apiKey: 'key-for-old-1-0123456789abcdef' } }) } };

let dir: string;
let tcpPort: number;
let wsPort: number;
let published: NodeMessage[];
let events: NodeMessage[];
let authenticated: NodeMessage[];

beforeAll(async () => {
  ensureInstalled(SYSTEM_PACKAGES.mosquittoClients);
  dir = mkdtempSync(join(tmpdir(), 'iot-broker-clients-'));
  // A certificate for 127.0.0.1, as an operator would make one for the broker.
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
  expect(made.status, made.stderr).toBe(0);
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await helper.unload();
});

async function load(tls: boolean): Promise<void> {
  tcpPort = await freePort();
  wsPort = await freePort();
  helper.settings({ userDir: dir });
  const flow = [
    { id: 'registry', type: 'iot-device-registry', source: 'list', devices },
    { id: 'tls', type: 'tls-config', cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), ca: '', verifyservercert: false },
    { id: 'broker', type: 'iot-mqtt-broker', registry: 'registry', host: '127.0.0.1', port: tcpPort, wsPort, wsPath: '/mqtt', tls: tls ? 'tls' : '', wires: [['published', 'auth'], ['events'], []] },
    { id: 'auth', type: 'iot-device-auth', method: 'broker', wires: [['authenticated'], []] },
    { id: 'published', type: 'helper' },
    { id: 'events', type: 'helper' },
    { id: 'authenticated', type: 'helper' },
  ];
  await helper.load([registryNode, mqttBrokerNode, deviceAuthNode, tlsConfigNode], flow, credentials);
  published = [];
  events = [];
  authenticated = [];
  helper.getNode('published').on('input', (msg: NodeMessage) => published.push(msg));
  helper.getNode('events').on('input', (msg: NodeMessage) => events.push(msg));
  helper.getNode('authenticated').on('input', (msg: NodeMessage) => authenticated.push(msg));
  await eventually('the broker listening', async () => ((await portOpen(tcpPort)) && (await portOpen(wsPort)) ? true : undefined));
}

const tlsArgs = () => ['--cafile', join(dir, 'cert.pem')];

async function mosquitto(program: 'mosquitto_pub' | 'mosquitto_sub', args: string[], tls = false): Promise<{ code: number; output: string }> {
  const binary = program === 'mosquitto_pub' ? SYSTEM_PACKAGES.mosquittoClients.binary : SYSTEM_PACKAGES.mosquittoClients.binary.replace('mosquitto_pub', 'mosquitto_sub');
  try {
    const { stdout, stderr } = await run(binary, ['-h', '127.0.0.1', '-p', String(tcpPort), '-V', 'mqttv311', ...(tls ? tlsArgs() : []), ...args], { timeout: 15_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

const refusedCodes = () => events.filter((e) => e.topic === 'refused').map((e) => (e.payload as { code: string }).code);

describe('iot-mqtt-broker with mosquitto_pub and mosquitto_sub', () => {
  it('takes a publish with good credentials and refuses bad ones', async () => {
    await load(false);
    const good = await mosquitto('mosquitto_pub', ['-i', 'pump-1', '-u', 'pump-1', '-P', KEY, '-q', '1', '-t', 'devices/pump-1/telemetry', '-m', '{"temperature":71.5}']);
    expect(good.code, good.output).toBe(0);
    await eventually('the reading in the flow', () => (authenticated.length > 0 ? true : undefined));
    expect(authenticated[0]).toMatchObject({ topic: 'devices/pump-1/telemetry', payload: { temperature: 71.5 }, device: { id: 'pump-1', method: 'apikey', meta: { assetId: '02i000000000001' } } });

    const wrong = await mosquitto('mosquitto_pub', ['-i', 'pump-1', '-u', 'pump-1', '-P', 'guessed-key-0123456789abcdef', '-t', 'devices/pump-1/t', '-m', 'x']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.output).toMatch(/bad user name or password/i);
    const revoked = await mosquitto('mosquitto_pub', ['-i', 'old-1', '-u', 'old-1', '-P', 'key-for-old-1-0123456789abcdef', '-t', 'devices/old-1/t', '-m', 'x']);
    expect(revoked.output).toMatch(/not authori[sz]ed/i);
    const anonymous = await mosquitto('mosquitto_pub', ['-t', 'devices/pump-1/t', '-m', 'x']);
    expect(anonymous.code).not.toBe(0);
    await eventually('three refusals', () => (refusedCodes().length >= 3 ? true : undefined));
    expect(refusedCodes()).toEqual(['bad_key', 'revoked', 'missing_credentials']);
    expect(published.length).toBe(1);
  });

  it('refuses subscriptions and publishes outside the device’s topics', async () => {
    await load(false);
    const sub = await mosquitto('mosquitto_sub', ['-i', 'pump-1', '-u', 'pump-1', '-P', KEY, '-t', 'devices/+/telemetry', '-W', '2']);
    expect(sub.output).toMatch(/denied/i);
    const pub = await mosquitto('mosquitto_pub', ['-i', 'pump-1', '-u', 'pump-1', '-P', KEY, '-q', '1', '-t', 'devices/pump-2/telemetry', '-m', 'spoofed']);
    expect(pub.code).not.toBe(0);
    await eventually('both denials', () => (events.filter((e) => e.topic === 'denied').length >= 2 ? true : undefined));
    expect(events.filter((e) => e.topic === 'denied').map((e) => (e.payload as { action: string }).action)).toEqual(['subscribe', 'publish']);
    expect(published).toEqual([]);
  });

  it('delivers a command from the flow to mosquitto_sub', async () => {
    await load(false);
    const received = mosquitto('mosquitto_sub', ['-i', 'pump-1', '-u', 'pump-1', '-P', KEY, '-q', '1', '-t', 'devices/pump-1/commands/#', '-C', '1', '-W', '10']);
    await eventually('the subscriber online', () => (events.some((e) => e.topic === 'online') ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 200));
    (helper.getNode('broker') as Node & { receive(msg: NodeMessage): void }).receive({ topic: 'devices/pump-1/commands/valve', payload: 'close', qos: 1 } as NodeMessage);
    const result = await received;
    expect(result.code, result.output).toBe(0);
    expect(result.output.trim()).toBe('close');
  });
});

describe('iot-mqtt-broker over TLS and WebSocket', () => {
  it('serves mqtts to mosquitto_pub and wss to mqtt.js', async () => {
    await load(true);
    const secure = await mosquitto('mosquitto_pub', ['-i', 'pump-1', '-u', 'pump-1', '-P', KEY, '-q', '1', '-t', 'devices/pump-1/t', '-m', 'over tls'], true);
    expect(secure.code, secure.output).toBe(0);
    const plain = await mosquitto('mosquitto_pub', ['-i', 'pump-1', '-u', 'pump-1', '-P', KEY, '-t', 'devices/pump-1/t', '-m', 'in clear']);
    expect(plain.code).not.toBe(0);
    const client = await mqtt.connectAsync(`wss://127.0.0.1:${wsPort}/mqtt`, { clientId: 'pump-1', username: 'pump-1', password: KEY, reconnectPeriod: 0, rejectUnauthorized: false });
    await client.publishAsync('devices/pump-1/t', 'over wss', { qos: 1 });
    await client.endAsync();
    await eventually('both readings', () => (published.length >= 2 ? true : undefined));
    expect(published.map((m) => m.payload)).toEqual(['over tls', 'over wss']);
  });

  it('serves plain WebSocket when no TLS is set', async () => {
    await load(false);
    const client = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { clientId: 'pump-1', username: 'pump-1', password: KEY, reconnectPeriod: 0 });
    await client.publishAsync('devices/pump-1/t', '{"over":"ws"}', { qos: 1 });
    await client.endAsync();
    await eventually('the reading', () => (authenticated.length > 0 ? true : undefined));
    expect(authenticated[0]).toMatchObject({ payload: { over: 'ws' }, device: { id: 'pump-1' } });
    const refused = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { clientId: 'pump-1', username: 'pump-1', password: 'nope-nope-nope-nope-nope', reconnectPeriod: 0 }).catch((err: Error) => err);
    expect(refused).toBeInstanceOf(Error);
  });
});
