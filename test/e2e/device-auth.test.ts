/**
 * The device-auth example flow in a whole Node-RED process, with its registry secrets filled in
 * as a user would, and real clients: fetch for HTTP (API key, HMAC, SAS, JWT, a signed webhook,
 * an anonymous button) and mqtt.js for MQTT (devices, a gateway batch, bad credentials). A
 * persistent QoS 1 session survives a clean restart and a kill -9. No secret appears in the
 * exported flows, the flow files, the logs or any message the flow handed on.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signSas } from '../../nodes/device-registry/sas';
import { signWebhook } from '../../nodes/device-registry/webhook';
import { deviceJwt, hmacHeaders, hmacSigned, keyPairs, nowSeconds, unsignedJwt } from '../support/device-credentials';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';
import { freePort } from '../support/services';
import { eventually } from '../support/wait';

type FlowNode = Record<string, unknown> & { id: string; type: string; wires?: string[][] };

const SECRETS = {
  'pump-1': { secret: `pump-1-secret-${randomBytes(12).toString('hex')}`, apiKey: `pump-1-key-${randomBytes(12).toString('hex')}` },
  'pump-2': { apiKey: `pump-2-key-${randomBytes(12).toString('hex')}` },
  'gw-1': { secret: `gw-1-secret-${randomBytes(12).toString('hex')}`, apiKey: `gw-1-key-${randomBytes(12).toString('hex')}` },
  'acme-cloud': { secret: `acme-secret-${randomBytes(12).toString('hex')}` },
};
const allSecrets = Object.values(SECRETS).flatMap((s) => Object.values(s));

let node: NodeRedProcess;
let brokerPort: number;
let base: string;
const clients: MqttClient[] = [];
const tokensSent: string[] = [];

/** The example as shipped, with the test's own additions: collectors, a webhook and a button endpoint. */
function flows(): FlowNode[] {
  const example = JSON.parse(readFileSync(join(repoRoot, 'flows', 'device-auth-devices.json'), 'utf8')) as FlowNode[];
  const tab = 'device-auth.tab';
  for (const n of example) {
    if (n.id === 'device-auth.registry') {
      (n.devices as Array<Record<string, unknown>>).push({ id: 'cam-1', enabled: true, publicKey: keyPairs().es256.pem }, { id: 'acme-cloud', enabled: true, methods: 'webhook' });
      n.credentials = { secrets: JSON.stringify(SECRETS) };
    }
    if (n.id === 'device-auth.broker') n.port = brokerPort;
    // Every message the example's auth and threshold nodes hand on is also collected.
    if (['device-auth.auth-http', 'device-auth.auth-broker', 'device-auth.auth-gateway', 'device-auth.temperature'].includes(n.id)) {
      n.wires = (n.wires ?? []).map((out, i) => [...out, `test.collect-${n.id.split('.')[1]}-${i}`]);
    }
  }
  const collectors = example
    .filter((n) => (n.id as string).startsWith('device-auth.') && ['iot-device-auth', 'iot-threshold'].includes(n.type))
    .flatMap((n) => (n.wires ?? []).map((_, i) => `test.collect-${n.id.split('.')[1]}-${i}`));
  const collect = (id: string): FlowNode => ({
    id,
    type: 'function',
    z: tab,
    name: id.replace('test.collect-', ''),
    func: [
      'const list = global.get("collected") || [];',
      'const req = msg.req ? { headers: msg.req.headers, rawHeaders: msg.req.rawHeaders, url: msg.req.originalUrl } : undefined;',
      'list.push({ from: node.name, topic: msg.topic, payload: Buffer.isBuffer(msg.payload) ? msg.payload.toString("latin1") : msg.payload, device: msg.device, error: msg.error, alert: msg.alert, statusCode: msg.statusCode, req });',
      'global.set("collected", list);',
      'return null;',
    ].join('\n'),
    outputs: 1,
    wires: [[]],
  });
  const auth = (id: string, props: Record<string, unknown>, wires: string[][]): FlowNode => ({ id, type: 'iot-device-auth', z: tab, registry: 'device-auth.registry', ...props, wires });
  const test: FlowNode[] = [
    ...collectors.map(collect),
    { id: 'test.hook-in', type: 'http in', z: tab, url: '/hooks/acme', method: 'post', upload: false, skipBodyParsing: true, wires: [['test.hook-auth']] },
    auth('test.hook-auth', { method: 'webhook', deviceIdProperty: 'acme-cloud', deviceIdPropertyType: 'str', signatureProperty: 'req.headers["x-hub-signature-256"]', webhookPrefix: 'sha256=' }, [['test.collect-hook-0', 'test.respond'], ['test.respond']]),
    collect('test.collect-hook-0'),
    { id: 'test.button-in', type: 'http in', z: tab, url: '/button', method: 'post', upload: false, skipBodyParsing: true, wires: [['test.button-auth']] },
    auth('test.button-auth', { method: 'anonymous', rate: '1', burst: '2', allowedFields: 'subject description' }, [['test.collect-button-0', 'test.respond'], ['test.respond']]),
    collect('test.collect-button-0'),
    { id: 'test.respond', type: 'http response', z: tab, statusCode: '', headers: {}, wires: [] },
    { id: 'test.collected-in', type: 'http in', z: tab, url: '/test/collected', method: 'get', upload: false, wires: [['test.collected']] },
    { id: 'test.collected', type: 'change', z: tab, rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'collected', tot: 'global' }], wires: [['test.respond']] },
    { id: 'test.command-in', type: 'http in', z: tab, url: '/test/command', method: 'post', upload: false, wires: [['test.to-command']] },
    {
      id: 'test.to-command',
      type: 'change',
      z: tab,
      rules: [
        { t: 'set', p: 'topic', pt: 'msg', to: 'payload.topic', tot: 'msg' },
        { t: 'set', p: 'qos', pt: 'msg', to: 'payload.qos', tot: 'msg' },
        { t: 'set', p: 'payload', pt: 'msg', to: 'payload.payload', tot: 'msg' },
      ],
      wires: [['device-auth.broker', 'test.ok']],
    },
    { id: 'test.ok', type: 'change', z: tab, rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'queued', tot: 'str' }], wires: [['test.respond']] },
  ];
  return [...example, ...test];
}

interface Collected {
  from: string;
  topic?: string;
  payload?: unknown;
  device?: { id: string; method: string; gateway?: string; meta?: Record<string, unknown> };
  error?: { code: string };
  alert?: { severity: string; key: string };
  statusCode?: number;
}

async function collected(): Promise<Collected[]> {
  const text = await fetch(`${base}/test/collected`).then((r) => r.text());
  return text === '' ? [] : (JSON.parse(text) as Collected[]);
}

async function post(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

async function device(id: string, password: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, { clientId: id, username: id, password, reconnectPeriod: 0, ...options });
  clients.push(client);
  return client;
}

async function startAndDeploy(dataDir?: string): Promise<void> {
  node = await NodeRedProcess.start(dataDir ? { dataDir } : {});
  base = node.editorUrl;
  if (!dataDir) await node.deploy(flows());
  await eventually('the example deployed', async () => ((await fetch(`${base}/test/collected`)).status === 200 ? true : undefined), 30_000);
  await eventually('the broker accepting devices', async () => {
    // pump-1, not pump-2: a clean connect would discard pump-2's persistent session.
    const client = await device('pump-1', SECRETS['pump-1'].apiKey).catch(() => undefined);
    await client?.endAsync();
    return client ? true : undefined;
  }, 30_000);
}

beforeAll(async () => {
  brokerPort = await freePort();
  await startAndDeploy();
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  await node?.dispose();
});

describe('the device-auth example over HTTP', () => {
  it('accepts API keys, HMAC signatures, SAS tokens and JWTs, and answers attacks with a status only', async () => {
    const body = '{"temperature":21.5}';
    const hmac = hmacHeaders(hmacSigned(Buffer.from(SECRETS['pump-1'].secret), 'pump-1', 'POST /devices/readings', body));
    tokensSent.push(hmac['x-signature']);
    expect((await post('/devices/readings', body, { 'x-api-key': SECRETS['pump-1'].apiKey })).status).toBe(202);
    expect((await post('/devices/readings', body, hmac)).status).toBe(202);
    const replay = await post('/devices/readings', body, hmac);
    expect([replay.status, replay.text]).toEqual([401, 'Unauthorized']);
    const sas = signSas(Buffer.from(SECRETS['pump-1'].secret), 'hub.example.com/devices/pump-1', nowSeconds() + 600);
    tokensSent.push(sas);
    expect((await post('/devices/readings', body, { authorization: sas })).status).toBe(202);
    const jwt = await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1' });
    tokensSent.push(jwt);
    expect((await post('/devices/readings', body, { authorization: `Bearer ${jwt}` })).status).toBe(202);

    expect((await post('/devices/readings', body, { authorization: `Bearer ${unsignedJwt({ sub: 'cam-1' })}` })).status).toBe(401);
    const wrong = await post('/devices/readings', body, { 'x-api-key': `${SECRETS['pump-1'].apiKey}x` });
    expect([wrong.status, wrong.text]).toEqual([401, 'Unauthorized']);
    expect((await post('/devices/readings', `{"blob":"${'x'.repeat(70_000)}"}`, { 'x-api-key': SECRETS['pump-1'].apiKey })).status).toBe(413);
    expect((await post('/devices/readings', '{"temperature":', { 'x-api-key': SECRETS['pump-1'].apiKey })).status).toBe(400);
    expect((await post('/devices/readings', body, {})).status).toBe(401);

    const seen = await collected();
    const accepted = seen.filter((c) => c.from === 'auth-http-0').map((c) => `${c.device?.id}/${c.device?.method}`);
    expect(accepted).toEqual(['pump-1/apikey', 'pump-1/hmac', 'pump-1/sas', 'cam-1/jwt']);
    expect(seen.filter((c) => c.from === 'auth-http-1').map((c) => c.error?.code)).toEqual(['replayed', 'bad_algorithm', 'unknown_device', 'too_large', 'malformed', 'missing_credentials']);
  });

  it('limits a device’s rate and answers 429 with Retry-After', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 25; i++) {
      const answer = await post('/devices/readings', '{"temperature":20}', { 'x-api-key': SECRETS['pump-2'].apiKey });
      statuses.push(answer.status);
      retryAfter ??= answer.headers.get('retry-after');
    }
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it('verifies a vendor webhook over the raw bytes, and limits an anonymous button', async () => {
    const body = '{ "device": "meter-9",  "reading": 12.5 }';
    const signature = `sha256=${signWebhook(Buffer.from(SECRETS['acme-cloud'].secret), body)}`;
    tokensSent.push(signature);
    expect((await post('/hooks/acme', body, { 'x-hub-signature-256': signature })).status).toBe(200);
    const reserialised = JSON.stringify(JSON.parse(body));
    expect((await post('/hooks/acme', reserialised, { 'x-hub-signature-256': signature })).status).toBe(401);

    const press = () => post('/button', '{"subject":"Easy button pressed","description":"Building 4","orgid":"00D000000000001"}', {});
    const presses = [await press(), await press(), await press()];
    expect(presses.map((p) => p.status)).toEqual([200, 200, 429]);
    const seen = await collected();
    expect(seen.find((c) => c.from === 'hook-0')).toMatchObject({ device: { id: 'acme-cloud', method: 'webhook' }, payload: { device: 'meter-9', reading: 12.5 } });
    expect(seen.find((c) => c.from === 'button-0')).toMatchObject({ device: { id: 'anonymous:127.0.0.1', method: 'anonymous' }, payload: { subject: 'Easy button pressed', description: 'Building 4' } });
  });
});

describe('the device-auth example over MQTT', () => {
  it('raises alerts from device thresholds in the registry meta, for devices and a gateway’s sensors', async () => {
    const pump = await device('pump-1', SECRETS['pump-1'].apiKey);
    await pump.publishAsync('devices/pump-1/telemetry', '{"temperature":85}', { qos: 1 });
    const gateway = await device('gw-1', SECRETS['gw-1'].apiKey);
    await gateway.publishAsync('devices/gw-1/batch', JSON.stringify({ readings: [{ sensor: 's-1', temperature: 35 }, { sensor: 'pump-2', temperature: 50 }] }), { qos: 1 });
    await eventually('two alerts', async () => ((await collected()).filter((c) => c.from === 'temperature-0').length >= 2 ? true : undefined), 15_000);
    const seen = await collected();
    const alerts = seen.filter((c) => c.from === 'temperature-0');
    expect(alerts.map((a) => `${a.alert?.key} ${a.alert?.severity}`).sort()).toEqual(['pump-1 critical', 's-1 warning']);
    expect(alerts.find((a) => a.alert?.key === 'pump-1')?.device).toMatchObject({ id: 'pump-1', method: 'apikey', meta: { assetId: '02i000000000001AAA', accountId: '001000000000001AAA' } });
    expect(alerts.find((a) => a.alert?.key === 's-1')?.device).toMatchObject({ id: 's-1', gateway: 'gw-1', meta: { assetId: '02i000000000011AAA' } });
    expect(seen.find((c) => c.from === 'auth-gateway-1')).toMatchObject({ error: { code: 'not_under_gateway' }, payload: { sensor: 'pump-2' } });
    await pump.endAsync();
    await gateway.endAsync();
    expect(await device('pump-1', 'guessed-key-0123456789abcdef').catch((err: Error) => err)).toBeInstanceOf(Error);
  });
});

describe('secrets, and sessions across restarts', () => {
  it('has no secret in the exported flows, the flow files, the logs or any message handed on', async () => {
    const exported = await fetch(`${base}/flows`).then((r) => r.text());
    const onDisk = ['flows.json', 'flows_cred.json'].map((f) => readFileSync(join(node.dataDir, 'node-red', f), 'utf8'));
    const messages = JSON.stringify(await collected());
    for (const secret of [...allSecrets, ...tokensSent]) {
      expect(exported).not.toContain(secret);
      for (const text of onDisk) expect(text).not.toContain(secret);
      expect(node.output).not.toContain(secret);
      expect(messages).not.toContain(secret);
    }
    expect(exported).toContain('device-auth.registry');
    expect(messages).toContain('pump-1');
  });
  it('delivers queued QoS 1 messages after a clean restart and after kill -9', async () => {
    const subscriber = await device('pump-2', SECRETS['pump-2'].apiKey, { clean: false });
    await subscriber.subscribeAsync('devices/pump-2/commands/#', { qos: 1 });
    await subscriber.endAsync();
    const command = (text: string) => fetch(`${base}/test/command`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'devices/pump-2/commands/set', payload: text, qos: 1 }) });
    const received: string[] = [];
    const resume = async () => {
      // Listening before the connection is up: queued messages follow the CONNACK at once.
      const again = mqtt.connect(`mqtt://127.0.0.1:${brokerPort}`, { clientId: 'pump-2', username: 'pump-2', password: SECRETS['pump-2'].apiKey, clean: false, reconnectPeriod: 0 });
      clients.push(again);
      again.on('message', (_topic, payload) => received.push(payload.toString()));
      await new Promise<void>((resolve, reject) => {
        again.once('connect', () => resolve());
        again.once('error', reject);
      });
      return again;
    };
    expect((await command('one')).status).toBe(200);
    const dataDir = node.dataDir;
    expect(await node.stop('SIGINT')).toBe(0);
    await startAndDeploy(dataDir);
    const first = await resume();
    await eventually('the message queued before the restart', () => (received.includes('one') ? true : undefined));
    await first.endAsync();
    expect((await command('two')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await node.crash();
    await startAndDeploy(dataDir);
    await resume();
    await eventually('the message queued before the crash', () => (received.includes('two') ? true : undefined));
    expect(received).toEqual(['one', 'two']);
    for (const secret of allSecrets) expect(node.output).not.toContain(secret);
  });


});
