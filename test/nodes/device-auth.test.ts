/**
 * iot-device-registry and iot-device-auth inside a Node-RED runtime (node-red-node-test-helper):
 * the three kinds of registry (a list with credentials, a file reloaded on change, derived keys),
 * revocation, both outputs with HTTP status codes, gateway batches, credentials removed from
 * what travels on, no secret in any log or output, and the fuzz test: at least 10,000 malformed
 * inputs per method, every one of them rejected with a code.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import bufferNode from '../../nodes/buffer/buffer';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import { signSas } from '../../nodes/device-registry/sas';
import { derivedApiKey, derivedKey } from '../../nodes/device-registry/stores';
import { signWebhook } from '../../nodes/device-registry/webhook';
import type { Outcome } from '../../nodes/shared/delivery';
import { deviceJwt, hmacHeaders, hmacSigned, keyPairs, nowSeconds } from '../support/device-credentials';
import { captureHttpNodes, coreNodes, helper, nodeRedPath, serveHttpNodes } from '../support/node-red';
import { eventually } from '../support/wait';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
interface Received {
  ok: NodeMessage[];
  rejected: NodeMessage[];
}

const SECRET = 'a-shared-secret-of-32-characters';
const API_KEY = 'key-for-pump-1-0123456789abcdef';
const MASTER = 'm'.repeat(16) + randomBytes(24).toString('hex');
let userDir: string;

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});
beforeEach(() => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-auth-'));
  helper.settings({ userDir });
});
afterEach(async () => {
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

const devices = [
  { id: 'pump-1', enabled: true, meta: '{"assetId":"02i000000000001","accountId":"001000000000001","thresholds":{"temperature":{"warning":70}}}' },
  { id: 'cam-1', enabled: true, publicKey: keyPairs().es256.pem },
  { id: 'gw-1', enabled: true },
  { id: 's-1', enabled: true, gateway: 'gw-1', meta: '{"assetId":"02iS1"}' },
  { id: 's-2', enabled: true, gateway: 'pump-1' },
  { id: 'old-1', enabled: false },
];
const secrets = { 'pump-1': { secret: SECRET, apiKey: API_KEY }, 'gw-1': { secret: SECRET }, 'old-1': { secret: SECRET } };

function authFlow(auth: Record<string, unknown>, registry: Record<string, unknown> = { source: 'list', devices }): Flow {
  return [
    { id: 'registry', type: 'iot-device-registry', name: 'devices', ...registry },
    { id: 'auth', type: 'iot-device-auth', registry: 'registry', method: 'auto', wires: [['ok'], ['rejected']], ...auth },
    { id: 'ok', type: 'helper' },
    { id: 'rejected', type: 'helper' },
  ];
}

async function load(auth: Record<string, unknown>, registry?: Record<string, unknown>, credentials: Record<string, unknown> = { registry: { secrets: JSON.stringify(secrets) } }): Promise<Received> {
  await helper.load([registryNode, deviceAuthNode], authFlow(auth, registry), credentials);
  const received: Received = { ok: [], rejected: [] };
  helper.getNode('ok').on('input', (msg: NodeMessage) => received.ok.push(msg));
  helper.getNode('rejected').on('input', (msg: NodeMessage) => received.rejected.push(msg));
  return received;
}

const authNode = () => helper.getNode('auth') as Node & { receive(msg: NodeMessage): void };
type Status = { fill: string; shape: string; text: string };
/** The node's latest status: the helper's spy on status is shared by every node of the flow. */
function authStatus(): Status | undefined {
  const auth = helper.getNode('auth');
  const calls = (auth.status as unknown as { getCalls(): Array<{ thisValue: unknown; args: [Status] }> }).getCalls();
  return calls.filter((call) => call.thisValue === auth).at(-1)?.args[0];
}
const settle = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));

/** A request as http-in hands it on with "Do not parse request body". */
function request(path: string, body: string, headers: Record<string, string>, ip = '127.0.0.1'): NodeMessage {
  const lower = Object.fromEntries(Object.entries({ 'content-type': 'application/json', ...headers }).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    _msgid: randomBytes(4).toString('hex'),
    payload: Buffer.from(body),
    req: { method: 'POST', originalUrl: path, url: path, ip, headers: lower, rawHeaders: Object.entries(lower).flat() },
    res: { _res: {} },
  } as NodeMessage;
}

function signedRequest(id = 'pump-1', body = '{"temperature":21.5}', key: Buffer = Buffer.from(SECRET), ip?: string): NodeMessage {
  return request('/readings', body, hmacHeaders(hmacSigned(key, id, 'POST /readings', body)), ip);
}

const codes = (msgs: NodeMessage[]) => msgs.map((m) => (m.error as { code: string }).code);

/** Every string a value holds, for searching messages and logs for secrets (req and res skipped: they are live objects). */
function textOf(value: unknown, seen = new Set<unknown>()): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  if (typeof value !== 'object') return String(value);
  if (seen.has(value)) return '';
  seen.add(value);
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${k}:${textOf(v, seen)}`)
    .join('|');
}

describe('iot-device-auth with a listed registry', () => {
  it('authenticates an HMAC-signed request: msg.device with the registry meta, credentials removed', async () => {
    const got = await load({ method: 'hmac' });
    const msg = signedRequest();
    const signature = (msg.req as { headers: Record<string, string> }).headers['x-signature'];
    authNode().receive(msg);
    await settle();
    expect(got.rejected).toEqual([]);
    const out = got.ok[0];
    expect(out.device).toEqual({ id: 'pump-1', method: 'hmac', meta: { assetId: '02i000000000001', accountId: '001000000000001', thresholds: { temperature: { warning: 70 } } } });
    expect(out.payload).toEqual({ temperature: 21.5 });
    const req = out.req as { headers: Record<string, string>; rawHeaders: string[] };
    expect(req.headers['x-signature']).toBeUndefined();
    expect(req.rawHeaders).not.toContain(signature);
    expect(req.headers['x-device-id']).toBe('pump-1');
    expect(textOf({ ...out, req: req.headers, res: undefined })).not.toContain(signature);
  });

  it('rejects with a code, an HTTP status and a body that says no more', async () => {
    const got = await load({ method: 'hmac' });
    authNode().receive(signedRequest('pump-1', '{"temperature":21.5}', randomBytes(32)));
    authNode().receive(signedRequest('old-1'));
    authNode().receive(signedRequest('pump-1', `{"blob":"${'x'.repeat(70_000)}"}`));
    authNode().receive(request('/readings', '{}', {}));
    await settle();
    expect(codes(got.rejected)).toEqual(['bad_signature', 'revoked', 'too_large', 'missing_credentials']);
    expect(got.rejected.map((m) => [m.statusCode, m.payload])).toEqual([
      [401, 'Unauthorized'],
      [403, 'Forbidden'],
      [413, 'Payload Too Large'],
      [401, 'Unauthorized'],
    ]);
    expect(got.rejected[0].error).toMatchObject({ node: 'auth', message: 'the signature does not match' });
    expect(got.rejected.every((m) => m.device === undefined)).toBe(true);
    expect(got.ok).toEqual([]);
  });

  it('answers 429 with Retry-After when a device goes over its rate', async () => {
    const got = await load({ method: 'apikey', rate: '1', burst: '1' });
    authNode().receive(request('/r', '{}', { 'x-api-key': API_KEY }));
    authNode().receive(request('/r', '{}', { 'x-api-key': API_KEY }));
    await settle();
    expect(got.ok.length).toBe(1);
    expect(got.rejected[0]).toMatchObject({ statusCode: 429, headers: { 'Retry-After': '1' }, error: { code: 'rate_limited' } });
    expect((got.rejected[0].req as { headers: Record<string, string> }).headers['x-api-key']).toBeUndefined();
  });

  it('locks out only the address that failed, at the registry defaults, and says when to retry', async () => {
    const got = await load({ method: 'hmac' });
    for (let i = 0; i < 10; i++) authNode().receive(signedRequest('pump-1', '{"t":1}', randomBytes(32), '198.51.100.66'));
    await settle(100);
    authNode().receive(signedRequest('pump-1', '{"t":1}', Buffer.from(SECRET), '198.51.100.66'));
    authNode().receive(signedRequest('pump-1', '{"t":2}', Buffer.from(SECRET), '10.0.0.7'));
    await settle(100);
    expect(codes(got.rejected)).toEqual([...Array(10).fill('bad_signature'), 'locked_out']);
    expect(got.rejected[10]).toMatchObject({ statusCode: 429, headers: { 'Retry-After': expect.stringMatching(/^(29[0-9]|300)$/) } });
    expect(got.ok.map((m) => m.payload)).toEqual([{ t: 2 }]);
  });

  it('takes credentials from any message property (MQTT) and keeps the bytes for HMAC over the topic', async () => {
    const got = await load({ method: 'hmac', deviceIdProperty: 'auth.id', timestampProperty: 'auth.ts', nonceProperty: 'auth.nonce', signatureProperty: 'auth.sig' });
    const body = '{"temperature":30}';
    const signed = hmacSigned(Buffer.from(SECRET), 'pump-1', 'devices/pump-1/telemetry', body);
    authNode().receive({ topic: 'devices/pump-1/telemetry', payload: Buffer.from(body), auth: { id: signed.id, ts: signed.timestamp, nonce: signed.nonce, sig: signed.signature } } as NodeMessage);
    await settle();
    expect(got.ok[0]).toMatchObject({ device: { id: 'pump-1' }, payload: { temperature: 30 }, auth: { id: 'pump-1', ts: signed.timestamp } });
    expect((got.ok[0].auth as { sig?: string }).sig).toBeUndefined();
  });

  it('verifies JWTs, SAS tokens and webhooks', async () => {
    const got = await load({ method: 'auto', audience: 'https://iot.example.com' });
    const jwt = await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1', aud: 'https://iot.example.com' });
    authNode().receive(request('/r', '{}', { authorization: `Bearer ${jwt}` }));
    authNode().receive(request('/r', '{}', { authorization: signSas(Buffer.from(SECRET), 'hub/devices/pump-1', nowSeconds() + 60) }));
    await eventually('two results', () => (got.ok.length + got.rejected.length >= 2 ? true : undefined));
    expect(got.ok.map((m) => `${(m.device as { id: string }).id}/${(m.device as { method: string }).method}`).sort()).toEqual(['cam-1/jwt', 'pump-1/sas']);
    expect(got.ok.every((m) => (m.req as { headers: Record<string, string> }).headers.authorization === undefined)).toBe(true);
    await helper.unload();

    const hooks = await load({ method: 'webhook', deviceIdProperty: 'pump-1', deviceIdPropertyType: 'str', signatureProperty: 'req.headers["x-hub-signature-256"]', webhookPrefix: 'sha256=' });
    const body = '{"zen":"Keep it logically awesome."}';
    authNode().receive(request('/hooks', body, { 'x-hub-signature-256': `sha256=${signWebhook(Buffer.from(SECRET), body)}` }));
    await settle();
    expect(hooks.ok[0]).toMatchObject({ device: { id: 'pump-1', method: 'webhook' }, payload: { zen: 'Keep it logically awesome.' } });
  });

  it('splits a gateway batch into one message per sensor, and rejects foreign sensors one by one', async () => {
    const got = await load({ method: 'hmac', gateway: true, batchPath: 'readings', sensorField: 'sensor', gatewayOutput: 'split' });
    const body = JSON.stringify({ readings: [{ sensor: 's-1', temperature: 20, timestamp: 1_700_000_000_000 }, { sensor: 's-2', temperature: 99 }] });
    authNode().receive(signedRequest('gw-1', body));
    await settle();
    expect(got.ok.map((m) => m.device)).toEqual([{ id: 's-1', method: 'hmac', gateway: 'gw-1', meta: { assetId: '02iS1' } }]);
    expect(got.ok[0]).toMatchObject({ payload: { sensor: 's-1', temperature: 20 }, timestamp: 1_700_000_000_000, parts: { index: 0, count: 1 } });
    expect(got.rejected).toHaveLength(1);
    expect(got.rejected[0]).toMatchObject({ payload: { sensor: 's-2', temperature: 99 }, error: { code: 'not_under_gateway', index: 1 } });
    expect(got.rejected[0].res).toBeUndefined();
    expect(got.rejected[0].statusCode).toBeUndefined();
  });

  it('never trusts a msg.device that came in', async () => {
    const got = await load({ method: 'broker' });
    authNode().receive({ payload: '{}', device: { id: 'pump-1', method: 'apikey' }, _broker: { node: 'registry', client: 'pump-1', session: 'guess', device: 'pump-1' } } as NodeMessage);
    await settle();
    expect(codes(got.rejected)).toEqual(['not_authenticated']);
    expect(got.rejected[0].device).toBeUndefined();
    expect(got.rejected[0]._broker).toBeUndefined();
  });

  it('reaches Catch nodes when asked to, and shows counts in its status', async () => {
    const flow: Flow = [
      { id: 'tab', type: 'tab', label: 'catching' },
      ...authFlow({ method: 'apikey', catchErrors: true }).map((n) => ({ ...n, z: 'tab' })),
      { id: 'catcher', type: 'catch', z: 'tab', scope: ['auth'], uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper', z: 'tab' },
    ];
    await helper.load([registryNode, deviceAuthNode], flow, { registry: { secrets: JSON.stringify(secrets) } });
    const caught: NodeMessage[] = [];
    helper.getNode('caught').on('input', (msg: NodeMessage) => caught.push(msg));
    await eventually('the first status', () => authStatus());
    expect(authStatus()).toEqual({ fill: 'grey', shape: 'ring', text: '✓ 0 · ✗ 0' });
    authNode().receive(request('/r', '{}', { 'x-api-key': API_KEY }));
    authNode().receive(request('/r', '{}', { 'x-api-key': 'not-the-key-0123456789abcdefgh' }));
    await settle(600);
    expect(caught.map((m) => (m.error as { message: string }).message)).toEqual(['Error: unknown_device: no device has this API key']);
    // A device refused is news about the device: counted in the text, the node itself works.
    expect(authStatus()).toEqual({ fill: 'green', shape: 'dot', text: '✓ 1 · ✗ 1' });
  });

  it('refuses everything, saying so, when the registry cannot be loaded', async () => {
    const got = await load({ method: 'apikey' }, { source: 'list', devices: [{ id: 'pump-1', enabled: true }] }, { registry: { secrets: JSON.stringify({ 'pump-1': { secret: 'too-short' } }) } });
    authNode().receive(request('/r', '{}', { 'x-api-key': API_KEY }));
    await settle(600);
    expect(got.rejected[0]).toMatchObject({ statusCode: 503, error: { code: 'registry_unavailable' } });
    expect(authStatus()).toEqual({ fill: 'red', shape: 'ring', text: 'iot-device-auth.status.registry-failed · ✓ 0 · ✗ 1' });
    expect(textOf(helper.log().args)).not.toContain('too-short');
  });

  it('rejects its input with invalid_config when set up wrongly', async () => {
    const got = await load({ method: 'teleport' });
    authNode().receive({ payload: 1 } as NodeMessage);
    await settle();
    expect(codes(got.rejected)).toEqual(['invalid_config']);
  });
});

describe('iot-device-registry from a file and from derived keys', () => {
  it('loads a CSV file, reloads it when it changes, and applies a revocation file', async () => {
    const hash = createHash('sha256').update(API_KEY).digest('hex');
    writeFileSync(join(userDir, 'devices.csv'), `id,apiKeyHash,meta.assetId\npump-1,${hash},02i1\n`);
    writeFileSync(join(userDir, 'revoked.txt'), '# none yet\n');
    const got = await load({ method: 'apikey' }, { source: 'file', file: 'devices.csv', revokedFile: 'revoked.txt' }, {});
    const send = () => authNode().receive(request('/r', '{}', { 'x-api-key': API_KEY }));
    await eventually('the file loaded', async () => {
      send();
      await settle();
      return got.ok.length > 0 ? true : undefined;
    });
    expect(got.ok[0].device).toEqual({ id: 'pump-1', method: 'apikey', meta: { assetId: '02i1' } });

    writeFileSync(join(userDir, 'devices.csv'), `id,apiKeyHash,meta.assetId\npump-1,${hash},02i2\n`);
    await eventually('the file reloaded', async () => {
      send();
      await settle();
      return (got.ok[got.ok.length - 1].device as { meta: { assetId: string } }).meta.assetId === '02i2' ? true : undefined;
    });

    writeFileSync(join(userDir, 'devices.csv'), 'id,apiKeyHash\npump-1,not-a-hash\n');
    await settle(600);
    send();
    await settle();
    expect(got.ok.length).toBeGreaterThan(1);
    expect(textOf(helper.log().args)).toContain('reload-failed');

    writeFileSync(join(userDir, 'revoked.txt'), 'pump-1\n');
    await eventually('the revocation applied', async () => {
      send();
      await settle();
      return codes(got.rejected).includes('revoked') ? true : undefined;
    });
  });

  it('derives device keys from a master secret in an environment variable (a flow from before key derivation v2: one key)', async () => {
    process.env.IOT_TEST_MASTER = MASTER;
    try {
      const got = await load({ method: 'auto' }, { source: 'derived', masterSource: 'env', masterEnv: 'IOT_TEST_MASTER', derivedMethods: ['apikey', 'hmac'], idPattern: '^meter-[0-9]+$', derivedMeta: '{"accountId":"001X"}' }, {});
      const key = derivedKey(Buffer.from(MASTER), 'meter-42', 'apikey', 'v1');
      authNode().receive(request('/r', '{}', { 'x-device-id': 'meter-42', 'x-api-key': derivedApiKey(key) }));
      authNode().receive(signedRequest('meter-43', '{}', derivedKey(Buffer.from(MASTER), 'meter-43', 'hmac', 'v1')));
      authNode().receive(request('/r', '{}', { 'x-device-id': 'valve-1', 'x-api-key': derivedApiKey(key) }));
      await settle();
      expect(got.ok.map((m) => m.device)).toEqual([
        { id: 'meter-42', method: 'apikey', meta: { accountId: '001X' } },
        { id: 'meter-43', method: 'hmac', meta: { accountId: '001X' } },
      ]);
      expect(codes(got.rejected)).toEqual(['unknown_device']);
      expect(textOf(helper.log().args)).not.toContain(MASTER);
    } finally {
      delete process.env.IOT_TEST_MASTER;
    }
  });
});

// --- the reading's time --------------------------------------------------------------------

describe('iot-device-auth sets the reading’s time once, at the edge', () => {
  const send = (body: unknown, extra: Record<string, unknown> = {}) => authNode().receive({ ...request('/r', JSON.stringify(body), { 'x-api-key': API_KEY }), ...extra } as NodeMessage);

  it('from the reading’s own time (ms, s or ISO 8601), else the time it was accepted, unless msg.timestamp was set before', async () => {
    const got = await load({ method: 'apikey' });
    const before = Date.now();
    send({ temperature: 1, timestamp: 1_700_000_000_123 });
    send({ temperature: 2, timestamp: 1_700_000_000 });
    send({ temperature: 3, timestamp: 1_700_000_000.5 });
    send({ temperature: 4, timestamp: '2023-11-14T22:13:20.250Z' });
    send({ temperature: 5, timestamp: '2023-11-14T23:13:20+01:00' });
    send({ temperature: 6 });
    send({ temperature: 7, timestamp: 1_700_000_000_000 }, { timestamp: 1_600_000_000_000 });
    await eventually('seven readings', () => (got.ok.length >= 7 ? true : undefined));
    const after = Date.now();
    expect(got.ok.slice(0, 5).map((m) => m.timestamp)).toEqual([1_700_000_000_123, 1_700_000_000_000, 1_700_000_000_500, 1_700_000_000_250, 1_700_000_000_000]);
    expect(got.ok[5].timestamp).toBeGreaterThanOrEqual(before);
    expect(got.ok[5].timestamp).toBeLessThanOrEqual(after);
    expect(got.ok[6].timestamp).toBe(1_600_000_000_000);
    // The reading itself is handed on as it came.
    expect(got.ok[0].payload).toEqual({ temperature: 1, timestamp: 1_700_000_000_123 });
  });

  it.each([['yesterday'], ['2023-11-14T22:13:20'], [-5], [true], [{ at: 1 }]])('refuses a reading whose time is not a time (%j) with bad_timestamp, 400', async (timestamp) => {
    const got = await load({ method: 'apikey' });
    send({ temperature: 1, timestamp });
    await eventually('the answer', () => (got.rejected.length > 0 ? true : undefined));
    expect(got.rejected[0]).toMatchObject({ statusCode: 400, error: { code: 'bad_timestamp' } });
    expect(got.ok).toEqual([]);
  });

  it('reads the time field the user names, or none', async () => {
    const got = await load({ method: 'apikey', timeField: 'ts' });
    send({ temperature: 1, ts: 1_700_000_000_000, timestamp: 'not read' });
    await eventually('the reading', () => (got.ok.length > 0 ? true : undefined));
    expect(got.ok[0].timestamp).toBe(1_700_000_000_000);
    await helper.unload();
    const none = await load({ method: 'apikey', timeField: '' });
    const before = Date.now();
    send({ temperature: 1, timestamp: 'not read' });
    await eventually('the reading', () => (none.ok.length > 0 ? true : undefined));
    expect(none.ok[0].timestamp).toBeGreaterThanOrEqual(before);
  });

  it('gives each part of a gateway batch its own time, and refuses the parts whose time is bad one by one', async () => {
    const got = await load({ method: 'hmac', gateway: true });
    const before = Date.now();
    const body = JSON.stringify({ readings: [{ sensor: 's-1', temperature: 20, timestamp: 1_700_000_000 }, { sensor: 's-1', temperature: 21 }, { sensor: 's-1', temperature: 22, timestamp: 'soon' }] });
    authNode().receive(signedRequest('gw-1', body));
    await eventually('the parts', () => (got.ok.length >= 2 && got.rejected.length >= 1 ? true : undefined));
    expect(got.ok[0].timestamp).toBe(1_700_000_000_000);
    expect(got.ok[1].timestamp).toBeGreaterThanOrEqual(before);
    expect(got.rejected[0]).toMatchObject({ error: { code: 'bad_timestamp', index: 2 } });
  });
});

// --- answering HTTP senders once stored -------------------------------------------------------

describe('iot-device-auth answering HTTP senders itself, once stored', () => {
  interface Door {
    url: string;
    accepted: NodeMessage[];
    rejected: NodeMessage[];
    delivered: NodeMessage[];
    close(): Promise<void>;
  }

  /** http in -> device-auth (answering once stored) -> buffer, with real HTTP. */
  async function door(auth: Record<string, unknown> = {}, buffer: Record<string, unknown> | false = {}): Promise<Door> {
    const tab = 'door';
    const flow: Flow = [
      { id: tab, type: 'tab', label: 'door' },
      { id: 'registry', type: 'iot-device-registry', z: tab, source: 'list', devices },
      { id: 'in', type: 'http in', z: tab, url: '/readings', method: 'post', upload: false, skipBodyParsing: true, wires: [['auth']] },
      { id: 'auth', type: 'iot-device-auth', z: tab, registry: 'registry', method: 'auto', answer: 'stored', wires: [[...(buffer ? ['buffer'] : []), 'accepted'], ['answer', 'rejected']], ...auth },
      // An http response node on the rejected output, as flows answering by the flow have: it must stay silent.
      { id: 'answer', type: 'http response', z: tab, statusCode: '418', wires: [] },
      ...(buffer ? [{ id: 'buffer', type: 'iot-buffer', z: tab, fsyncWindow: '2', wires: [['delivered'], [], [], []], ...buffer }] : []),
      ...['accepted', 'rejected', 'delivered'].map((id) => ({ id, type: 'helper', z: tab })),
    ];
    await helper.load([registryNode, deviceAuthNode, bufferNode, coreNodes.httpIn, captureHttpNodes], flow, { registry: { secrets: JSON.stringify(secrets) } });
    const seen: Record<'accepted' | 'rejected' | 'delivered', NodeMessage[]> = { accepted: [], rejected: [], delivered: [] };
    for (const id of ['accepted', 'rejected', 'delivered'] as const) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
    const server = await serveHttpNodes();
    return { url: `${server.url}/readings`, ...seen, close: server.close };
  }

  const post = (url: string, body: string, headers: Record<string, string> = { 'x-api-key': API_KEY }) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(10_000) });

  it('answers 202 {"status":"stored"} once the buffer stored the reading, and hands it on without the response', async () => {
    const d = await door();
    try {
      const res = await post(d.url, '{"temperature":21}');
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ status: 'stored' });
      expect(d.accepted).toHaveLength(1);
      expect(d.accepted[0].res).toBeUndefined();
      expect(d.accepted[0]._delivery).toMatchObject({ source: 'auth' });
      // Stored: the buffer delivers it, with the time the reading was accepted.
      await eventually('the delivery', () => (d.delivered.length > 0 ? true : undefined));
      expect(d.delivered[0]).toMatchObject({ payload: { temperature: 21 }, timestamp: d.accepted[0].timestamp, device: { id: 'pump-1' } });
    } finally {
      await d.close();
    }
  });

  it('answers 200 or 204 when set so', async () => {
    for (const [status, body] of [
      ['200', '{"status":"stored"}'],
      ['204', ''],
    ]) {
      const d = await door({ answerStatus: status });
      try {
        const res = await post(d.url, '{"temperature":21}');
        expect([res.status, await res.text()]).toEqual([Number(status), body]);
      } finally {
        await d.close();
        await helper.unload();
      }
    }
  });

  it('answers 503 with Retry-After when the buffer refuses the reading (queue full), and never 2xx for it', async () => {
    const d = await door({}, { maxMessages: '1', whenFull: 'refuse' });
    try {
      expect((await post(d.url, '{"temperature":21}')).status).toBe(202);
      const refused = await post(d.url, '{"temperature":22}');
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      await d.close();
    }
  });

  it('answers its own refusals with their status (400, 401, 413, 429 with Retry-After), once, and hands them on without req and res', async () => {
    const d = await door({ rate: '1', burst: '2' });
    try {
      const answers: Array<[number, string | null]> = [];
      for (const [body, headers] of [
        [DEEP, { 'x-api-key': API_KEY }],
        ['{}', { 'x-api-key': 'not-the-key-0123456789abcdefgh' }],
        [JSON.stringify({ blob: 'x'.repeat(70_000) }), { 'x-api-key': API_KEY }],
        ['{"temperature":1}', { 'x-api-key': API_KEY }],
        ['{"temperature":2}', { 'x-api-key': API_KEY }],
      ] as Array<[string, Record<string, string>]>) {
        const res = await post(d.url, body, headers);
        answers.push([res.status, res.headers.get('retry-after')]);
      }
      expect(answers).toEqual([
        [400, null],
        [401, null],
        [413, null],
        [202, null],
        [429, '1'],
      ]);
      await eventually('four rejections handed on', () => (d.rejected.length >= 4 ? true : undefined));
      expect(codes(d.rejected)).toEqual(['too_deep', 'unknown_device', 'too_large', 'rate_limited']);
      expect(d.rejected.map((m) => [m.req, m.res, m.statusCode])).toEqual([
        [undefined, undefined, 400],
        [undefined, undefined, 401],
        [undefined, undefined, 413],
        [undefined, undefined, 429],
      ]);
    } finally {
      await d.close();
    }
  });

  it('answers 503 with Retry-After when nothing settles the reading within "Answer within", and warns that a buffer must follow', async () => {
    const d = await door({ answerWithin: '0.5' }, false);
    try {
      const started = Date.now();
      const res = await post(d.url, '{"temperature":21}');
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(d.accepted).toHaveLength(1);
      await eventually('the warning', () => (textOf(helper.log().args).includes('iot-device-auth.errors.not-settled') ? true : undefined));
      await eventually('the timeout shown', () => (authStatus()?.fill === 'yellow' ? true : undefined));
      expect(authStatus()).toEqual({ fill: 'yellow', shape: 'ring', text: '✓ 1 · ✗ 0 · iot-device-auth.status.not-settled' });
    } finally {
      await d.close();
    }
  });

  it('settles a delivery wired back to its input: a Catch node after a decoder that failed (told not to retry) answers 422, a Complete node 2xx', async () => {
    const tab = 'decoding';
    const flow: Flow = [
      { id: tab, type: 'tab', label: 'decoding' },
      { id: 'registry', type: 'iot-device-registry', z: tab, source: 'list', devices },
      { id: 'in', type: 'http in', z: tab, url: '/readings', method: 'post', upload: false, skipBodyParsing: true, wires: [['auth']] },
      { id: 'auth', type: 'iot-device-auth', z: tab, registry: 'registry', method: 'apikey', answer: 'stored', wires: [['decode'], []] },
      // A decoder as a Cloudy flow has one: it throws on what it cannot read.
      { id: 'decode', type: 'function', z: tab, func: 'if (msg.payload.packed === "zz") { throw new Error("cannot decode zz"); }\nreturn msg;', outputs: 1, wires: [['decoded']] },
      { id: 'failed', type: 'catch', z: tab, scope: ['decode'], uncaught: false, wires: [['final']] },
      { id: 'final', type: 'change', z: tab, rules: [{ t: 'set', p: 'retry', pt: 'msg', to: 'false', tot: 'bool' }], wires: [['auth']] },
      { id: 'decoded', type: 'complete', z: tab, scope: ['decode'], uncaught: false, wires: [['auth']] },
    ];
    const functionNode = createRequire(nodeRedPath)('@node-red/nodes/core/function/10-function.js') as typeof registryNode;
    const changeNode = createRequire(nodeRedPath)('@node-red/nodes/core/function/15-change.js') as typeof registryNode;
    await helper.load([registryNode, deviceAuthNode, coreNodes.httpIn, coreNodes.catch, coreNodes.complete, functionNode, changeNode, captureHttpNodes], flow, { registry: { secrets: JSON.stringify(secrets) } });
    const server = await serveHttpNodes();
    try {
      const statusOf = async (body: string) => (await fetch(`${server.url}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY }, body, signal: AbortSignal.timeout(10_000) })).status;
      expect(await statusOf('{"packed":"0a1b"}')).toBe(202);
      expect(await statusOf('{"packed":"zz"}')).toBe(422);
    } finally {
      await server.close();
    }
  });

  it('answers a gateway batch once every part is stored', async () => {
    const d = await door({ method: 'hmac', gateway: true });
    try {
      const body = JSON.stringify({ readings: [{ sensor: 's-1', temperature: 20 }, { sensor: 's-2', temperature: 99 }, { sensor: 's-1', temperature: 21 }] });
      const signed = hmacSigned(Buffer.from(SECRET), 'gw-1', 'POST /readings', body);
      const res = await post(d.url, body, hmacHeaders(signed));
      expect(res.status).toBe(202);
      expect(d.accepted.map((m) => (m.payload as { temperature: number }).temperature)).toEqual([20, 21]);
      expect(new Set(d.accepted.map((m) => (m._delivery as { id: string }).id)).size).toBe(2);
      expect(d.rejected.map((m) => [(m.error as { code: string }).code, m._delivery, m.res])).toEqual([['not_under_gateway', undefined, undefined]]);
    } finally {
      await d.close();
    }
  });
});

// --- a batch split into parts: device-auth is the parts' source ---------------------------------

describe('iot-device-auth settling a split batch’s own delivery', () => {
  /** A stand-in for a source upstream (a broker holding a PUBACK): it records what it is told. */
  function upstreamSource(RED: import('node-red').NodeAPI): void {
    RED.nodes.registerType('test-source', function (this: Node & { settleDelivery(id: string, o: Outcome): void; settled: Array<[string, Outcome]> }, def: import('node-red').NodeDef) {
      RED.nodes.createNode(this, def);
      this.settled = [];
      this.settleDelivery = (id, o) => this.settled.push([id, o]);
    });
  }
  const settledUpstream = () => (helper.getNode('src') as unknown as { settled: Array<[string, Outcome]> }).settled;

  async function split(): Promise<Received> {
    const flow = [...authFlow({ method: 'hmac', gateway: true }), { id: 'src', type: 'test-source' }];
    await helper.load([registryNode, deviceAuthNode, upstreamSource], flow, { registry: { secrets: JSON.stringify(secrets) } });
    const received: Received = { ok: [], rejected: [] };
    helper.getNode('ok').on('input', (msg: NodeMessage) => received.ok.push(msg));
    helper.getNode('rejected').on('input', (msg: NodeMessage) => received.rejected.push(msg));
    return received;
  }

  function batch(id: string): NodeMessage {
    const body = JSON.stringify({ readings: [{ sensor: 's-1', temperature: 20 }, { sensor: 's-2', temperature: 99 }, { sensor: 's-1', temperature: 21 }] });
    return { ...signedRequest('gw-1', body), res: undefined, _delivery: { source: 'src', id } } as NodeMessage;
  }

  const settlePart = (msg: NodeMessage, outcome: Outcome) => (authNode() as unknown as { settleDelivery(id: string, o: Outcome): void }).settleDelivery((msg._delivery as { id: string }).id, outcome);

  it('hands the parts on with tokens of its own and settles the batch once every part is settled (rejected sensors count as settled)', async () => {
    const got = await split();
    authNode().receive(batch('b-1'));
    await eventually('two parts', () => (got.ok.length >= 2 ? true : undefined));
    expect(got.ok.map((m) => (m._delivery as { source: string }).source)).toEqual(['auth', 'auth']);
    expect(got.rejected.map((m) => m._delivery)).toEqual([undefined]);
    settlePart(got.ok[0], { ok: true });
    expect(settledUpstream()).toEqual([]);
    settlePart(got.ok[1], { ok: true });
    expect(settledUpstream()).toEqual([['b-1', { ok: true }]]);
  });

  it('asks for the whole batch again when any part was not taken', async () => {
    const got = await split();
    authNode().receive(batch('b-2'));
    await eventually('two parts', () => (got.ok.length >= 2 ? true : undefined));
    const notTaken: Outcome = { ok: false, retry: true, code: 'disk_full', reason: 'disk_full: no space left on the device' };
    settlePart(got.ok[1], notTaken);
    settlePart(got.ok[0], { ok: true });
    expect(settledUpstream()).toEqual([['b-2', notTaken]]);
  });

  it('settles the delivery of a message it rejects: for good, or to be sent again for a transient refusal', async () => {
    await split();
    authNode().receive({ ...signedRequest('gw-1', '{"readings":[]}'), res: undefined, _delivery: { source: 'src', id: 'b-3' } } as NodeMessage);
    await eventually('the settlement', () => (settledUpstream().length > 0 ? true : undefined));
    expect(settledUpstream()).toEqual([['b-3', { ok: false, retry: false, code: 'malformed', reason: expect.stringContaining('malformed: ') }]]);
  });
});

// --- poison messages ---------------------------------------------------------------------

/** A reading nested 3,000 levels deep: 6 KB that overflow the stack of anything that walks it recursively. */
const DEEP = `{"temperature":${'['.repeat(3000)}1${']'.repeat(3000)}}`;

/** Unhandled rejections and uncaught exceptions while `run` runs, and a little after. */
async function escapes(run: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const onRejection = (reason: unknown) => seen.push(`unhandled rejection: ${(reason as Error)?.message ?? String(reason)}`);
  const onException = (err: Error) => seen.push(`uncaught exception: ${err.message}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  try {
    await run();
    await settle(200);
  } finally {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  }
  return seen;
}

describe('iot-device-auth and poison messages', () => {
  it('refuses a reading nested 3,000 levels deep with too_deep, as bytes or already parsed, and too many keys with too_many_keys', async () => {
    expect(Buffer.byteLength(DEEP)).toBeLessThan(6_100);
    const got = await load({ method: 'apikey' });
    authNode().receive(request('/r', DEEP, { 'x-api-key': API_KEY }));
    authNode().receive({ ...request('/r', '', { 'x-api-key': API_KEY }), payload: JSON.parse(DEEP) as unknown } as NodeMessage);
    authNode().receive(request('/r', JSON.stringify({ readings: new Array(10_001).fill(0) }), { 'x-api-key': API_KEY }));
    await eventually('three answers', () => (got.ok.length + got.rejected.length >= 3 ? true : undefined));
    expect(got.ok).toEqual([]);
    expect(codes(got.rejected)).toEqual(['too_deep', 'too_deep', 'too_many_keys']);
    expect(got.rejected.map((m) => m.statusCode)).toEqual([400, 400, 400]);
    // What leaves for logging holds nothing deep: Catch and debug nodes clone it.
    expect(got.rejected.map((m) => typeof m.payload)).toEqual(['string', 'string', 'string']);
  });

  it('takes its parse limits from its settings', async () => {
    const got = await load({ method: 'apikey', maxDepth: '3', maxKeys: '4' });
    authNode().receive(request('/r', '{"a":{"b":[1]}}', { 'x-api-key': API_KEY }));
    authNode().receive(request('/r', '{"a":{"b":[[1]]}}', { 'x-api-key': API_KEY }));
    authNode().receive(request('/r', '{"a":1,"b":2,"c":3,"d":4,"e":5}', { 'x-api-key': API_KEY }));
    await eventually('three answers', () => (got.ok.length + got.rejected.length >= 3 ? true : undefined));
    expect(got.ok.map((m) => m.payload)).toEqual([{ a: { b: [1] } }]);
    expect(codes(got.rejected)).toEqual(['too_deep', 'too_many_keys']);
  });

  it.each([
    ['an API key (checked at once)', 'apikey'],
    ['a JWT (checked later, in a promise)', 'jwt'],
  ])('lets no deep message escape as an unhandled rejection or exception, with a Catch and a Complete node wired to it: %s', async (_name, method) => {
    const tab = 'poison';
    const flow: Flow = [
      { id: tab, type: 'tab', label: 'poison' },
      { id: 'registry', type: 'iot-device-registry', z: tab, source: 'list', devices },
      { id: 'in', type: 'http in', z: tab, url: '/readings', method: 'post', wires: [['auth']] },
      { id: 'auth', type: 'iot-device-auth', z: tab, registry: 'registry', method, catchErrors: true, wires: [['ok', 'answer'], ['answer', 'rejected']] },
      { id: 'answer', type: 'http response', z: tab, wires: [] },
      { id: 'caught', type: 'catch', z: tab, scope: ['auth'], uncaught: false, wires: [['caughtHere']] },
      { id: 'completed', type: 'complete', z: tab, scope: ['auth'], uncaught: false, wires: [['completedHere']] },
      ...['ok', 'rejected', 'caughtHere', 'completedHere'].map((id) => ({ id, type: 'helper', z: tab })),
    ];
    await helper.load([registryNode, deviceAuthNode, coreNodes.httpIn, coreNodes.catch, coreNodes.complete, captureHttpNodes], flow, { registry: { secrets: JSON.stringify(secrets) } });
    const seen: Record<string, NodeMessage[]> = { ok: [], rejected: [], caughtHere: [], completedHere: [] };
    for (const id of Object.keys(seen)) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
    const server = await serveHttpNodes();
    const headers: Record<string, string> = method === 'jwt' ? { authorization: `Bearer ${await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1' })}` } : { 'x-api-key': API_KEY };
    const answers: number[] = [];
    try {
      const escaped = await escapes(async () => {
        for (const body of [DEEP, '{"temperature":21}']) {
          const res = await fetch(`${server.url}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(5_000) }).catch((err: Error) => err);
          answers.push(res instanceof Error ? 0 : res.status);
        }
      });
      expect(escaped).toEqual([]);
    } finally {
      await server.close();
    }
    // The deep reading is refused with its code (also to the Catch node); the good one goes on.
    expect(answers).toEqual([400, 200]);
    expect(codes(seen.rejected)).toEqual(['too_deep']);
    expect(seen.caughtHere.map((m) => (m.error as { message: string }).message)).toEqual([expect.stringContaining('too_deep')]);
    expect(seen.ok.map((m) => m.payload)).toEqual([{ temperature: 21 }]);
  });

  it('logs, and lets nothing escape, when a message carries something deep outside its payload (put there by an earlier node)', async () => {
    const tab = 'poison';
    const flow: Flow = [
      { id: tab, type: 'tab', label: 'poison' },
      { id: 'registry', type: 'iot-device-registry', z: tab, source: 'list', devices },
      { id: 'auth', type: 'iot-device-auth', z: tab, registry: 'registry', method: 'jwt', tokenProperty: 'jwt', catchErrors: true, wires: [['ok'], ['rejected']] },
      { id: 'caught', type: 'catch', z: tab, scope: ['auth'], uncaught: false, wires: [['caughtHere']] },
      { id: 'completed', type: 'complete', z: tab, scope: ['auth'], uncaught: false, wires: [['completedHere']] },
      ...['ok', 'rejected', 'caughtHere', 'completedHere'].map((id) => ({ id, type: 'helper', z: tab })),
    ];
    await helper.load([registryNode, deviceAuthNode, coreNodes.catch, coreNodes.complete], flow, { registry: { secrets: JSON.stringify(secrets) } });
    const ok: NodeMessage[] = [];
    helper.getNode('ok').on('input', (msg: NodeMessage) => ok.push(msg));
    const token = await deviceJwt(keyPairs().es256.privateKey, 'ES256', { sub: 'cam-1' });
    const escaped = await escapes(async () => {
      authNode().receive({ payload: '{"temperature":21}', jwt: token, context: JSON.parse(DEEP) as unknown } as NodeMessage);
      await eventually('the message handed on', () => (ok.length > 0 ? true : undefined));
    });
    expect(escaped).toEqual([]);
    // Logged (the helper answers messages by their key), not passed to the Catch node it broke.
    expect(textOf(helper.log().args)).toContain('iot-device-auth.errors.internal');
  });
});

// --- fuzz ------------------------------------------------------------------------------------

/** A small deterministic generator, so a failing input can be found again. */
function generator(seed: number) {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4_294_967_296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEF0123456789-_.:/+=%"{}[], \\\n\u0000é🙂';
  const text = (max: number) => Array.from({ length: int(max) }, () => ALPHABET[int(ALPHABET.length)]).join('');
  const value = (): unknown =>
    pick<() => unknown>([
      () => undefined,
      () => null,
      () => '',
      () => text(40),
      () => text(600),
      () => int(2) === 0 ? 'pump-1' : 'old-1',
      () => [text(10), text(10)],
      () => int(1e9),
      () => -1,
      () => ({ nested: text(5) }),
      () => randomBytes(int(64)),
      () => `Bearer ${text(30)}.${text(30)}.${text(10)}`,
      () => `SharedAccessSignature sr=${text(20)}&sig=${text(20)}&se=${int(2e9)}`,
      () => `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify({ sub: 'pump-1', exp: int(2e9) })).toString('base64url')}.`,
      () => String(nowSeconds() - int(1000)),
      () => 'a'.repeat(64),
    ])();
  const body = (): unknown =>
    pick<() => unknown>([
      () => Buffer.from(`{${text(50)}`),
      () => Buffer.from(text(200)),
      () => randomBytes(int(300)),
      () => `{"x":${text(10)}`,
      () => Buffer.alloc(2048, 0x61),
      () => ({ parsed: true }),
      () => 42,
      () => undefined,
    ])();
  return { value, body, int, pick, text };
}

const FUZZ_PER_METHOD = 10_000;

describe('fuzzing iot-device-auth', () => {
  it.each(['anonymous', 'apikey', 'hmac', 'sas', 'jwt', 'webhook', 'broker', 'auto'])(
    `%s: ${FUZZ_PER_METHOD.toLocaleString('en-US')} malformed inputs, every one rejected with a code`,
    async (method) => {
      const anonymous = method === 'anonymous';
      const got = await load({
        method,
        maxBytes: '1024',
        parse: 'json',
        ...(method === 'webhook' ? { deviceIdProperty: 'pump-1', deviceIdPropertyType: 'str' } : {}),
        ...(anonymous ? { rate: '1000000', burst: '1000000' } : {}),
      });
      const g = generator(method.length * 7919 + 17);
      for (let i = 0; i < FUZZ_PER_METHOD; i++) {
        const headers: Record<string, unknown> = {};
        for (const name of ['x-device-id', 'x-api-key', 'x-timestamp', 'x-nonce', 'x-signature', 'authorization']) {
          if (g.int(3) > 0) headers[name] = g.value();
        }
        // Anonymous accepts any well-formed body: its malformed inputs are bodies that cannot be JSON, or too large.
        let payload = g.body();
        // (No JSON text ends with "{".)
        if (anonymous) payload = g.int(2) === 0 ? Buffer.from(`${g.text(40)}{`) : Buffer.alloc(1025 + g.int(100), 0x20);
        const msg: Record<string, unknown> = { _msgid: String(i), payload };
        if (g.int(4) > 0) msg.req = { method: g.pick(['POST', 'GET', 'PUT', '']), originalUrl: `/${g.text(20)}`, headers, rawHeaders: [], ip: g.pick(['10.0.0.1', undefined]) };
        else msg.auth = headers;
        if (g.int(3) === 0) msg.topic = g.value();
        if (g.int(5) === 0) msg._broker = g.pick([{ node: 'auth', client: g.text(5), session: g.text(5), device: 'pump-1' }, g.value()]);
        if (g.int(5) === 0) msg.device = { id: 'pump-1', method: 'apikey' };
        authNode().receive(msg as NodeMessage);
      }
      await eventually('every input answered', () => (got.ok.length + got.rejected.length >= FUZZ_PER_METHOD ? true : undefined), 30_000, 50);
      expect(got.ok).toEqual([]);
      expect(got.rejected).toHaveLength(FUZZ_PER_METHOD);
      const seen = new Set(codes(got.rejected));
      expect([...seen].every((c) => typeof c === 'string' && /^[a-z_]+$/.test(c))).toBe(true);
      expect(seen.has('internal')).toBe(false);
    },
    60_000,
  );
});
