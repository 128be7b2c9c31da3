/**
 * The device-auth pipeline without Node-RED: the attack table (each attack rejected with its
 * code and HTTP status), every method over HTTP and MQTT shapes, replays, rates, parsing,
 * allow-lists, gateway batches, and the bounded replay cache and token buckets.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isTransient } from '../../nodes/shared/coded-error';
import { readingTime } from '../../nodes/shared/timestamp';
import { DeviceAuthCore, httpStatusOf, webhookContent, type AuthInput, type AuthOutcome, type AuthSettings } from '../../nodes/device-auth/auth-core';
import { settingsFromProperties } from '../../nodes/device-auth/node-config';
import { ReplayCache } from '../../nodes/device-auth/replay-cache';
import { TokenBuckets } from '../../nodes/device-auth/token-bucket';
import { parseRecord } from '../../nodes/device-registry/records';
import { DeviceRegistry } from '../../nodes/device-registry/registry';
import { signSas } from '../../nodes/device-registry/sas';
import { RecordStore } from '../../nodes/device-registry/stores';
import { signWebhook } from '../../nodes/device-registry/webhook';
import type { DeviceIdentity } from '../../nodes/shared/device';
import { deviceJwt, hmacHeaders, hmacSigned, keyPairs, nowSeconds, unsignedJwt } from '../support/device-credentials';

const SECRET = 'a-shared-secret-of-32-characters';
const KEY = Buffer.from(SECRET);
const API_KEY = 'key-for-pump-1-0123456789abcdef';
const AUDIENCE = 'https://iot.example.com';

function registryOf(devices: Array<Record<string, unknown>>, lockout = { failures: 0, windowMs: 60_000, lockMs: 60_000 }): DeviceRegistry {
  const r = new DeviceRegistry(lockout);
  r.use(new RecordStore(devices.map((d, i) => parseRecord(d, { where: `device ${i}`, secretsAllowed: true }))));
  return r;
}

function registry(): DeviceRegistry {
  const { es256, rs256 } = keyPairs();
  const devices = [
    { id: 'pump-1', secret: SECRET, apiKey: API_KEY, meta: { assetId: '02i1', thresholds: { temperature: { warning: 70 } } } },
    { id: 'cam-1', publicKey: es256.pem },
    { id: 'cam-2', publicKey: rs256.pem },
    { id: 'old-1', secret: SECRET, enabled: false },
    { id: 'acme-cloud', secret: SECRET, methods: 'webhook' },
    { id: 'gw-1', secret: SECRET },
    { id: 's-1', gateway: 'gw-1', meta: { assetId: '02iS1' } },
    { id: 's-2', gateway: 'gw-1' },
    { id: 's-9', gateway: 'pump-1' },
  ];
  return registryOf(devices);
}

function settings(overrides: Partial<AuthSettings> = {}): AuthSettings {
  return {
    mode: 'auto',
    accepted: new Set(['apikey', 'hmac', 'sas', 'jwt', 'webhook'] as const),
    policy: { skewMs: 300_000, tokenSkewMs: 30_000, maxLifetimeMs: 3_600_000, audiences: [AUDIENCE] },
    scopedFields: [],
    requireJti: false,
    maxBytes: 1024,
    limits: { maxDepth: 32, maxKeys: 10_000 },
    timeField: 'timestamp',
    parse: 'auto',
    allowedFields: [],
    webhookContent: '{body}',
    replayCapacity: 1000,
    ...overrides,
  };
}

const noBroker = () => undefined;
const sharedRegistry = registry();

function core(overrides: Partial<AuthSettings> = {}, broker: (mark: unknown) => DeviceIdentity | undefined = noBroker): DeviceAuthCore {
  return new DeviceAuthCore(settings(overrides), sharedRegistry, broker);
}

/** An HTTP request as http-in with "Do not parse request body" hands it on. */
function http(path: string, body: string, headers: Record<string, string>, method = 'POST'): AuthInput {
  return {
    body: Buffer.from(body),
    http: { method, url: path, contentType: 'application/json' },
    fields: {
      deviceId: headers['x-device-id'],
      apiKey: headers['x-api-key'],
      timestamp: headers['x-timestamp'],
      nonce: headers['x-nonce'],
      signature: headers['x-signature'],
      token: headers.authorization,
    },
  };
}

function signedHttp(body = '{"temperature":21.5}', options: { id?: string; key?: Buffer; timestamp?: number; path?: string; signedPath?: string; signedBody?: string } = {}): AuthInput {
  const signed = hmacSigned(options.key ?? KEY, options.id ?? 'pump-1', `POST ${options.signedPath ?? options.path ?? '/readings'}`, options.signedBody ?? body, { timestamp: options.timestamp });
  return http(options.path ?? '/readings', body, hmacHeaders(signed));
}

async function run(auth: DeviceAuthCore, input: AuthInput): Promise<AuthOutcome> {
  return auth.authenticate(input, Date.now());
}

const codeOf = (o: AuthOutcome) => (o.ok ? 'ok' : o.code);
const { es256, rs256 } = keyPairs();

const bearer = async (alg: string, key: Parameters<typeof deviceJwt>[0], claims: Record<string, unknown>) => `Bearer ${await deviceJwt(key, alg, { aud: AUDIENCE, ...claims })}`;

describe('the attack table', () => {
  const replayed = signedHttp();
  const attacks: Array<[string, () => Promise<{ auth?: DeviceAuthCore; input: AuthInput; before?: AuthInput }>, string, number]> = [
    ['forged signature', async () => ({ input: signedHttp(undefined, { key: randomBytes(32) }) }), 'bad_signature', 401],
    ['tampered body', async () => ({ input: signedHttp('{"temperature":99}', { signedBody: '{"temperature":21.5}' }) }), 'bad_signature', 401],
    ['tampered path', async () => ({ input: signedHttp(undefined, { path: '/admin', signedPath: '/readings' }) }), 'bad_signature', 401],
    ['replayed nonce', async () => ({ input: replayed, before: replayed }), 'replayed', 401],
    ['stale timestamp', async () => ({ input: signedHttp(undefined, { timestamp: nowSeconds() - 3600 }) }), 'expired', 401],
    ['future timestamp beyond skew', async () => ({ input: signedHttp(undefined, { timestamp: nowSeconds() + 3600 }) }), 'not_yet_valid', 401],
    ['JWT with alg none', async () => ({ input: http('/r', '{}', { authorization: `Bearer ${unsignedJwt({ sub: 'cam-1', aud: AUDIENCE })}` }) }), 'bad_algorithm', 401],
    ['HS256 signed with the RSA public key', async () => ({ input: http('/r', '{}', { authorization: await bearer('HS256', Buffer.from(rs256.pem), { sub: 'cam-2' }) }) }), 'bad_algorithm', 401],
    ['expired JWT', async () => ({ input: http('/r', '{}', { authorization: await bearer('ES256', es256.privateKey, { sub: 'cam-1', exp: nowSeconds() - 3600, iat: nowSeconds() - 3900 }) }) }), 'expired', 401],
    ['JWT not yet valid', async () => ({ input: http('/r', '{}', { authorization: await bearer('ES256', es256.privateKey, { sub: 'cam-1', nbf: nowSeconds() + 3600, exp: nowSeconds() + 3700 }) }) }), 'not_yet_valid', 401],
    ['JWT for the wrong audience', async () => ({ input: http('/r', '{}', { authorization: await bearer('ES256', es256.privateKey, { sub: 'cam-1', aud: 'https://elsewhere.example.com' }) }) }), 'wrong_audience', 401],
    ['JWT for the wrong subject', async () => ({ input: http('/r', '{}', { authorization: await bearer('ES256', es256.privateKey, { sub: 'cam-1' }), 'x-device-id': 'cam-2' }) }), 'wrong_subject', 401],
    ['unknown device', async () => ({ input: signedHttp(undefined, { id: 'intruder-7' }) }), 'unknown_device', 401],
    ['revoked device', async () => ({ input: signedHttp(undefined, { id: 'old-1' }) }), 'revoked', 403],
    ['sensor not under its gateway', async () => ({ auth: core({ gateway: { batchPath: 'readings', sensorField: 'sensor', split: true, scoped: false } }), input: signedHttp('{"readings":[{"sensor":"s-9","t":1}]}', { id: 'gw-1' }) }), 'not_under_gateway', 403],
    ['oversized payload', async () => ({ input: signedHttp(`{"blob":"${'x'.repeat(2000)}"}`) }), 'too_large', 413],
    ['malformed JSON', async () => ({ input: signedHttp('{"temperature":') }), 'malformed', 400],
    ['missing headers', async () => ({ input: http('/readings', '{}', {}) }), 'missing_credentials', 401],
    ['HMAC headers without a signature', async () => ({ auth: core({ mode: 'hmac' }), input: http('/readings', '{}', { 'x-device-id': 'pump-1', 'x-timestamp': String(nowSeconds()), 'x-nonce': 'abcdefgh12' }) }), 'missing_credentials', 401],
    ['a header sent twice', async () => ({ auth: core({ mode: 'apikey' }), input: { ...http('/r', '{}', {}), fields: { apiKey: [API_KEY, API_KEY] } } }), 'malformed', 400],
    ['wrong API key', async () => ({ input: http('/r', '{}', { 'x-device-id': 'pump-1', 'x-api-key': 'guessed-key-0123456789abcdef' }) }), 'bad_key', 401],
    ['forged broker identity', async () => ({ auth: core({ mode: 'broker' }), input: { body: Buffer.from('{}'), topic: 'devices/pump-1/t', fields: {} } }), 'not_authenticated', 401],
  ];

  it.each(attacks)('%s is rejected', async (_name, make, code, status) => {
    const { auth = core(), input, before } = await make();
    if (before) expect(codeOf(await run(auth, before))).toBe('ok');
    const outcome = await run(auth, input);
    expect(outcome).toMatchObject({ ok: false, code, status });
    expect(httpStatusOf(code as never)).toBe(status);
  });
});

describe('each method', () => {
  it('HMAC over HTTP: the identity with its meta, and the parsed body', async () => {
    const outcome = await run(core({ mode: 'hmac' }), signedHttp());
    expect(outcome).toEqual({ ok: true, device: { id: 'pump-1', method: 'hmac', meta: { assetId: '02i1', thresholds: { temperature: { warning: 70 } } } }, payload: { temperature: 21.5 }, time: expect.any(Number) });
  });

  it('HMAC over MQTT: the topic is the scope', async () => {
    const body = '{"temperature":20}';
    const signed = hmacSigned(KEY, 'pump-1', 'devices/pump-1/telemetry', body);
    const input: AuthInput = { body: Buffer.from(body), topic: 'devices/pump-1/telemetry', fields: { deviceId: signed.id, timestamp: signed.timestamp, nonce: signed.nonce, signature: signed.signature } };
    expect(codeOf(await run(core({ mode: 'hmac' }), input))).toBe('ok');
    expect(codeOf(await run(core({ mode: 'hmac' }), { ...input, topic: 'devices/pump-2/telemetry' }))).toBe('bad_signature');
  });

  it('HMAC needs the bytes as sent', async () => {
    const input = { ...signedHttp(), body: { temperature: 21.5 } };
    const outcome = await run(core({ mode: 'hmac' }), input);
    expect(outcome).toMatchObject({ code: 'malformed', message: expect.stringContaining('Do not parse request body') });
  });

  it('API keys from a header, with or without a device id, and as a bearer token', async () => {
    const auth = core({ mode: 'apikey' });
    expect(await run(auth, http('/r', '{"a":1}', { 'x-api-key': API_KEY }))).toMatchObject({ ok: true, device: { id: 'pump-1', method: 'apikey' } });
    expect(codeOf(await run(auth, http('/r', '{}', { 'x-api-key': API_KEY, 'x-device-id': 'pump-1' })))).toBe('ok');
    expect(codeOf(await run(auth, http('/r', '{}', { authorization: `Bearer ${API_KEY}` })))).toBe('ok');
    expect(codeOf(await run(auth, http('/r', '{}', { 'x-api-key': API_KEY, 'x-device-id': 'cam-1' })))).toBe('method_not_allowed');
  });

  it('JWT: claims come along; jti is accepted once, whatever the body; a jti can be required', async () => {
    const token = await bearer('ES256', es256.privateKey, { sub: 'cam-1', site: 'plant-3' });
    const auth = core({ mode: 'jwt' });
    const ok = await run(auth, http('/r', '{"t":1}', { authorization: token }));
    expect(ok).toMatchObject({ ok: true, device: { id: 'cam-1', method: 'jwt', claims: { sub: 'cam-1', site: 'plant-3', aud: AUDIENCE } } });
    expect(codeOf(await run(auth, http('/r', '{"t":1}', { authorization: token })))).toBe('replayed');
    expect(codeOf(await run(auth, http('/r', '{"t":99}', { authorization: token })))).toBe('replayed');
    const withoutJti = await bearer('ES256', es256.privateKey, { sub: 'cam-1', jti: undefined });
    expect(codeOf(await run(core({ mode: 'jwt', requireJti: true }), http('/r', '{}', { authorization: withoutJti })))).toBe('unbound_token');
  });

  it('JWT: a token with neither jti nor a body hash is refused; bh binds it to the bytes sent', async () => {
    const auth = core({ mode: 'jwt' });
    const unbound = await bearer('ES256', es256.privateKey, { sub: 'cam-1', jti: undefined });
    expect(await run(auth, http('/r', '{"t":1}', { authorization: unbound }))).toMatchObject({ ok: false, code: 'unbound_token', status: 401 });
    const body = '{"temperature": 21.5}';
    const bh = createHash('sha256').update(body).digest('base64url');
    const bound = await bearer('ES256', es256.privateKey, { sub: 'cam-1', jti: undefined, bh });
    expect(codeOf(await run(auth, http('/r', body, { authorization: bound })))).toBe('ok');
    expect(await run(auth, http('/r', '{"temperature": 99}', { authorization: bound }))).toMatchObject({ ok: false, code: 'wrong_body', status: 401 });
    expect(codeOf(await run(core({ mode: 'jwt', requireJti: true }), http('/r', body, { authorization: bound })))).toBe('unbound_token');
    const parsed: AuthInput = { ...http('/r', body, { authorization: bound }), body: JSON.parse(body) };
    expect(codeOf(await run(auth, parsed))).toBe('malformed');
  });

  it('JWT: expiry is checked with a 30 s clock tolerance at defaults, however wide the timestamp window', async () => {
    const defaults = settingsFromProperties({ method: 'jwt', audience: AUDIENCE, skew: 300 });
    const auth = new DeviceAuthCore(defaults, sharedRegistry, noBroker);
    const late = (seconds: number) => bearer('ES256', es256.privateKey, { sub: 'cam-1', iat: nowSeconds() - 600, exp: nowSeconds() - seconds });
    expect(await run(auth, http('/r', '{}', { authorization: await late(270) }))).toMatchObject({ ok: false, code: 'expired', status: 401 });
    expect(codeOf(await run(auth, http('/r', '{}', { authorization: await late(20) })))).toBe('ok');
    const tolerant = new DeviceAuthCore(settingsFromProperties({ method: 'jwt', audience: AUDIENCE, tokenSkew: 300 }), sharedRegistry, noBroker);
    expect(codeOf(await run(tolerant, http('/r', '{}', { authorization: await late(270) })))).toBe('ok');
  });

  it('SAS tokens in the Authorization header', async () => {
    const token = signSas(KEY, 'hub.example.com/devices/pump-1', nowSeconds() + 600);
    expect(await run(core({ mode: 'sas' }), http('/r', '{}', { authorization: token }))).toMatchObject({ ok: true, device: { id: 'pump-1', method: 'sas' } });
    expect(codeOf(await run(core(), http('/r', '{}', { authorization: token })))).toBe('ok');
  });

  it('webhooks: the signature over the raw bytes, with a timestamp in the signed content, once', async () => {
    const body = '{ "device": "meter-9",  "value": 12 }';
    const ts = String(nowSeconds());
    const auth = core({ mode: 'webhook', webhookContent: 'v0:{timestamp}:{body}', policy: { skewMs: 300_000, tokenSkewMs: 30_000, maxLifetimeMs: 3_600_000, webhook: { hash: 'sha256', encoding: 'hex', prefix: 'v0=' } } });
    const signature = `v0=${signWebhook(KEY, `v0:${ts}:${body}`)}`;
    const input: AuthInput = { body: Buffer.from(body), http: { method: 'POST', url: '/hooks/acme', contentType: 'application/json' }, fields: { deviceId: 'acme-cloud', signature, timestamp: ts } };
    expect(await run(auth, input)).toMatchObject({ ok: true, device: { id: 'acme-cloud', method: 'webhook' }, payload: { device: 'meter-9', value: 12 } });
    expect(codeOf(await run(auth, input))).toBe('replayed');
    expect(codeOf(await run(auth, { ...input, fields: { ...input.fields, timestamp: undefined } }))).toBe('missing_credentials');
    expect(webhookContent('{timestamp}.{body}', '17', Buffer.from('x')).toString()).toBe('17.x');
  });

  it('anonymous: rate limited per source, with a field allow-list, never a real identity', async () => {
    const auth = core({ mode: 'anonymous', rate: { perSecond: 1, burst: 2 }, allowedFields: ['subject', 'description'] });
    const press = (source: string): AuthInput => ({ body: Buffer.from('{"subject":"Help","description":"button","orgid":"X","debug":1}'), source, fields: {} });
    const first = await run(auth, press('10.0.0.7'));
    expect(first).toEqual({ ok: true, device: { id: 'anonymous:10.0.0.7', method: 'anonymous' }, payload: { subject: 'Help', description: 'button' }, time: expect.any(Number) });
    expect(codeOf(await run(auth, press('10.0.0.7')))).toBe('ok');
    expect(await run(auth, press('10.0.0.7'))).toMatchObject({ code: 'rate_limited', status: 429, retryAfterSeconds: 1 });
    expect(codeOf(await run(auth, press('10.0.0.8')))).toBe('ok');
  });

  it('broker identity: asks the broker, and ignores any msg.device', async () => {
    const marks = new Map<unknown, DeviceIdentity>([['live-mark', { id: 'pump-1', method: 'apikey', meta: { assetId: '02i1' } }]]);
    const auth = core({ mode: 'broker' }, (mark) => marks.get(mark));
    expect(await run(auth, { body: Buffer.from('{"t":1}'), topic: 'devices/pump-1/t', fields: {}, brokerMark: 'live-mark' })).toMatchObject({ ok: true, device: { id: 'pump-1', method: 'apikey' } });
    expect(codeOf(await run(auth, { body: Buffer.from('{}'), fields: {}, brokerMark: 'stale-mark' }))).toBe('not_authenticated');
  });

  it('per-device rate limit after authentication', async () => {
    const auth = core({ mode: 'apikey', rate: { perSecond: 10, burst: 1 } });
    expect(codeOf(await run(auth, http('/r', '{}', { 'x-api-key': API_KEY })))).toBe('ok');
    expect(await run(auth, http('/r', '{}', { 'x-api-key': API_KEY }))).toMatchObject({ code: 'rate_limited', id: 'pump-1' });
  });

  it('parses the body by content type once verified, or keeps it raw', async () => {
    const form: AuthInput = { ...http('/r', 'subject=Broken&priority=High', { 'x-api-key': API_KEY }), http: { method: 'POST', url: '/r', contentType: 'application/x-www-form-urlencoded' } };
    expect(await run(core({ mode: 'apikey' }), form)).toMatchObject({ payload: { subject: 'Broken', priority: 'High' } });
    const binary: AuthInput = { body: Buffer.from([0, 1, 2, 255]), fields: { apiKey: API_KEY } };
    expect(((await run(core({ mode: 'apikey' }), binary)) as { payload: unknown }).payload).toEqual(Buffer.from([0, 1, 2, 255]));
    const text: AuthInput = { body: Buffer.from('21.5'), fields: { apiKey: API_KEY } };
    expect(await run(core({ mode: 'apikey' }), text)).toMatchObject({ payload: '21.5' });
    expect(await run(core({ mode: 'hmac', parse: 'raw' }), signedHttp())).toMatchObject({ payload: Buffer.from('{"temperature":21.5}') });
  });

  it('gateway batches: sensors not under the gateway are rejected one by one, the rest goes on', async () => {
    const body = JSON.stringify({ readings: [{ sensor: 's-1', temperature: 20 }, { sensor: 's-9', temperature: 21 }, { sensor: 's-2', temperature: 22 }, { temperature: 23 }, { sensor: 'ghost', t: 1 }] });
    const outcome = await run(core({ gateway: { batchPath: 'readings', sensorField: 'sensor', split: false, scoped: false } }), signedHttp(body, { id: 'gw-1' }));
    if (!outcome.ok) throw new Error(outcome.message);
    expect(outcome.device).toEqual({ id: 'gw-1', method: 'hmac' });
    expect(outcome.payload).toEqual({ readings: [{ sensor: 's-1', temperature: 20 }, { sensor: 's-2', temperature: 22 }] });
    expect(outcome.sensors?.map((s) => s.device)).toEqual([{ id: 's-1', method: 'hmac', gateway: 'gw-1', meta: { assetId: '02iS1' } }, { id: 's-2', method: 'hmac', gateway: 'gw-1' }]);
    expect(outcome.rejectedSensors?.map((r) => [r.index, r.code])).toEqual([[1, 'not_under_gateway'], [3, 'malformed'], [4, 'unknown_device']]);
    const bare = await run(core({ gateway: { batchPath: '', sensorField: 'id', split: true, scoped: false } }), signedHttp('[{"id":"s-1","v":1}]', { id: 'gw-1' }));
    expect(bare).toMatchObject({ ok: true, payload: [{ id: 's-1', v: 1 }] });
    expect(codeOf(await run(core({ gateway: { batchPath: 'readings', sensorField: 'sensor', split: true, scoped: false } }), signedHttp('{"readings":[]}', { id: 'gw-1' })))).toBe('malformed');
  });

  it('a sender speaks only for devices registered under it; names it chooses are its own', async () => {
    const scoped = registryOf([
      { id: 'vendor-cloud', secret: SECRET, methods: 'webhook' },
      { id: 'vendor-cloud:sfx-1', gateway: 'vendor-cloud', meta: { assetId: '02iV1' } },
      { id: 'pump-1', secret: SECRET },
      { id: 'partner-a', secret: SECRET },
      { id: 'partner-a:fc-1', gateway: 'partner-a' },
    ]);
    const webhook = (id: string, body: string): AuthInput => ({ body: Buffer.from(body), http: { method: 'POST', url: '/cb', contentType: 'application/json' }, fields: { deviceId: id, signature: signWebhook(KEY, body) } });
    const vendor = new DeviceAuthCore(settings({ mode: 'webhook', gateway: { batchPath: 'readings', sensorField: 'device', split: true, scoped: true } }), scoped, noBroker);
    const own = await run(vendor, webhook('vendor-cloud', '{"device":"sfx-1","data":"01"}'));
    expect(own).toMatchObject({ ok: true, device: { id: 'vendor-cloud' }, payload: { device: 'vendor-cloud:sfx-1', data: '01' } });
    expect((own as { sensors: Array<{ device: unknown }> }).sensors.map((s) => s.device)).toEqual([{ id: 'vendor-cloud:sfx-1', method: 'webhook', gateway: 'vendor-cloud', meta: { assetId: '02iV1' } }]);
    // Another device's name only ever means the sender's own device of that name.
    expect(await run(vendor, webhook('vendor-cloud', '{"device":"pump-1","data":"01"}'))).toMatchObject({ ok: false, code: 'not_under_gateway', status: 403 });
    expect(codeOf(await run(vendor, webhook('vendor-cloud', '{"device":"../pump-1","data":"01"}')))).toBe('not_under_gateway');
    expect(codeOf(await run(vendor, webhook('vendor-cloud', '{"data":"01"}')))).toBe('malformed');
    const registered = new DeviceAuthCore(settings({ mode: 'webhook', gateway: { batchPath: 'devices', sensorField: 'id', split: false, scoped: false } }), scoped, noBroker);
    const report = await run(registered, webhook('partner-a', '{"partner":"partner-b","devices":[{"id":"partner-a:fc-1"},{"id":"pump-1"}]}'));
    expect(report).toMatchObject({ ok: true, device: { id: 'partner-a' }, payload: { devices: [{ id: 'partner-a:fc-1' }] } });
    expect((report as { rejectedSensors: Array<{ code: string }> }).rejectedSensors.map((r) => r.code)).toEqual(['not_under_gateway']);
    const cameras = core({ mode: 'apikey', scopedFields: ['inspection', 'missing'] });
    expect(await run(cameras, http('/r', '{"inspection":"insp-7","site":"Lobby"}', { 'x-api-key': API_KEY }))).toMatchObject({ ok: true, payload: { inspection: 'pump-1:insp-7', site: 'Lobby' } });
  });

  it('a 429 always says when to try again', async () => {
    const locking = registryOf([{ id: 'pump-1', secret: SECRET }], { failures: 2, windowMs: 60_000, lockMs: 300_000 });
    const auth = new DeviceAuthCore(settings({ mode: 'hmac' }), locking, noBroker);
    const forged = () => ({ ...signedHttp(undefined, { key: randomBytes(32) }), source: '198.51.100.66' });
    await run(auth, forged());
    await run(auth, forged());
    const locked = await run(auth, forged());
    expect(locked).toMatchObject({ ok: false, code: 'locked_out', status: 429 });
    expect((locked as { retryAfterSeconds?: number }).retryAfterSeconds).toBeGreaterThanOrEqual(299);
    expect(codeOf(await run(auth, { ...signedHttp(), source: '10.0.0.7' }))).toBe('ok');
  });

  it('a full replay cache refuses a new signed message as its own passing reason (503, sent again), not as the device going too fast', async () => {
    const full = new DeviceAuthCore(settings({ mode: 'hmac', replayCapacity: 1 }), sharedRegistry, noBroker);
    // Signed the same second: the second expires no later than the first, which made room for it.
    const timestamp = nowSeconds();
    expect(codeOf(await run(full, signedHttp(undefined, { timestamp })))).toBe('ok');
    const refused = await run(full, signedHttp(undefined, { timestamp }));
    expect(refused).toMatchObject({ ok: false, code: 'replay_cache_full', status: 503, id: 'pump-1' });
    expect(refused).not.toHaveProperty('retryAfterSeconds');
    expect(isTransient('replay_cache_full')).toBe(true);
  });

  it('accepts only the methods the endpoint is set to accept', async () => {
    const direct = core({ accepted: new Set(['hmac', 'jwt'] as const) });
    expect(codeOf(await run(direct, signedHttp()))).toBe('ok');
    expect(codeOf(await run(direct, http('/r', '{}', { authorization: await bearer('ES256', es256.privateKey, { sub: 'cam-1' }) })))).toBe('ok');
    expect(await run(direct, http('/r', '{}', { 'x-device-id': 'pump-1', 'x-api-key': API_KEY }))).toMatchObject({ ok: false, code: 'method_not_allowed', status: 401 });
    expect(codeOf(await run(direct, http('/r', '{}', { authorization: signSas(KEY, 'pump-1', nowSeconds() + 60) })))).toBe('method_not_allowed');
  });

  it('a webhook integration is never locked out by strangers’ forged calls', async () => {
    const locking = registryOf([{ id: 'vendor-cloud', secret: SECRET, methods: 'webhook' }], { failures: 10, windowMs: 60_000, lockMs: 300_000 });
    const auth = new DeviceAuthCore(settings({ mode: 'webhook' }), locking, noBroker);
    const call = (signature: string, source: string): AuthInput => ({ body: Buffer.from('{"device":"sfx-1"}'), http: { method: 'POST', url: '/cb', contentType: 'application/json' }, source, fields: { deviceId: 'vendor-cloud', signature } });
    for (let i = 0; i < 30; i++) await run(auth, call(randomBytes(32).toString('hex'), '198.51.100.66'));
    expect(codeOf(await run(auth, call(randomBytes(32).toString('hex'), '198.51.100.66')))).toBe('locked_out');
    expect(codeOf(await run(auth, call(signWebhook(KEY, '{"device":"sfx-1"}'), '203.0.113.10')))).toBe('ok');
  });

  it('a registered device that may not use the method gets the same status as an unknown one', async () => {
    const jwtOnly = await run(core({ mode: 'hmac' }), signedHttp(undefined, { id: 'cam-1' }));
    const unknown = await run(core({ mode: 'hmac' }), signedHttp(undefined, { id: 'ghost-1' }));
    expect([jwtOnly, unknown].map((o) => [codeOf(o), (o as { status: number }).status])).toEqual([
      ['method_not_allowed', 401],
      ['unknown_device', 401],
    ]);
  });

  it('counts what it accepted and rejected', async () => {
    const auth = core();
    await run(auth, signedHttp());
    await run(auth, http('/r', '{}', {}));
    expect([auth.accepted, auth.rejected]).toEqual([1, 1]);
  });
});

describe('the replay cache', () => {
  it('says fresh once, then replayed until the entry expires', () => {
    const cache = new ReplayCache(100);
    expect(cache.check('pump-1\nn1', 1_000, 0)).toBe('fresh');
    expect(cache.check('pump-1\nn1', 1_000, 500)).toBe('replayed');
    expect(cache.check('pump-1\nn2', 1_000, 500)).toBe('fresh');
    expect(cache.check('pump-1\nn1', 2_000, 1_000)).toBe('fresh');
  });

  it('holds a fixed number of live entries, refuses more that expire no later than the ones it forgot, and reuses expired slots', () => {
    const cache = new ReplayCache(1000);
    const bytes = cache.bytes;
    for (let i = 0; i < 1000; i++) expect(cache.check(`k${i}`, 10_000, 0)).toBe('fresh');
    expect(cache.check('one-too-many', 10_000, 0)).toBe('full');
    expect(cache.check('k500', 10_000, 1)).not.toBe('fresh');
    for (let round = 1; round <= 20; round++) {
      for (let i = 0; i < 1000; i++) expect(cache.check(`r${round}-${i}`, 10_000 * (round + 1), 10_000 * round)).toBe('fresh');
    }
    expect(cache.check('r20-999', 1e9, 200_001)).toBe('replayed');
    expect(cache.bytes).toBe(bytes);
  });

  it('takes a steady stream of more signed messages than it holds per time window, and never takes one of them twice', () => {
    // 2,000 live entries' worth a window, in a table of 1,000: the Cloudy bench's 200,000 callbacks
    // stalled at 100,000 when a full table refused everything until entries expired.
    const cache = new ReplayCache(1000);
    const windowMs = 2_000;
    for (let i = 0; i < 20_000; i++) expect(cache.check(`vendor-cloud\ns${i}`, i + windowMs, i)).toBe('fresh');
    for (let i = 20_000 - windowMs + 1; i < 20_000; i++) expect(cache.check(`vendor-cloud\ns${i}`, i + windowMs, 20_000)).not.toBe('fresh');
    expect(cache.check('vendor-cloud\nlate', 20_000 + windowMs, 20_000)).toBe('fresh');
  });

  it('still knows a live entry after its table was rebuilt many times over by entries that expired', () => {
    const cache = new ReplayCache(100);
    expect(cache.check('pump-1\nkept', 1e9, 0)).toBe('fresh');
    // Each entry lives 1 ms: the table fills with expired slots and is rebuilt with the live ones.
    for (let i = 1; i <= 5_000; i++) expect(cache.check(`pump-2\nn${i}`, i + 1, i)).toBe('fresh');
    expect(cache.check('pump-1\nkept', 1e9, 5_001)).toBe('replayed');
    expect(cache.check('pump-2\nn5000', 1e9, 5_000)).toBe('replayed');
  });
});

describe('token buckets', () => {
  it('gives a burst, then a token per 1/rate seconds, and forgets the least recently used past capacity', () => {
    const buckets = new TokenBuckets(2, 2, 2);
    expect([buckets.take('a', 0), buckets.take('a', 0), buckets.take('a', 0)]).toEqual([0, 0, 500]);
    expect(buckets.take('a', 500)).toBe(0);
    buckets.take('b', 500);
    buckets.take('c', 500);
    expect(buckets.size).toBe(2);
    expect(buckets.take('a', 500)).toBe(0); // a was forgotten: a full bucket again
  });
});

describe('parse limits and the reading’s time', () => {
  const deep = (levels: number) => `{"t":${'['.repeat(levels)}1${']'.repeat(levels)}}`;
  const at = (body: string, overrides: Partial<AuthSettings> = {}, now = Date.now()) => core({ mode: 'hmac', maxBytes: 100_000, ...overrides }).authenticate(signedHttp(body), now);

  it.each<[string, string, Partial<AuthSettings>, string]>([
    ['3,000 levels deep', deep(3000), {}, 'too_deep'],
    ['one level over the limit', deep(3), { limits: { maxDepth: 3, maxKeys: 100 } }, 'too_deep'],
    ['at the limit', deep(2), { limits: { maxDepth: 3, maxKeys: 100 } }, 'ok'],
    ['10,001 items', JSON.stringify({ r: new Array(10_001).fill(0) }), {}, 'too_many_keys'],
    ['a time in ms', '{"t":1,"timestamp":1700000000000}', {}, 'ok'],
    ['a time that is text', '{"t":1,"timestamp":"noon"}', {}, 'bad_timestamp'],
    ['a time field not read', '{"t":1,"timestamp":"noon"}', { timeField: '' }, 'ok'],
  ])('%s', async (_name, body, overrides, code) => {
    expect(codeOf(await at(body, overrides))).toBe(code);
  });

  it('bounds a body something already parsed before anything walks it', async () => {
    const outcome = await core({ mode: 'broker' }, () => ({ id: 'pump-1', method: 'apikey' })).authenticate({ body: JSON.parse(deep(3000)), brokerMark: {}, fields: {} }, 0);
    expect(outcome).toMatchObject({ ok: false, code: 'too_deep', status: 400 });
  });

  it('takes the reading’s own time, else the time of acceptance', async () => {
    expect(await at('{"t":1,"timestamp":1700000000}')).toMatchObject({ ok: true, time: 1_700_000_000_000 });
    const now = Date.now();
    expect(await at('{"t":1}', {}, now)).toMatchObject({ ok: true, time: now });
  });
});

describe('a reading’s own time (nodes/shared/timestamp.ts)', () => {
  it.each<[unknown, number]>([
    [1_700_000_000_123, 1_700_000_000_123],
    [1_700_000_000, 1_700_000_000_000],
    [1_700_000_000.25, 1_700_000_000_250],
    ['2023-11-14T22:13:20Z', 1_700_000_000_000],
    ['2023-11-14T22:13:20.5+00:00', 1_700_000_000_500],
    ['2023-11-14T23:13:20,5+0100', 1_700_000_000_500],
    ['2023-11-14t22:13z', 1_699_999_980_000],
    ['2023-11-14T22:13:20', NaN],
    ['2023-11-14', NaN],
    ['1700000000', NaN],
    [-1, NaN],
    [Infinity, NaN],
    [null, NaN],
    [true, NaN],
  ])('%j is %d', (value, expected) => {
    expect(readingTime(value)).toBe(expected);
  });
});
