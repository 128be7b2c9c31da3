/**
 * Attacks on the HTTP senders of a running `npm start` (every pattern flow, the managed store,
 * the Salesforce sandbox), played from the outside with what an attacker has: the README, the
 * nodes' help, the specs, a key of its own or a key it saw. Each attack asserts the refusal, that
 * nothing of it reached the store or the CRM, and that the simulator's devices kept reporting
 * during and after it.
 *
 * Tests marked "[pattern flows]" fail only because the pattern flows do not yet use the new
 * security settings (Direct accepting HMAC and JWT only, vendor and partner devices scoped to
 * their sender, sender-scoped inspection ids, keys per method). Each runs as `it.fails` while the
 * shipped flows (flows/pattern-*.json) lack the setting it needs, and as `it` once they have it,
 * so it must pass then: see `onceFlows`.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { AUDIENCE, DeviceKeys, masterSecret } from '../../simulator/credentials';
import { packReading } from '../../simulator/devices';
import { acknowledgedPerPattern, deviceKeys, honestFailures, mqttConnect, sandboxRecords, send, sentinel, source, storedSeries, storedValues, whileDevicesReport, type HttpAnswer } from '../support/attacker';
import { hmacHeaders, hmacSigned } from '../support/device-credentials';
import { disposedAfterAll } from '../support/node-red-after-all';
import { type NodeRedProcess } from '../support/node-red-process';
import { eventually } from '../support/wait';

const started = disposedAfterAll();

/** A node of the shipped pattern flows (flows/pattern-*.json) by id: the settings npm start runs. */
function shippedNode(id: string): Record<string, unknown> | undefined {
  const dir = join(__dirname, '../../flows');
  for (const file of readdirSync(dir).filter((name) => name.startsWith('pattern-'))) {
    const found = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as Array<Record<string, unknown>>).find((n) => n.id === id);
    if (found) return found;
  }
  return undefined;
}

/**
 * A "[pattern flows]" test: expected to fail (`it.fails`) while the shipped flows lack the
 * setting it needs (`ready` false), a plain `it` that must pass once they have it.
 */
const onceFlows = (ready: boolean) => (ready ? it : it.fails);
/** Whether the shipped flows' registry derives keys of `method` (every method when the setting is absent). */
const registryDerives = (method: string) => ((methods) => !Array.isArray(methods) || methods.includes(method))(shippedNode('patterns.registry')?.derivedMethods);
const flowsReady = {
  directHmacAndJwtOnly: ((accepted) => Array.isArray(accepted) && accepted.length > 0 && accepted.every((m) => m === 'hmac' || m === 'jwt'))(shippedNode('direct.auth')?.accepted),
  keysPerMethod: shippedNode('patterns.registry')?.keyDerivation === 'v2',
  cloudyScoped: shippedNode('cloudy.auth')?.gatewayScoped === true,
  partnersScoped: shippedNode('partners.auth')?.gatewayScoped === true,
  doubleScoped: shippedNode('double.auth')?.gatewayScoped === true,
  inspectionScoped: String(shippedNode('augmented.auth')?.scopedFields ?? '').split(/[\s,]+/).includes('inspection'),
};
let node: NodeRedProcess;
let keys: DeviceKeys;

const url = (path: string) => `${node.editorUrl}${path}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A Direct report signed by HMAC as the simulator's devices sign it. */
function directHmac(id: string, body: string, from?: string): Promise<HttpAnswer> {
  return send(url('/direct/report'), { body, headers: keys.hmacHeaders(id, 'POST', '/direct/report', body), from });
}

/** A Direct report whose HMAC signature is made up (no key needed): what anyone can send. */
function forgedDirect(id: string, from: string): Promise<HttpAnswer> {
  const body = JSON.stringify({ temperature: 99.9, battery: 3.1 });
  return send(url('/direct/report'), { body, headers: { ...keys.hmacHeaders(id, 'POST', '/direct/report', body), 'x-signature': randomBytes(32).toString('hex') }, from });
}

/** The vendor cloud's callback for one device reading (Sigfox style), signed or not. */
function cloudyCallback(device: string, temperature: number, options: { forged?: boolean; from?: string } = {}): Promise<HttpAnswer> {
  const body = JSON.stringify({ device, time: nowSeconds(), data: packReading({ temperature, battery: 3.4 }, 1 + (Date.now() % 60_000)), seqNumber: 1 });
  const timestamp = String(nowSeconds());
  const signature = options.forged ? randomBytes(32).toString('hex') : keys.webhook('vendor-cloud', `${timestamp}.${body}`);
  return send(url('/cloudy/callback'), { body, headers: { 'x-vendor-timestamp': timestamp, 'x-vendor-signature': `sha256=${signature}` }, from: options.from });
}

/** A partner platform's signed call (or a forged one) to one of the partner endpoints. */
function partnerCall(path: string, partner: string, payload: unknown, options: { forged?: boolean; from?: string } = {}): Promise<HttpAnswer> {
  const body = JSON.stringify(payload);
  const timestamp = String(nowSeconds());
  const signature = options.forged ? randomBytes(32).toString('hex') : keys.webhook(partner, `${timestamp}.${body}`);
  return send(url(path), { body, headers: { 'x-partner-timestamp': timestamp, 'x-partner-signature': signature }, from: options.from });
}

/** A JWT naming `id`, signed with its HS256 key (from the derivation the flows use), with exactly the claims given. */
function deviceToken(id: string, claims: JWTPayload, key: Uint8Array = keys.key(id, 'jwt')): Promise<string> {
  return new SignJWT({ sub: id, aud: AUDIENCE, ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);
}

const bodyHash = (body: string) => createHash('sha256').update(body).digest('base64url');

const is2xx = (answer: HttpAnswer) => answer.status >= 200 && answer.status < 300;
/** A status as a test compares it: any 2xx is 'accepted' (a flow may answer 200, 202 or 204). */
const outcome = (answer: HttpAnswer): number | 'accepted' => (is2xx(answer) ? 'accepted' : answer.status);

/** An Azure IoT Hub shared access signature for `resource`, valid for five minutes. */
function sasToken(resource: string, key: Buffer): string {
  const expiry = nowSeconds() + 300;
  const encoded = encodeURIComponent(resource);
  const sig = createHmac('sha256', key).update(`${encoded}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${encoded}&sig=${encodeURIComponent(sig)}&se=${expiry}`;
}
const statuses = (answers: HttpAnswer[]) => answers.map((a) => a.status);

/** Sends `count` forged requests one after another and returns what came back. */
async function inTurn(count: number, attempt: () => Promise<HttpAnswer>): Promise<HttpAnswer[]> {
  const answers: HttpAnswer[] = [];
  for (let i = 0; i < count; i++) answers.push(await attempt());
  return answers;
}

/** The lockout as the README describes it: 401 for the first failures, then 429 with a Retry-After of at most 300 s. */
function expectLockedOutAfterTen(answers: HttpAnswer[]): void {
  expect(statuses(answers.slice(0, 9))).toEqual(Array(9).fill(401));
  expect(statuses(answers.slice(10))).toEqual(Array(answers.length - 10).fill(429));
  for (const answer of answers.filter((a) => a.status === 429)) {
    const retryAfter = Number(answer.headers['retry-after']);
    expect(answer.headers['retry-after'], 'a 429 without Retry-After').toMatch(/^\d+$/);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(300);
  }
}

beforeAll(async () => {
  node = await started();
  keys = deviceKeys(node);
  await eventually('the pattern flows answering', async () => ((await send(url('/cloudy/callback'), { body: '{}' })).status === 401 ? true : undefined), 60_000, 250);
}, 120_000);

describe('lockout as a weapon', () => {
  it('forged HMAC requests from one address lock out that address only: the Direct device keeps reporting from its own, during and after', async () => {
    let attack: HttpAnswer[] = [];
    let probes: HttpAnswer[] = [];
    const report = await whileDevicesReport(node, ['direct'], async () => {
      // pump-01 is a device the simulator runs right now.
      attack = await inTurn(14, () => forgedDirect('pump-01', source(2)));
      probes = [await directHmac('pump-01', JSON.stringify({ temperature: 21, battery: 3.6 })), await directHmac('pump-01', JSON.stringify({ temperature: 21.5, battery: 3.6 }))];
    });
    expectLockedOutAfterTen(attack);
    expect(probes.map(outcome)).toEqual(['accepted', 'accepted']);
    expect(honestFailures(report)).toEqual([]);
    expect(acknowledgedPerPattern(report).direct).toBeGreaterThan(2);
  });

  it('forged webhook calls never lock out the vendor cloud or the partners that prove their keys from their own addresses', async () => {
    let attacks: HttpAnswer[][] = [];
    let probes: HttpAnswer[] = [];
    const report = await whileDevicesReport(node, ['cloudy', 'partners', 'double'], async () => {
      attacks = await Promise.all([
        inTurn(13, () => cloudyCallback('sfx-01', 99.9, { forged: true, from: source(3) })),
        inTurn(13, () => partnerCall('/partners/callback', 'partner-fleetco', { partner: 'fleetco', sentAt: new Date().toISOString(), devices: [] }, { forged: true, from: source(4) })),
        inTurn(13, () => partnerCall('/double/readings', 'partner-relayco', { partner: 'relayco', readings: [] }, { forged: true, from: source(5) })),
      ]);
      probes = [
        await cloudyCallback('sfx-02', 20.5),
        await partnerCall('/partners/callback', 'partner-fleetco', { partner: 'fleetco', sentAt: new Date().toISOString(), devices: [{ id: 'fc-02', status: 'ok', temperature: { min: 20, max: 21, mean: 20.5, last: 21 }, battery: 3.5, alerts: [] }] }),
        await partnerCall('/double/readings', 'partner-relayco', { partner: 'relayco', readings: [{ device: 'rc-02', time: Date.now(), temperature: 20.5, battery: 3.5 }] }),
      ];
    });
    for (const answers of attacks) expectLockedOutAfterTen(answers);
    expect(probes.map((p) => is2xx(p) || p.status)).toEqual([true, true, true]);
    expect(honestFailures(report)).toEqual([]);
    expect(Object.keys(acknowledgedPerPattern(report)).sort()).toEqual(['cloudy', 'double', 'partners']);
  });

  it('answers a flood of anonymous presses 429 with Retry-After, from the flooding address only', async () => {
    const press = JSON.stringify({ kind: 'case', button: 'b-flood', location: 'Lobby', name: 'Flood', email: 'flood@example.com' });
    const flood = await Promise.all(Array.from({ length: 20 }, () => send(url('/anonymous/button'), { body: press, from: source(6) })));
    const limited = flood.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.filter((a) => !/^\d+$/.test(String(a.headers['retry-after'])))).toEqual([]);
    const other = await send(url('/anonymous/button'), { body: JSON.stringify({ kind: 'case', button: 'b-7', location: 'Lobby', name: 'Jo', email: 'jo@example.com' }), from: source(7) });
    expect(is2xx(other)).toBe(true);
  });
});

describe('one secret per purpose', () => {
  // [pattern flows] The README documents the Direct pattern as "HMAC or JWT".
  onceFlows(flowsReady.directHmacAndJwtOnly)('[pattern flows] the Direct endpoint accepts what its documentation says, HMAC or JWT: not an API key, not a SAS token', async () => {
    const id = 'pump-71';
    const body = JSON.stringify({ temperature: 99.9, battery: 3.0 });
    const byApiKey = await send(url('/direct/report'), { body, headers: { 'x-device-id': id, 'x-api-key': keys.apiKey(id) } });
    const bearerKey = await send(url('/direct/report'), { body, headers: { authorization: `Bearer ${keys.apiKey(id)}` } });
    const sas = sasToken(`iot-patterns/devices/${id}`, keys.key(id, 'sas'));
    if (registryDerives('sas')) {
      // The same token lets pump-71 into the Buffered broker: it is a good one.
      const control = await mqttConnect({ port: node.brokerPorts.buffered }, { clientId: id, username: id, password: sas });
      expect(control.connack).toBe(0);
      await control.client?.endAsync();
    }
    const bySas = await send(url('/direct/report'), { body, headers: { authorization: sas } });
    expect({ apiKey: byApiKey.status, bearer: bearerKey.status, sas: bySas.status }).toEqual({ apiKey: 401, bearer: 401, sas: 401 });
    // Nothing of pump-71 reached the CRM.
    await directHmac('pump-72', JSON.stringify({ temperature: 99.5, battery: 3.5 }));
    await sentinel("pump-72's Case", async () => ((await sandboxRecords(node.salesforceUrl, 'Case')).some((c) => c.IoT_Device_Id__c === 'pump-72') ? true : undefined));
    expect((await sandboxRecords(node.salesforceUrl, 'Asset')).filter((a) => a.IoT_Device_Id__c === id)).toEqual([]);
    expect((await sandboxRecords(node.salesforceUrl, 'Case')).filter((c) => c.IoT_Device_Id__c === id)).toEqual([]);
  });

  // [pattern flows] The README's IOT_KEY_DERIVATION says the pattern flows' registry is v1 (one key
  // for every method): then a device's MQTT password signs its HTTP requests. Passes once the
  // flows' registry uses a key per method (v2).
  onceFlows(flowsReady.keysPerMethod)('[pattern flows] an MQTT password seen on the wire does not sign HMAC requests or JWTs for the Direct endpoint', async () => {
    const id = 'pump-73';
    const password = keys.apiKey(id); // what pump-73 sends in its CONNECT to the Buffered broker
    const connected = await mqttConnect({ port: node.brokerPorts.buffered }, { clientId: id, username: id, password });
    expect(connected.connack).toBe(0);
    await connected.client?.endAsync();
    // The README: "the API key is its key in base64url".
    const seenKey = Buffer.from(password, 'base64url');
    const body = JSON.stringify({ temperature: 99.9, battery: 3.0 });
    const hmac = await send(url('/direct/report'), { body, headers: hmacHeaders(hmacSigned(seenKey, id, 'POST /direct/report', body)) });
    const jwt = await send(url('/direct/report'), { body, headers: { authorization: `Bearer ${await deviceToken(id, { iat: nowSeconds(), exp: nowSeconds() + 60, jti: randomUUID() }, seenKey)}` } });
    expect({ hmac: hmac.status, jwt: jwt.status }).toEqual({ hmac: 401, jwt: 401 });
  });

  it('with a registry on keys per method (v2), an MQTT password signs nothing, and the device keys of each method work', async () => {
    await addTab(node, attackTab());
    const master = masterSecret(node.dataDir);
    const v2 = new DeviceKeys(master, 'v2');
    const id = 'meter-7';
    const body = JSON.stringify({ temperature: 21.5 });
    await eventually('the v2 endpoint', async () => ((await send(url('/attack/v2'), { body })).status === 401 ? true : undefined), 20_000);
    const seenKey = Buffer.from(v2.apiKey(id), 'base64url');
    const forged = await send(url('/attack/v2'), { body, headers: hmacHeaders(hmacSigned(seenKey, id, 'POST /attack/v2', body)) });
    const forgedJwt = await send(url('/attack/v2'), { body, headers: { authorization: `Bearer ${await deviceToken(id, { iat: nowSeconds(), exp: nowSeconds() + 60, jti: randomUUID() }, seenKey)}` } });
    const apiKey = await send(url('/attack/v2'), { body, headers: { 'x-device-id': id, 'x-api-key': v2.apiKey(id) } });
    const hmac = await send(url('/attack/v2'), { body, headers: v2.hmacHeaders(id, 'POST', '/attack/v2', body) });
    const jwt = await send(url('/attack/v2'), { body, headers: { authorization: `Bearer ${await v2.jwt(id)}` } });
    expect({ forged: forged.status, forgedJwt: forgedJwt.status, apiKey: apiKey.status, hmac: hmac.status, jwt: jwt.status }).toEqual({ forged: 401, forgedJwt: 401, apiKey: 401, hmac: 200, jwt: 200 });
    expect(JSON.parse(hmac.body)).toEqual({ device: id, method: 'hmac' });
  });
});

describe('JWT replay', () => {
  it('refuses a token bound to nothing, a jti used twice, a body hash of another body, an exp 270 s or 31 s past; nothing of them reaches the CRM', async () => {
    const id = 'pump-62';
    const hot = JSON.stringify({ temperature: 99.9, battery: 3.0 });
    const mild = JSON.stringify({ temperature: 21.5, battery: 3.6 });
    const bearer = async (claims: JWTPayload) => ({ authorization: `Bearer ${await deviceToken(id, claims)}` });
    const live = () => ({ iat: nowSeconds(), exp: nowSeconds() + 120 });
    const answers: Record<string, number | 'accepted'> = {};

    const unbound = await bearer(live());
    answers.unbound = outcome(await send(url('/direct/report'), { body: mild, headers: unbound }));
    answers['unbound, replayed with another body'] = outcome(await send(url('/direct/report'), { body: hot, headers: unbound }));

    const once = await bearer({ ...live(), jti: randomUUID() });
    answers['jti, first use'] = outcome(await send(url('/direct/report'), { body: mild, headers: once }));
    answers['jti, replayed with another body'] = outcome(await send(url('/direct/report'), { body: hot, headers: once }));

    const bound = await bearer({ ...live(), bh: bodyHash(mild) });
    answers['bh, another body'] = outcome(await send(url('/direct/report'), { body: hot, headers: bound }));
    answers['bh, its body'] = outcome(await send(url('/direct/report'), { body: mild, headers: bound }));

    answers['exp 270 s past'] = outcome(await send(url('/direct/report'), { body: hot, headers: await bearer({ iat: nowSeconds() - 570, exp: nowSeconds() - 270, jti: randomUUID() }) }));
    answers['exp 31 s past'] = outcome(await send(url('/direct/report'), { body: hot, headers: await bearer({ iat: nowSeconds() - 331, exp: nowSeconds() - 31, jti: randomUUID() }) }));

    expect(answers).toEqual({
      unbound: 401,
      'unbound, replayed with another body': 401,
      'jti, first use': 'accepted',
      'jti, replayed with another body': 401,
      'bh, another body': 401,
      'bh, its body': 'accepted',
      'exp 270 s past': 401,
      'exp 31 s past': 401,
    });
    // A hot report of another device after them opens its Case: pump-62's would have opened by then.
    await directHmac('pump-63', JSON.stringify({ temperature: 99.5, battery: 3.5 }));
    await sentinel("pump-63's Case", async () => ((await sandboxRecords(node.salesforceUrl, 'Case')).some((c) => c.IoT_Device_Id__c === 'pump-63') ? true : undefined));
    expect((await sandboxRecords(node.salesforceUrl, 'Case')).filter((c) => c.IoT_Device_Id__c === id)).toEqual([]);
    const asset = (await sandboxRecords(node.salesforceUrl, 'Asset')).filter((a) => a.IoT_Device_Id__c === id);
    expect(asset.map((a) => a.Last_Temperature__c)).toEqual([21.5]);
  });

  it('refuses a camera token with no jti and one that expired 270 s ago; no inspection Case is opened', async () => {
    const id = 'cam-61';
    const inspection = () => JSON.stringify({ inspection: randomUUID(), site: 'Roof', takenAt: Date.now(), image: Buffer.alloc(768, 0x80).toString('base64') });
    const unbound = await send(url('/augmented/inspection'), { body: inspection(), headers: { authorization: `Bearer ${await deviceToken(id, { iat: nowSeconds(), exp: nowSeconds() + 60 })}` } });
    const expired = await send(url('/augmented/inspection'), { body: inspection(), headers: { authorization: `Bearer ${await deviceToken(id, { iat: nowSeconds() - 570, exp: nowSeconds() - 270, jti: randomUUID() })}` } });
    expect({ unbound: unbound.status, expired: expired.status }).toEqual({ unbound: 401, expired: 401 });
    const own = await send(url('/augmented/inspection'), { body: inspection(), headers: { authorization: `Bearer ${await keys.jwt('cam-62')}` } });
    expect(outcome(own)).toBe('accepted');
    expect((await sandboxRecords(node.salesforceUrl, 'Case')).filter((c) => c.IoT_Device_Id__c === id)).toEqual([]);
  });
});

describe('speaking for others', () => {
  /** The victim reports over MQTT as the Buffered pattern's devices do: its own point, the one it must keep. */
  async function victimReports(id: string): Promise<void> {
    const victim = await mqttConnect({ port: node.brokerPorts.buffered }, { clientId: id, username: id, password: keys.apiKey(id) });
    expect(victim.connack).toBe(0);
    await victim.client?.publishAsync(`devices/${id}/readings`, JSON.stringify({ temperature: 20.5, battery: 3.5, timestamp: Date.now() }), { qos: 1 });
    await victim.client?.endAsync();
    await eventually(`${id}'s own point`, async () => ((await storedValues(node.timeSeriesUrl, 'temperature', id)).includes(20.5) ? true : undefined), 30_000, 250);
  }

  // [pattern flows] Vendor devices are to be scoped to their sender.
  onceFlows(flowsReady.cloudyScoped)('[pattern flows] the vendor cloud cannot report readings or open Cases for pump-41, a device that is not its own', async () => {
    await victimReports('pump-41');
    // Refused, or taken as a device of the vendor's own (vendor-cloud:pump-41): either way not as pump-41.
    expect((await cloudyCallback('pump-41', 99.9)).status).toBeLessThan(500);
    // The vendor's own hot device after it: its point and Case show the pipeline has gone past the attack.
    expect(is2xx(await cloudyCallback('sfx-77', 99.8))).toBe(true);
    await sentinel("sfx-77's point", async () => ((await storedSeries(node.timeSeriesUrl, 'temperature')).some((s) => String(s.metric.device).endsWith('sfx-77')) ? true : undefined));
    await sentinel("sfx-77's Case", async () => ((await sandboxRecords(node.salesforceUrl, 'Case')).some((c) => String(c.IoT_Device_Id__c).endsWith('sfx-77')) ? true : undefined));
    expect(await storedValues(node.timeSeriesUrl, 'temperature', 'pump-41')).toEqual([20.5]);
    expect((await sandboxRecords(node.salesforceUrl, 'Case')).filter((c) => c.IoT_Device_Id__c === 'pump-41')).toEqual([]);
  });

  // [pattern flows] Partner devices are to be scoped to their sender.
  onceFlows(flowsReady.doubleScoped)('[pattern flows] a partner cannot write a pump-42 point that looks like the device\'s own', async () => {
    await victimReports('pump-42');
    const time = Date.now();
    const batch = await partnerCall('/double/readings', 'partner-relayco', { partner: 'relayco', readings: [{ device: 'pump-42', time, temperature: 99.7, battery: 3.3 }, { device: 'rc-77', time, temperature: 20.7, battery: 3.3 }] });
    expect(batch.status).toBeLessThan(500);
    await sentinel("rc-77's point", async () => ((await storedSeries(node.timeSeriesUrl, 'temperature')).some((s) => String(s.metric.device).endsWith('rc-77')) ? true : undefined));
    expect(await storedValues(node.timeSeriesUrl, 'temperature', 'pump-42')).toEqual([20.5]);
  });

  // [pattern flows] Names are to come from the authenticated partner, never from the body.
  onceFlows(flowsReady.partnersScoped)('[pattern flows] a partner naming another partner in its body creates no record of that partner', async () => {
    const forOther = await partnerCall('/partners/callback', 'partner-fleetco', {
      partner: 'relayco',
      sentAt: new Date().toISOString(),
      devices: [{ id: 'rc-66', status: 'alarm', temperature: { min: 95, max: 99, mean: 97, last: 99 }, battery: 3.1, alerts: [{ id: 'rc-66-overheat', reading: 'temperature', severity: 'critical', state: 'raised', value: 99, threshold: 85, text: 'temperature above 85' }] }],
    });
    expect(forOther.status).toBeLessThan(500);
    const own = await partnerCall('/partners/callback', 'partner-fleetco', { partner: 'fleetco', sentAt: new Date().toISOString(), devices: [{ id: 'fc-77', status: 'ok', temperature: { min: 20, max: 21, mean: 20.5, last: 21 }, battery: 3.5, alerts: [] }] });
    expect(is2xx(own)).toBe(true);
    await sentinel("fc-77's Asset", async () => ((await sandboxRecords(node.salesforceUrl, 'Asset')).some((a) => String(a.IoT_Device_Id__c).endsWith('fc-77')) ? true : undefined));
    const namingRelayco = (records: Array<Record<string, unknown>>) => records.filter((r) => /relayco/.test(String(r.IoT_Device_Id__c)) && /rc-66/.test(JSON.stringify(r))).map((r) => r.IoT_Device_Id__c);
    expect(namingRelayco(await sandboxRecords(node.salesforceUrl, 'Asset'))).toEqual([]);
    expect(namingRelayco(await sandboxRecords(node.salesforceUrl, 'Case'))).toEqual([]);
  });

  // [pattern flows] Inspection ids are to be scoped to the camera that sent them.
  onceFlows(flowsReady.inspectionScoped)("[pattern flows] a camera reusing another camera's inspection id does not overwrite its Case", async () => {
    const inspection = `insp-${randomUUID()}`;
    // Every pixel rust-coloured: an inspection that finds corrosion opens a Case in every version of the flow.
    const rust = Buffer.from(Array.from({ length: 16 * 16 }, () => [200, 60, 40]).flat()).toString('base64');
    const photo = (site: string) => JSON.stringify({ inspection, site, takenAt: Date.now(), image: rust });
    const casesOf = async (camera: string) => (await sandboxRecords(node.salesforceUrl, 'Case')).filter((c) => c.IoT_Device_Id__c === camera);
    const first = await send(url('/augmented/inspection'), { body: photo('Boiler room'), headers: { authorization: `Bearer ${await keys.jwt('cam-51')}` } });
    expect(outcome(first)).toBe('accepted');
    await sentinel("cam-51's Case", async () => ((await casesOf('cam-51')).length > 0 ? true : undefined));
    const second = await send(url('/augmented/inspection'), { body: photo('Nowhere'), headers: { authorization: `Bearer ${await keys.jwt('cam-52')}` } });
    expect(second.status).toBeLessThan(500);
    if (is2xx(second)) await sentinel("cam-52's Case", async () => ((await casesOf('cam-52')).length > 0 ? true : undefined));
    const original = await casesOf('cam-51');
    expect(original.map((c) => /Boiler room/.test(`${String(c.Subject)} ${String(c.Description)}`))).toEqual([true]);
    expect(original.filter((c) => /Nowhere/.test(`${String(c.Subject)} ${String(c.Description)}`))).toEqual([]);
  });
});

describe('enumeration', () => {
  /** What a sender can compare: the status, the body and the headers but the date. */
  const visible = (a: HttpAnswer) => ({ status: a.status, body: a.body, headers: Object.fromEntries(Object.entries(a.headers).filter(([name]) => !['date', 'x-request-id'].includes(name))) });

  it('answers a listed registry\'s known ids (wrong key, disabled, method not allowed) exactly as unknown ones', async () => {
    await addTab(node, attackTab());
    await eventually('the listed endpoint', async () => ((await send(url('/attack/enum'), { body: '{}' })).status === 401 ? true : undefined), 20_000);
    const body = JSON.stringify({ temperature: 20 });
    const wrongKey = (id: string) => send(url('/attack/enum'), { body, headers: { 'x-device-id': id, 'x-api-key': 'not-the-key-0123456789abcdef' }, from: source(20) });
    const wrongHmac = (id: string) => send(url('/attack/enum'), { body, headers: hmacHeaders(hmacSigned(Buffer.alloc(32, 1), id, 'POST /attack/enum', body)), from: source(21) });
    const answers = {
      'known, wrong API key': visible(await wrongKey('meter-1')),
      'known and disabled, wrong API key': visible(await wrongKey('meter-2')),
      'known, API key only, wrong HMAC': visible(await wrongHmac('meter-3')),
      'known, wrong HMAC': visible(await wrongHmac('meter-1')),
      'unknown, wrong API key': visible(await wrongKey('meter-404')),
      'unknown, wrong HMAC': visible(await wrongHmac('meter-404')),
    };
    const reference = answers['unknown, wrong API key'];
    expect(reference.status).toBe(401);
    expect(Object.entries(answers).filter(([, a]) => JSON.stringify(a) !== JSON.stringify(reference)).map(([what, a]) => `${what}: ${JSON.stringify(a)}`)).toEqual([]);
    // Genuine keys: the device is let in, and the disabled one may be told 403, since it proved itself.
    expect((await send(url('/attack/enum'), { body, headers: { 'x-device-id': 'meter-1', 'x-api-key': LISTED_KEYS['meter-1'] } })).status).toBe(200);
    expect((await send(url('/attack/enum'), { body, headers: { 'x-device-id': 'meter-2', 'x-api-key': LISTED_KEYS['meter-2'] } })).status).toBe(403);
  });

  it('locks an unknown id out after as many failures as a known one, so the lock tells nothing either', async () => {
    await addTab(node, attackTab());
    const body = JSON.stringify({ temperature: 20 });
    const attempt = (id: string, from: string) => send(url('/attack/enum'), { body, headers: { 'x-device-id': id, 'x-api-key': 'not-the-key-0123456789abcdef' }, from });
    const known = statuses(await inTurn(13, () => attempt('meter-1', source(22))));
    const unknown = statuses(await inTurn(13, () => attempt('meter-405', source(23))));
    expect(unknown).toEqual(known);
    expect(known.slice(-1)).toEqual([429]);
  });

  it('answers the pattern flows\' unknown ids as registered ones with a wrong signature', async () => {
    const body = JSON.stringify({ temperature: 20 });
    const forged = (id: string) => send(url('/direct/report'), { body, headers: { ...keys.hmacHeaders(id, 'POST', '/direct/report', body), 'x-signature': 'ab'.repeat(32) }, from: source(24) });
    const known = visible(await forged('pump-81'));
    const unknown = visible(await forged('intruder_1'));
    expect(unknown).toEqual(known);
  });
});

// The operator's own tab, added to npm start through the admin API: a listed registry with
// secrets in its credentials, and a derived registry on keys per method (v2).
const LISTED_KEYS = { 'meter-1': 'meter-1-api-key-0123456789', 'meter-2': 'meter-2-api-key-0123456789', 'meter-3': 'meter-3-api-key-0123456789' };
let tabAdded = false;

function attackTab(): Record<string, unknown> {
  const secrets = Object.fromEntries(Object.entries(LISTED_KEYS).map(([id, apiKey]) => [id, { secret: `${id}-hmac-secret-0123456789`, apiKey }]));
  const answer = (prefix: string) => [
    { id: `${prefix}.ok`, type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"device": device.id, "method": device.method}', tot: 'jsonata' }, { t: 'set', p: 'statusCode', pt: 'msg', to: '200', tot: 'num' }], wires: [[`${prefix}.answer`]] },
    { id: `${prefix}.answer`, type: 'http response', statusCode: '', headers: {}, wires: [] },
  ];
  return {
    label: 'attack: operator settings',
    configs: [
      {
        id: 'attack.listed',
        type: 'iot-device-registry',
        name: 'listed devices',
        settingsVersion: 2,
        source: 'list',
        devices: [{ id: 'meter-1', enabled: true }, { id: 'meter-2', enabled: false }, { id: 'meter-3', enabled: true, methods: 'apikey' }],
        lockFailures: 10,
        lockWindow: 60,
        lockDuration: 300,
        credentials: { secrets: JSON.stringify(secrets) },
      },
      { id: 'attack.v2', type: 'iot-device-registry', name: 'derived, a key per method', settingsVersion: 2, source: 'derived', keyDerivation: 'v2', masterSource: 'env', masterEnv: 'IOT_DEVICE_MASTER_SECRET', derivedMethods: ['apikey', 'hmac', 'sas', 'jwt', 'webhook'], idPattern: '^[a-z]+-[0-9]+$' },
    ],
    nodes: [
      { id: 'attack.enum.in', type: 'http in', url: '/attack/enum', method: 'post', upload: false, skipBodyParsing: true, wires: [['attack.enum.auth']] },
      { id: 'attack.enum.auth', type: 'iot-device-auth', registry: 'attack.listed', method: 'auto', wires: [['attack.enum.ok'], ['attack.enum.answer']] },
      ...answer('attack.enum'),
      { id: 'attack.v2.in', type: 'http in', url: '/attack/v2', method: 'post', upload: false, skipBodyParsing: true, wires: [['attack.v2.auth']] },
      { id: 'attack.v2.auth', type: 'iot-device-auth', registry: 'attack.v2', method: 'auto', accepted: ['hmac', 'jwt'], audience: AUDIENCE, wires: [['attack.v2.ok'], ['attack.v2.answer']] },
      ...answer('attack.v2'),
    ],
  };
}

/** Adds the operator's tab once (POST /flow, as the editor's import and deploy would). */
async function addTab(target: NodeRedProcess, tab: Record<string, unknown>): Promise<void> {
  if (tabAdded) return;
  const response = await fetch(`${target.editorUrl}/flow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(tab) });
  expect(response.status, await response.text()).toBe(200);
  tabAdded = true;
}
