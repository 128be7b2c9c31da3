/**
 * The registry's pure core: device records and their validation, registry files (JSON and CSV),
 * derived keys, lockout, and the verdict of every method for good and bad credentials.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecord, decodeSecret, apiKeyHashOf, methodAllowed, type DeviceRecord } from '../../nodes/device-registry/records';
import { loadRegistryFile, parseIdList, parseRegistryText } from '../../nodes/device-registry/registry-file';
import { DeviceRegistry } from '../../nodes/device-registry/registry';
import { Lockout } from '../../nodes/device-registry/lockout';
import { DerivedStore, RecordStore, derivedApiKey, derivedKey } from '../../nodes/device-registry/stores';
import { signSas, parseSas } from '../../nodes/device-registry/sas';
import { signWebhook } from '../../nodes/device-registry/webhook';
import { REGISTRY_MIGRATIONS } from '../../nodes/device-registry/migrations';
import { migrateSettings } from '../../nodes/shared/settings-version';
import type { Presented, Verdict, VerifyPolicy } from '../../nodes/shared/device-registry-api';
import { deviceJwt, hmacSigned, keyPairs, nowSeconds, unsignedJwt } from '../support/device-credentials';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const SECRET = 'a-shared-secret-of-32-characters';
const API_KEY = 'key-for-pump-1-0123456789abcdef';
const policy: VerifyPolicy = { skewMs: 300_000, tokenSkewMs: 30_000, maxLifetimeMs: 3_600_000 };
const source = { where: 'device 1', secretsAllowed: true };

describe('device records', () => {
  it('takes a full record', () => {
    const record = parseRecord(
      {
        id: 'pump-1',
        enabled: 'true',
        methods: 'hmac jwt',
        secret: SECRET,
        apiKey: API_KEY,
        publicKey: keyPairs().es256.pem,
        algorithms: ['ES256'],
        gateway: 'gw-1',
        topics: { publish: ['devices/{id}/#'], subscribe: 'devices/{id}/commands/#' },
        meta: '{"assetId":"02i000000000001"}',
        'meta.accountId': '001000000000001',
      },
      source,
    );
    expect(record).toMatchObject({ id: 'pump-1', enabled: true, algorithms: ['ES256'], gateway: 'gw-1', meta: { assetId: '02i000000000001', accountId: '001000000000001' } });
    expect([...(record.methods ?? [])]).toEqual(['hmac', 'jwt']);
    expect(record.secret?.toString()).toBe(SECRET);
    expect(record.apiKeyHash?.equals(createHash('sha256').update(API_KEY).digest())).toBe(true);
    expect(record.topics).toEqual({ publish: ['devices/{id}/#'], subscribe: ['devices/{id}/commands/#'] });
    expect(methodAllowed(record, 'hmac')).toBe(true);
    expect(methodAllowed(record, 'apikey')).toBe(false);
  });

  it.each([
    [{ id: 'a/b' }, /is not a device id/],
    [{ id: '' }, /is not a device id/],
    [{ id: 'x'.repeat(129) }, /is not a device id/],
    [{ id: 'd', enabled: 'maybe' }, /enabled must be true or false/],
    [{ id: 'd', methods: 'hmac carrier-pigeon' }, /unknown method\(s\) carrier-pigeon/],
    [{ id: 'd', secret: 'short' }, /at least 16 bytes/],
    [{ id: 'd', secret: 'base64:###' }, /not base64/],
    [{ id: 'd', apiKeyHash: 'abc' }, /SHA-256 of the key in hex/],
    [{ id: 'd', publicKey: 'not a key' }, /PEM public key/],
    [{ id: 'd', publicKey: { kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' } }, /private or secret key/],
    [{ id: 'd', publicKey: { kty: 'oct', k: 'c2VjcmV0' } }, /private or secret key/],
    [{ id: 'd', algorithms: 'none' }, /unsupported algorithm\(s\) none/],
    [{ id: 'd', gateway: 'd' }, /cannot be its own gateway/],
    [{ id: 'd', publishTopics: 'devices/#/x' }, /MQTT topic filters/],
    [{ id: 'd', meta: '{broken' }, /meta is not valid JSON/],
    [{ id: 'd', meta: [1] }, /meta must be an object/],
  ])('refuses %j', (raw, error) => {
    expect(() => parseRecord(raw as Record<string, unknown>, source)).toThrow(error);
  });

  it('decodes secrets given as base64 or hex, and keeps API keys only hashed', () => {
    expect(decodeSecret(`base64:${Buffer.alloc(32, 7).toString('base64')}`)).toEqual(Buffer.alloc(32, 7));
    expect(decodeSecret(`hex:${'ab'.repeat(16)}`)).toEqual(Buffer.alloc(16, 0xab));
    const hash = createHash('sha256').update(API_KEY).digest();
    expect(apiKeyHashOf(`sha256:${hash.toString('hex')}`, false)).toEqual(hash);
    expect(apiKeyHashOf(API_KEY, true)).toEqual(hash);
    expect(() => apiKeyHashOf(API_KEY, false)).toThrow(/SHA-256/);
  });

  it('refuses secrets from a registry file', () => {
    expect(() => parseRecord({ id: 'd', secret: SECRET }, { where: 'line 2', secretsAllowed: false })).toThrow(/line 2: a registry file may not hold secrets/);
    expect(() => parseRecord({ id: 'd', apiKey: API_KEY }, { where: 'line 2', secretsAllowed: false })).toThrow(/use apiKeyHash/);
  });
});

describe('registry files', () => {
  const hash = createHash('sha256').update(API_KEY).digest('hex');

  it('reads CSV with quoted PEM keys, lists and meta columns', () => {
    const pem = keyPairs().es256.pem;
    const text = [
      'id,enabled,methods,apiKeyHash,publicKey,gateway,publishTopics,meta,meta.assetId',
      `gw-1,true,apikey,${hash},,,devices/{id}/# devices/+/status,,`,
      `s-1,false,,,"${pem}",gw-1,,"{""thresholds"":{""temperature"":{""warning"":70}}}",02i0001`,
    ].join('\r\n');
    const [gateway, sensor] = parseRegistryText(text, 'csv');
    expect(gateway).toMatchObject({ id: 'gw-1', enabled: true, topics: { publish: ['devices/{id}/#', 'devices/+/status'] } });
    expect(sensor).toMatchObject({ id: 's-1', enabled: false, gateway: 'gw-1', publicKeys: [pem], meta: { thresholds: { temperature: { warning: 70 } }, assetId: '02i0001' } });
  });

  it('reads JSON as an array or { devices }', () => {
    const devices = [{ id: 'd1', apiKeyHash: `sha256:${hash}`, meta: { accountId: '001' } }];
    expect(parseRegistryText(JSON.stringify(devices), 'json')[0]).toMatchObject({ id: 'd1', meta: { accountId: '001' } });
    expect(parseRegistryText(JSON.stringify({ devices }), 'json')).toHaveLength(1);
  });

  it.each([
    ['csv', 'name\nd1\n', /header needs an id column/],
    ['csv', 'id,colour\nd1,red\n', /line 1: unknown field "colour"/],
    ['csv', 'id,secret\nd1,a-shared-secret-of-32-characters\n', /line 2: a registry file may not hold secrets/],
    ['csv', 'id,enabled\nd1,true\nd/2,true\n', /line 3: id "d\/2" is not a device id/],
    ['json', '{"devices": 3}', /an array of devices/],
    ['json', '[{"id":"d1","apikeyhash":"x"}]', /device 1 \(d1\): unknown field "apikeyhash"/],
    ['json', '[1]', /device 1: not an object/],
    ['json', '[{', /not valid JSON/],
  ] as const)('refuses a %s file: %j', (format, text, error) => {
    expect(() => parseRegistryText(text, format)).toThrow(error);
  });

  it('loads a file into a store, refusing duplicate ids and unregistered gateways', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'registry-'));
    dirs.push(dir);
    const file = join(dir, 'devices.csv');
    writeFileSync(file, 'id,gateway\ngw,\ns1,gw\n');
    const store = await loadRegistryFile(file);
    expect(store.size).toBe(2);
    expect(store.get('s1')?.gateway).toBe('gw');
    writeFileSync(file, 'id,gateway\ns1,gw\n');
    await expect(loadRegistryFile(file)).rejects.toThrow(/devices.csv: device s1: its gateway gw is not registered/);
    writeFileSync(file, 'id\nd1\nd1\n');
    await expect(loadRegistryFile(file)).rejects.toThrow(/device d1 is registered twice/);
  });

  it('reads revocation lists', () => {
    expect(parseIdList('# revoked\npump-1\r\n\npump-2, pump-3\n')).toEqual(['pump-1', 'pump-2', 'pump-3']);
  });
});

describe('derived keys', () => {
  const master = randomBytes(32);
  const hmacOf = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();

  it('derives every device key from the master secret, with no record stored', () => {
    const store = new DerivedStore(master, { methods: ['hmac', 'apikey'], derivation: 'v2', idPattern: /^pump-\d+$/, gatewaySeparator: ':' });
    const record = store.get('pump-42') as DeviceRecord;
    expect(record.keyFor?.('hmac')).toEqual(hmacOf(master, 'iot/v2/hmac/pump-42'));
    expect(record.apiKeyHash).toEqual(createHash('sha256').update(derivedApiKey(hmacOf(master, 'iot/v2/apikey/pump-42'))).digest());
    expect(store.get('valve-1')).toBeUndefined();
    expect(store.get('pump-1/x')).toBeUndefined();
    expect(store.size).toBeUndefined();
    const any = new DerivedStore(master, { methods: ['hmac'], derivation: 'v2', gatewaySeparator: ':' });
    expect(any.get('gw-7:s-12')?.gateway).toBe('gw-7');
    expect(() => new DerivedStore(Buffer.alloc(8), { methods: ['hmac'], derivation: 'v2' })).toThrow(/at least 32 bytes/);
  });

  it('v2 gives each method its own key, labelled; v1 (old flows) one key for all', () => {
    const methods = ['apikey', 'hmac', 'sas', 'jwt', 'webhook'] as const;
    const v2 = methods.map((m) => derivedKey(master, 'pump-1', m, 'v2').toString('hex'));
    expect(new Set(v2).size).toBe(methods.length);
    expect(derivedKey(master, 'pump-1', 'sas', 'v2')).toEqual(hmacOf(master, 'iot/v2/sas/pump-1'));
    const v1 = methods.map((m) => derivedKey(master, 'pump-1', m, 'v1'));
    expect(v1.every((k) => k.equals(hmacOf(master, 'pump-1')))).toBe(true);
  });

  it('v2: whoever saw a device’s API key (its MQTT password) cannot sign as it', async () => {
    const registry = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
    registry.use(new DerivedStore(master, { methods: ['apikey', 'hmac', 'sas', 'jwt', 'webhook'], derivation: 'v2' }));
    const seen = Buffer.from(derivedApiKey(derivedKey(master, 'pump-5', 'apikey', 'v2')), 'base64url');
    expect(codeOf(await verdict(registry, { method: 'apikey', id: 'pump-5', key: seen.toString('base64url') }))).toBe('ok');
    expect(codeOf(await verdict(registry, { method: 'hmac', ...hmacSigned(seen, 'pump-5', 't', 'x') }))).toBe('bad_signature');
    expect(codeOf(await verdict(registry, { method: 'sas', token: signSas(seen, 'pump-5', nowSeconds() + 60) }))).toBe('bad_signature');
    expect(codeOf(await verdict(registry, { method: 'jwt', token: await deviceJwt(seen, 'HS256', { sub: 'pump-5' }) }))).toBe('bad_signature');
    const body = Buffer.from('{}');
    expect(codeOf(await verdict(registry, { method: 'webhook', id: 'pump-5', signature: signWebhook(seen, body), content: body }))).toBe('bad_signature');
    const own = (m: 'hmac' | 'jwt') => derivedKey(master, 'pump-5', m, 'v2');
    expect(codeOf(await verdict(registry, { method: 'hmac', ...hmacSigned(own('hmac'), 'pump-5', 't', 'x') }))).toBe('ok');
    expect(codeOf(await verdict(registry, { method: 'jwt', token: await deviceJwt(own('jwt'), 'HS256', { sub: 'pump-5' }) }))).toBe('ok');
  });

  it('signs a downlink to an integration with its webhook key, which never leaves the registry', async () => {
    const registry = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
    registry.use(new DerivedStore(master, { methods: ['apikey', 'webhook'], derivation: 'v2', idPattern: /^(?:vendor-cloud|sfx-\d+)$/ }));
    const body = Buffer.from('1700000000.{"id":"c-1"}');
    const signature = registry.sign('vendor-cloud', body, 'sha256');
    expect(signature).toBe(signWebhook(derivedKey(master, 'vendor-cloud', 'webhook', 'v2'), body));
    // The vendor checks it as the registry checks the vendor's own webhooks.
    expect(codeOf(await verdict(registry, { method: 'webhook', id: 'vendor-cloud', signature: signature as string, content: body }))).toBe('ok');
    expect(registry.sign('someone-else', body, 'sha256')).toBeUndefined();
    registry.setRevoked(['vendor-cloud']);
    expect(registry.sign('vendor-cloud', body, 'sha256')).toBeUndefined();
    const noWebhook = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
    noWebhook.use(new DerivedStore(master, { methods: ['apikey'], derivation: 'v2' }));
    expect(noWebhook.sign('vendor-cloud', body, 'sha256')).toBeUndefined();
  });

  it('an old registry (no settings version) keeps v1 and says so; a new one is v2', () => {
    expect(migrateSettings({ source: 'derived' }, REGISTRY_MIGRATIONS)).toEqual({ props: { source: 'derived', keyDerivation: 'v1', settingsVersion: 2 }, from: 1, notes: ['key-derivation-kept-v1'] });
    expect(migrateSettings({ source: 'list' }, REGISTRY_MIGRATIONS).notes).toEqual([]);
    expect(migrateSettings({ source: 'derived', settingsVersion: 2, keyDerivation: 'v2' as const }, REGISTRY_MIGRATIONS)).toMatchObject({ props: { keyDerivation: 'v2' }, from: 2, notes: [] });
    expect(() => migrateSettings({ settingsVersion: 3 }, REGISTRY_MIGRATIONS)).toThrow(/version 3, newer than this version of the pack knows \(2\)/);
    expect(() => migrateSettings({ settingsVersion: 'two' }, REGISTRY_MIGRATIONS)).toThrow(/not a version number/);
  });
});

describe('lockout', () => {
  it('locks an id after N failures within the window, for the lock time', () => {
    const lockout = new Lockout({ failures: 3, windowMs: 1_000, lockMs: 5_000 });
    expect(lockout.failed('d', 0)).toBe(false);
    expect(lockout.failed('d', 2_000)).toBe(false); // the window restarted
    expect(lockout.failed('d', 2_100)).toBe(false);
    expect(lockout.failed('d', 2_200)).toBe(true);
    expect(lockout.lockedUntil('d', 3_000)).toBe(7_200);
    expect(lockout.lockedCount(3_000)).toBe(1);
    expect(lockout.lockedUntil('d', 7_200)).toBe(0);
    lockout.succeeded('d');
    expect(lockout.lockedUntil('d', 3_000)).toBe(0);
  });

  it('forgets the oldest ids past its capacity, and does nothing when off', () => {
    const lockout = new Lockout({ failures: 1, windowMs: 1_000, lockMs: 1_000 }, 2);
    ['a', 'b', 'c'].forEach((id) => lockout.failed(id, 0));
    expect(['a', 'b', 'c'].map((id) => lockout.lockedUntil(id, 1))).toEqual([0, 1_000, 1_000]);
    const off = new Lockout({ failures: 0, windowMs: 1_000, lockMs: 1_000 });
    expect(off.failed('a', 0)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

function registryOf(records: Array<Record<string, unknown>>, lockout = { failures: 0, windowMs: 60_000, lockMs: 60_000 }): DeviceRegistry {
  const registry = new DeviceRegistry(lockout);
  registry.use(new RecordStore(records.map((r, i) => parseRecord(r, { where: `device ${i + 1}`, secretsAllowed: true }))));
  return registry;
}

async function verdict(registry: DeviceRegistry, presented: Presented, options: Partial<VerifyPolicy> = {}, now = Date.now()): Promise<Verdict> {
  return registry.verify(presented, { ...policy, ...options }, now);
}

const codeOf = (v: Verdict) => (v.ok ? 'ok' : v.code);

describe('verifying credentials', () => {
  const { es256, rs256, ed25519, other } = keyPairs();
  const registry = registryOf([
    { id: 'pump-1', secret: SECRET, apiKey: API_KEY, meta: { assetId: '02i1' } },
    { id: 'cam-1', publicKey: es256.pem },
    { id: 'cam-2', publicKey: rs256.pem },
    { id: 'cam-3', publicKey: ed25519.pem, algorithms: 'EdDSA' },
    { id: 'cam-4', secret: SECRET, publicKey: es256.pem, algorithms: 'ES256' },
    { id: 'old-1', secret: SECRET, enabled: false },
    { id: 'gw-1', secret: SECRET },
    { id: 's-1', gateway: 'gw-1' },
    { id: 's-2', gateway: 'pump-1' },
    { id: 's-3', gateway: 'gw-1', enabled: false },
  ]);
  const key = Buffer.from(SECRET);

  it('answers the device identity with its meta, or the reason', async () => {
    const ok = await verdict(registry, { method: 'apikey', id: 'pump-1', key: API_KEY });
    expect(ok).toEqual({ ok: true, device: { id: 'pump-1', method: 'apikey', meta: { assetId: '02i1' } } });
    const bad = await verdict(registry, { method: 'apikey', id: 'pump-1', key: `${API_KEY}x` });
    expect(bad).toEqual({ ok: false, code: 'bad_key', message: 'the API key does not match', id: 'pump-1' });
    expect(Object.isFrozen((ok as { device: { meta: object } }).device.meta)).toBe(true);
  });

  it('finds a device by its API key alone', async () => {
    expect(await verdict(registry, { method: 'apikey', key: API_KEY })).toMatchObject({ ok: true, device: { id: 'pump-1' } });
    expect(codeOf(await verdict(registry, { method: 'apikey', key: 'nobody-has-this-key-0123456789' }))).toBe('unknown_device');
  });

  it.each([
    ['a good signature', {}, 'ok'],
    ['a forged signature', { forge: true }, 'bad_signature'],
    ['a stale timestamp', { timestamp: nowSeconds() - 600 }, 'expired'],
    ['a timestamp beyond the skew', { timestamp: nowSeconds() + 600 }, 'not_yet_valid'],
    ['a timestamp in milliseconds', { timestamp: Date.now() }, 'ok'],
    ['an unknown device', { id: 'nobody' }, 'unknown_device'],
    ['a revoked device', { id: 'old-1' }, 'revoked'],
    ['a device without a secret', { id: 'cam-1' }, 'method_not_allowed'],
  ])('HMAC: %s', async (_what, options: { forge?: boolean; timestamp?: number; id?: string }, expected) => {
    const signed = hmacSigned(options.forge ? randomBytes(32) : key, options.id ?? 'pump-1', 'POST /readings', '{"t":1}', { timestamp: options.timestamp });
    const result = await verdict(registry, { method: 'hmac', ...signed });
    expect(codeOf(result)).toBe(expected);
    const at = signed.timestamp.length > 11 ? Number(signed.timestamp) : Number(signed.timestamp) * 1000;
    if (result.ok) expect(result.replay).toEqual({ key: `hmac\n${signed.id}\n${signed.nonce}`, until: at + policy.skewMs });
  });

  it.each([
    [{ timestamp: '12:00' }, 'timestamp'],
    [{ nonce: 'short' }, 'nonce'],
    [{ bodyDigest: 'zz' }, 'digest'],
    [{ signature: 'not-a-signature' }, 'signature'],
    [{ scope: 'POST /a\nb' }, 'scope'],
    [{ id: '../etc' }, 'device id'],
  ])('HMAC: malformed %j', async (change, word) => {
    const result = await verdict(registry, { method: 'hmac', ...hmacSigned(key, 'pump-1', 'POST /r', ''), ...change });
    expect(result).toMatchObject({ ok: false, code: 'malformed' });
    expect((result as { message: string }).message).toContain(word);
  });

  it('HMAC: the signature covers the scope and the body', async () => {
    const signed = hmacSigned(key, 'pump-1', 'POST /readings', '{"t":1}');
    expect(codeOf(await verdict(registry, { method: 'hmac', ...signed, scope: 'POST /other' }))).toBe('bad_signature');
    expect(codeOf(await verdict(registry, { method: 'hmac', ...signed, bodyDigest: createHash('sha256').update('{"t":2}').digest('hex') }))).toBe('bad_signature');
    expect(codeOf(await verdict(registry, { method: 'hmac', ...signed, signature: Buffer.from(signed.signature, 'hex').toString('base64') }))).toBe('ok');
  });

  it.each([
    ['ES256', 'cam-1', () => es256.privateKey, {}, 'ok'],
    ['RS256', 'cam-2', () => rs256.privateKey, {}, 'ok'],
    ['EdDSA', 'cam-3', () => ed25519.privateKey, {}, 'ok'],
    ['HS256', 'pump-1', () => key, {}, 'ok'],
    ['ES256', 'cam-1', () => other.privateKey, {}, 'bad_signature'],
    ['ES256', 'cam-1', () => es256.privateKey, { exp: nowSeconds() - 600 }, 'expired'],
    ['ES256', 'cam-1', () => es256.privateKey, { nbf: nowSeconds() + 600 }, 'not_yet_valid'],
    ['ES256', 'cam-1', () => es256.privateKey, { iat: nowSeconds() + 600, exp: nowSeconds() + 900 }, 'not_yet_valid'],
    ['ES256', 'cam-1', () => es256.privateKey, { exp: nowSeconds() + 86_400 }, 'too_long_lived'],
    ['ES256', 'cam-1', () => es256.privateKey, { exp: undefined }, 'too_long_lived'],
    ['ES256', 'cam-1', () => es256.privateKey, { aud: 'someone-else' }, 'wrong_audience'],
    ['ES256', 'cam-1', () => es256.privateKey, { iss: 'cam-2' }, 'wrong_subject'],
    ['ES256', 'nobody', () => es256.privateKey, {}, 'unknown_device'],
    ['HS256', 'cam-4', () => key, {}, 'bad_algorithm'],
    ['HS256', 'cam-2', () => Buffer.from(rs256.pem), {}, 'bad_algorithm'],
  ])('JWT %s for %s, case %#: %s', async (alg, id, signer, claims, expected) => {
    const token = await deviceJwt(signer(), alg, { sub: id, ...claims });
    const options = 'aud' in claims ? { audiences: ['https://iot.example.com'] } : {};
    const result = await verdict(registry, { method: 'jwt', token }, options);
    expect(codeOf(result)).toBe(expected);
    if (result.ok) expect(result.device.claims).toMatchObject({ sub: id });
  });

  it('JWT: refuses alg none, a claimed id the token does not name, and remembers jti until exp', async () => {
    expect(codeOf(await verdict(registry, { method: 'jwt', token: unsignedJwt({ sub: 'cam-1' }) }))).toBe('bad_algorithm');
    const token = await deviceJwt(es256.privateKey, 'ES256', { sub: 'cam-1', jti: 'once', aud: 'https://iot.example.com' });
    expect(codeOf(await verdict(registry, { method: 'jwt', token, id: 'cam-2' }))).toBe('wrong_subject');
    const ok = await verdict(registry, { method: 'jwt', token, id: 'cam-1' }, { audiences: ['https://iot.example.com'] });
    expect(ok.ok && ok.replay?.key).toBe('jwt\ncam-1\nonce');
    expect(codeOf(await verdict(registry, { method: 'jwt', token: 'a.b' }))).toBe('malformed');
    expect(codeOf(await verdict(registry, { method: 'jwt', token: await deviceJwt(es256.privateKey, 'ES256', { sub: 'cam-1' }) }, { algorithms: ['RS256'] }))).toBe('bad_algorithm');
  });

  it('SAS: Azure-style tokens for the device, within their expiry', async () => {
    const se = nowSeconds() + 600;
    const token = signSas(key, 'hub.example.com/devices/pump-1', se);
    expect(parseSas(token)).toMatchObject({ id: 'pump-1', resource: 'hub.example.com/devices/pump-1', expiry: se });
    expect(await verdict(registry, { method: 'sas', token, id: 'pump-1' }, { sasResource: 'hub.example.com/' })).toMatchObject({ ok: true, device: { id: 'pump-1', method: 'sas' } });
    expect(codeOf(await verdict(registry, { method: 'sas', token }, { sasResource: 'other.example.com/' }))).toBe('wrong_audience');
    expect(codeOf(await verdict(registry, { method: 'sas', token, id: 'cam-1' }))).toBe('wrong_subject');
    expect(codeOf(await verdict(registry, { method: 'sas', token: signSas(randomBytes(32), 'hub.example.com/devices/pump-1', se) }))).toBe('bad_signature');
    expect(codeOf(await verdict(registry, { method: 'sas', token: signSas(key, 'pump-1', nowSeconds() - 600) }))).toBe('expired');
    expect(codeOf(await verdict(registry, { method: 'sas', token: signSas(key, 'pump-1', nowSeconds() + 86_400 * 30) }))).toBe('too_long_lived');
    expect(codeOf(await verdict(registry, { method: 'sas', token: 'SharedAccessSignature sr=pump-1&sig=x' }))).toBe('malformed');
    expect(codeOf(await verdict(registry, { method: 'sas', token: `${token}&se=1` }))).toBe('malformed');
  });

  it('webhook: HMAC of the exact bytes, with a prefix and a timestamp', async () => {
    const body = Buffer.from('{"device":"x", "value": 1}');
    const webhook = { hash: 'sha256' as const, encoding: 'hex' as const, prefix: 'sha256=' };
    const signature = `sha256=${signWebhook(key, body)}`;
    expect(await verdict(registry, { method: 'webhook', id: 'pump-1', signature, content: body }, { webhook })).toMatchObject({ ok: true });
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(body.toString())));
    expect(codeOf(await verdict(registry, { method: 'webhook', id: 'pump-1', signature, content: reserialised }, { webhook }))).toBe('bad_signature');
    expect(codeOf(await verdict(registry, { method: 'webhook', id: 'pump-1', signature: signWebhook(key, body), content: body }, { webhook }))).toBe('malformed');
    const ts = String(nowSeconds() - 900);
    const stamped = Buffer.concat([Buffer.from(`${ts}.`), body]);
    const base64 = { ...webhook, encoding: 'base64' as const, prefix: '' };
    expect(codeOf(await verdict(registry, { method: 'webhook', id: 'pump-1', signature: signWebhook(key, stamped, 'sha256', 'base64'), content: stamped, timestamp: ts }, { webhook: base64 }))).toBe('expired');
  });

  it('a device not registered for a method is refused like an unknown one, after the same work', async () => {
    const jwtOnly = await verdict(registry, { method: 'hmac', ...hmacSigned(key, 'cam-1', 't', '') });
    const unknown = await verdict(registry, { method: 'hmac', ...hmacSigned(key, 'ghost-1', 't', '') });
    expect([codeOf(jwtOnly), codeOf(unknown)]).toEqual(['method_not_allowed', 'unknown_device']);
  });

  it('takes about as long to refuse an unknown id as a registered one with a wrong credential', async () => {
    // Interleaved rounds and medians, so the load of a shared machine falls on both alike.
    const { es256: keys } = keyPairs();
    const timing = registryOf([{ id: 'pump-1', secret: SECRET, apiKey: API_KEY }, { id: 'cam-1', publicKey: keys.pem }]);
    const cases: Record<string, Array<() => Promise<Presented>>> = {
      'API key': [async () => ({ method: 'apikey', id: 'pump-1', key: 'guessed-key-0123456789abcdef' }), async () => ({ method: 'apikey', id: 'ghost-1', key: 'guessed-key-0123456789abcdef' })],
      HMAC: [async () => ({ method: 'hmac', ...hmacSigned(randomBytes(32), 'pump-1', 't', 'x') }), async () => ({ method: 'hmac', ...hmacSigned(randomBytes(32), 'ghost-1', 't', 'x') })],
      'JWT ES256': [async () => ({ method: 'jwt', token: await deviceJwt(other.privateKey, 'ES256', { sub: 'cam-1' }) }), async () => ({ method: 'jwt', token: await deviceJwt(other.privateKey, 'ES256', { sub: 'ghost-1' }) })],
    };
    const ratios: Record<string, number> = {};
    for (const [name, [registered, unknown]] of Object.entries(cases)) {
      const samples: [number[], number[]] = [[], []];
      const presented = await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? registered() : unknown())));
      for (let i = 0; i < presented.length; i++) {
        const started = process.hrtime.bigint();
        await timing.verify(presented[i], policy, Date.now(), `10.0.${i}.1`);
        samples[i % 2].push(Number(process.hrtime.bigint() - started));
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
      ratios[name] = Math.round((median(samples[1]) / median(samples[0])) * 10) / 10;
    }
    if (process.env.IOT_TIMING_LOG) console.log(ratios);
    const outside = Object.entries(ratios).filter(([, ratio]) => ratio < 0.5 || ratio > 2);
    expect(outside).toEqual([]);
  });

  it('gateways: a sensor is accepted only under its own gateway', () => {
    expect(registry.sensor('gw-1', 's-1', 'hmac')).toEqual({ ok: true, device: { id: 's-1', method: 'hmac', gateway: 'gw-1' } });
    expect(codeOf(registry.sensor('gw-1', 's-2', 'hmac'))).toBe('not_under_gateway');
    expect(codeOf(registry.sensor('gw-1', 's-3', 'hmac'))).toBe('revoked');
    expect(codeOf(registry.sensor('gw-1', 's-9', 'hmac'))).toBe('unknown_device');
  });

  it('refuses revoked ids from the revocation list, and says so only to valid credentials', async () => {
    const revocable = registryOf([{ id: 'pump-1', secret: SECRET }]);
    revocable.setRevoked(['pump-1']);
    expect(codeOf(await verdict(revocable, { method: 'hmac', ...hmacSigned(key, 'pump-1', 't', '') }))).toBe('revoked');
    expect(codeOf(await verdict(revocable, { method: 'hmac', ...hmacSigned(randomBytes(32), 'pump-1', 't', '') }))).toBe('bad_signature');
    expect(revocable.device('pump-1')?.enabled).toBe(false);
  });

  it('locks a device id out after repeated failures from one source, on every method, saying until when', async () => {
    const locking = registryOf([{ id: 'pump-1', secret: SECRET, apiKey: API_KEY }], { failures: 3, windowMs: 60_000, lockMs: 60_000 });
    const now = Date.now();
    const from = (presented: Presented, source: string, at = now) => locking.verify(presented, policy, at, source);
    for (let i = 0; i < 3; i++) expect(codeOf(await from({ method: 'apikey', id: 'pump-1', key: `wrong-key-${i}-0123456789` }, '203.0.113.9'))).toBe('bad_key');
    const locked = await from({ method: 'apikey', id: 'pump-1', key: API_KEY }, '203.0.113.9', now + 1_000);
    expect(locked).toMatchObject({ ok: false, code: 'locked_out', retryAfterMs: 59_000 });
    expect(codeOf(await from({ method: 'hmac', ...hmacSigned(key, 'pump-1', 't', '') }, '203.0.113.9'))).toBe('locked_out');
    expect(codeOf(await from({ method: 'apikey', id: 'pump-1', key: API_KEY }, '203.0.113.9', now + 61_000))).toBe('ok');
  });

  it('failures from one source never lock out the device proving its key from another', async () => {
    const locking = registryOf([{ id: 'pump-1', secret: SECRET, apiKey: API_KEY }], { failures: 3, windowMs: 60_000, lockMs: 300_000 });
    const now = Date.now();
    for (let i = 0; i < 30; i++) await locking.verify({ method: 'hmac', ...hmacSigned(randomBytes(32), 'pump-1', 't', '') }, policy, now, '198.51.100.66');
    expect(codeOf(await locking.verify({ method: 'hmac', ...hmacSigned(randomBytes(32), 'pump-1', 't', '') }, policy, now, '198.51.100.66'))).toBe('locked_out');
    expect(codeOf(await locking.verify({ method: 'hmac', ...hmacSigned(key, 'pump-1', 't', '') }, policy, now, '10.0.0.7'))).toBe('ok');
    expect(codeOf(await locking.verify({ method: 'apikey', id: 'pump-1', key: API_KEY }, policy, now, '10.0.0.7'))).toBe('ok');
  });

  it('locks unknown ids the same way, so a lock does not tell which ids exist', async () => {
    const locking = registryOf([{ id: 'pump-1', apiKey: API_KEY }], { failures: 2, windowMs: 60_000, lockMs: 60_000 });
    const codes = async (id: string) => {
      const seen = [];
      for (let i = 0; i < 3; i++) seen.push(codeOf(await locking.verify({ method: 'apikey', id, key: `wrong-key-${i}-0123456789` }, policy, Date.now(), '198.51.100.66')));
      return seen;
    };
    expect(await codes('pump-1')).toEqual(['bad_key', 'bad_key', 'locked_out']);
    expect(await codes('ghost-1')).toEqual(['unknown_device', 'unknown_device', 'locked_out']);
  });

  it('answers 10,000 credentials of every shape with a coded verdict, never a throw', async () => {
    const fuzzed = registryOf([{ id: 'pump-1', secret: SECRET, apiKey: API_KEY }, { id: 'cam-1', publicKey: es256.pem }], { failures: 3, windowMs: 60_000, lockMs: 60_000 });
    let state = 7;
    const next = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 4_294_967_296;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
    const values: Array<() => unknown> = [() => undefined, () => null, () => 1, () => '', () => 'pump-1', () => 'x'.repeat(5_000), () => randomBytes(10), () => ({}), () => [], () => 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjYW0tMSJ9.', () => 'SharedAccessSignature sr=pump-1&sig=abc&se=1', () => 'ab'.repeat(32), () => String(nowSeconds())];
    const known = new Set(['malformed', 'unknown_device', 'bad_key', 'bad_signature', 'bad_algorithm', 'wrong_subject', 'locked_out', 'expired', 'not_yet_valid', 'method_not_allowed', 'too_long_lived', 'wrong_audience']);
    const thrown: string[] = [];
    const unexpected = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const presented: Record<string, unknown> = { method: pick(['apikey', 'hmac', 'sas', 'jwt', 'webhook', 'teleport', undefined]) };
      for (const field of ['id', 'key', 'timestamp', 'nonce', 'signature', 'scope', 'bodyDigest', 'token', 'content']) if (next() < 0.7) presented[field] = pick(values)();
      try {
        const result = await fuzzed.verify(presented as unknown as Presented, policy, Date.now(), pick(['10.0.0.1', '10.0.0.2', undefined]));
        if (!result.ok && !known.has(result.code)) unexpected.add(result.code);
      } catch (err) {
        thrown.push(`${String(presented.method)}: ${(err as Error).message}`);
      }
    }
    expect(thrown).toEqual([]);
    expect([...unexpected]).toEqual([]);
  });

  it('refuses everything while it has no devices', async () => {
    const empty = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
    expect(empty.state).toBe('loading');
    expect(codeOf(await verdict(empty, { method: 'apikey', key: API_KEY }))).toBe('registry_unavailable');
    empty.loadFailed('devices.csv: line 3: bad');
    expect(empty.state).toBe('failed');
    expect(await verdict(empty, { method: 'apikey', key: API_KEY })).toMatchObject({ code: 'registry_unavailable', message: expect.stringContaining('line 3') });
  });

  it('verifies derived devices without storing them', async () => {
    const master = randomBytes(32);
    const derived = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
    derived.use(new DerivedStore(master, { methods: ['apikey', 'hmac', 'sas'], derivation: 'v1' }));
    const deviceKey = derivedKey(master, 'pump-77', 'hmac', 'v1');
    expect(codeOf(await verdict(derived, { method: 'apikey', id: 'pump-77', key: derivedApiKey(deviceKey) }))).toBe('ok');
    expect(codeOf(await verdict(derived, { method: 'hmac', ...hmacSigned(deviceKey, 'pump-77', 't', 'x') }))).toBe('ok');
    expect(codeOf(await verdict(derived, { method: 'sas', token: signSas(deviceKey, 'pump-77', nowSeconds() + 60) }))).toBe('ok');
    expect(codeOf(await verdict(derived, { method: 'hmac', ...hmacSigned(deviceKey, 'pump-78', 't', 'x') }))).toBe('bad_signature');
    expect(codeOf(await verdict(derived, { method: 'jwt', token: await deviceJwt(deviceKey, 'HS256', { sub: 'pump-77' }) }))).toBe('method_not_allowed');
  });
});
