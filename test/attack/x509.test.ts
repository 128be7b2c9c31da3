/**
 * X.509 device identity attacked on a running `npm start` over https (NODE_RED_HTTPS_KEY_FILE,
 * NODE_RED_HTTPS_CERT_FILE) whose operator tab has an MQTT broker asking devices for client
 * certificates and an https endpoint that knows devices by them, one fleet CA with its CRL and a
 * revocation file. Certificates are made by openssl: a certificate from another CA naming a real
 * device, an expired one, a device's certificate revoked while it is connected (by serial in the
 * revocation file, and on the fleet's CRL): refused, cut off within a second, and nothing of theirs
 * reaches the flow, while a legitimate device keeps publishing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mqttConnect, send, type MqttAttempt } from '../support/attacker';
import { disposedAfterAll } from '../support/node-red-after-all';
import { type NodeRedProcess } from '../support/node-red-process';
import { TestPki, type CertificateAuthority, type Issued } from '../support/pki';
import { freePort } from '../support/services';
import { eventually } from '../support/wait';

const started = disposedAfterAll();
let node: NodeRedProcess;
let pki: TestPki;
let fleetCa: CertificateAuthority;
let serverCa: CertificateAuthority;
let mqttPort: number;
const certs: Record<string, Issued> = {};
const DAY = 86_400_000;

function operatorFlows(): unknown[] {
  const z = 'x509.tab';
  return [
    { id: z, type: 'tab', label: 'attack: X.509 devices' },
    {
      id: 'x509.registry',
      type: 'iot-device-registry',
      name: 'plant devices',
      settingsVersion: 2,
      source: 'list',
      devices: ['pump-1', 'pump-2', 'pump-3', 'pump-4'].map((id) => ({ id, enabled: true })),
      fleets: [{ name: 'plant', ca: fleetCa.certPath, idFrom: 'cn', ids: '^pump-', crl: join(pki.dir, 'plant.crl') }],
      revokedFile: join(pki.dir, 'revoked.txt'),
    },
    { id: 'x509.tls', type: 'tls-config', cert: certs.server.certPath, key: certs.server.keyPath, ca: '', verifyservercert: false },
    { id: 'x509.broker', type: 'iot-mqtt-broker', z, registry: 'x509.registry', host: '127.0.0.1', port: '${ATTACK_X509_MQTT_PORT}', usetls: true, tls: 'x509.tls', requestCert: true, methods: ['x509'], wires: [['x509.broker-auth'], [], []] },
    { id: 'x509.broker-auth', type: 'iot-device-auth', z, method: 'broker', wires: [['x509.seen'], []] },
    { id: 'x509.in', type: 'http in', z, url: '/x509/readings', method: 'post', upload: false, skipBodyParsing: true, wires: [['x509.auth']] },
    { id: 'x509.auth', type: 'iot-device-auth', z, registry: 'x509.registry', method: 'x509', wires: [['x509.seen', 'x509.ok'], ['x509.out']] },
    { id: 'x509.ok', type: 'change', z, rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'device.id', tot: 'jsonata' }], wires: [['x509.out']] },
    { id: 'x509.out', type: 'http response', z, statusCode: '', headers: {}, wires: [] },
    // What reached the flow, as "<device> <method> <text>", for GET /x509/seen.
    { id: 'x509.seen', type: 'function', z, func: 'const seen = global.get("seen") || [];\nseen.push(`${msg.device.id} ${msg.device.method} ${Buffer.isBuffer(msg.payload) ? msg.payload.toString() : JSON.stringify(msg.payload)}`);\nglobal.set("seen", seen);\nreturn null;', outputs: 1, wires: [[]] },
    { id: 'x509.seen-in', type: 'http in', z, url: '/x509/seen', method: 'get', upload: false, wires: [['x509.seen-out']] },
    { id: 'x509.seen-out', type: 'function', z, func: 'msg.payload = global.get("seen") || [];\nreturn msg;', outputs: 1, wires: [['x509.out']] },
  ];
}

beforeAll(async () => {
  pki = new TestPki();
  fleetCa = pki.ca('plant-ca');
  serverCa = pki.ca('server-ca');
  certs.server = pki.device(serverCa, 'node-red', { cn: '127.0.0.1', san: ['IP:127.0.0.1'], extensions: 'server' });
  for (const id of ['pump-1', 'pump-2', 'pump-3', 'pump-4']) certs[id] = pki.device(fleetCa, id, { cn: id });
  certs.forged = pki.device(pki.ca('stranger-ca'), 'forged', { cn: 'pump-1' });
  certs.expired = pki.device(fleetCa, 'expired', { cn: 'pump-4', from: Date.now() - 10 * DAY, to: Date.now() - DAY });
  writeFileSync(join(pki.dir, 'revoked.txt'), '');
  pki.crl(fleetCa, join(pki.dir, 'plant.crl'));
  mqttPort = await freePort();
  node = await started({ flows: operatorFlows(), env: { NODE_RED_HTTPS_KEY_FILE: certs.server.keyPath, NODE_RED_HTTPS_CERT_FILE: certs.server.certPath, ATTACK_X509_MQTT_PORT: String(mqttPort) } });
  await eventually('the broker taking pump-1', async () => {
    const attempt = await connect(certs['pump-1']);
    attempt.client?.end(true);
    return attempt.connack === 0 ? true : undefined;
  }, 60_000, 250);
}, 180_000);
afterAll(() => pki?.dispose());

function connect(issued: Issued, clientId = issued.name.replace(/^(forged|expired)$/, 'pump-1')): Promise<MqttAttempt> {
  return mqttConnect({ port: mqttPort, tls: { ca: serverCa.cert, key: issued.key, cert: issued.cert } }, { clientId });
}

function post(issued: Issued | undefined, body: string) {
  return send(`${node.editorUrl}/x509/readings`, { body, tls: { ca: serverCa.cert, ...(issued ? { key: issued.key, cert: issued.cert } : {}) } });
}

async function seen(): Promise<string[]> {
  return JSON.parse((await send(`${node.editorUrl}/x509/seen`, { method: 'GET', tls: { ca: serverCa.cert } })).body) as string[];
}

/** When the broker closes a connected client. */
function closedAt(client: MqttClient): Promise<number> {
  return new Promise((resolve) => client.once('close', () => resolve(Date.now())));
}

describe('X.509 devices', () => {
  it('refuses a certificate from another CA naming pump-1, and an expired one, over MQTT and HTTPS; nothing of theirs reaches the flow', async () => {
    const forged = await connect(certs.forged, 'pump-1');
    const expired = await connect(certs.expired, 'pump-4');
    expect({ forged: forged.connack, expired: expired.connack }).toEqual({ forged: 4, expired: 4 });
    const overHttps = { forged: (await post(certs.forged, '{"temperature":99}')).status, expired: (await post(certs.expired, '{"temperature":98}')).status, none: (await post(undefined, '{"temperature":97}')).status };
    expect(overHttps).toEqual({ forged: 401, expired: 401, none: 401 });
    const own = await post(certs['pump-1'], '{"temperature":21}');
    expect({ status: own.status, body: own.body }).toEqual({ status: 200, body: 'pump-1' });
    expect(await seen()).toEqual(['pump-1 x509 {"temperature":21}']);
  });

  it('cuts a device off within a second of its serial entering the revocation file, and of its certificate appearing on the CRL; the others keep publishing', async () => {
    const legit = (await connect(certs['pump-1'])).client as MqttClient;
    const bySerial = (await connect(certs['pump-2'])).client as MqttClient;
    const byCrl = (await connect(certs['pump-3'])).client as MqttClient;
    expect([legit, bySerial, byCrl].every((c) => c?.connected)).toBe(true);

    const serialClosed = closedAt(bySerial);
    writeFileSync(join(pki.dir, 'revoked.txt'), `# lost in the field\nserial:${certs['pump-2'].serial}\n`);
    const serialRevokedAt = Date.now();
    const crlClosed = closedAt(byCrl);
    pki.revoke(fleetCa, certs['pump-3']);
    pki.crl(fleetCa, join(pki.dir, 'plant.crl'));
    const crlRevokedAt = Date.now();
    const cutOff = { serial: (await serialClosed) - serialRevokedAt, crl: (await crlClosed) - crlRevokedAt };
    expect(cutOff.serial).toBeLessThan(1_000);
    expect(cutOff.crl).toBeLessThan(1_000);

    expect({ serial: (await connect(certs['pump-2'])).connack, crl: (await connect(certs['pump-3'])).connack }).toEqual({ serial: 5, crl: 5 });
    expect({ serial: (await post(certs['pump-2'], '{"temperature":96}')).status, crl: (await post(certs['pump-3'], '{"temperature":95}')).status }).toEqual({ serial: 403, crl: 403 });
    expect(legit.connected).toBe(true);
    await legit.publishAsync('devices/pump-1/readings', '{"temperature":22}', { qos: 1 });
    legit.end(true);
    await eventually("pump-1's publish in the flow", async () => ((await seen()).includes('pump-1 x509 {"temperature":22}') ? true : undefined));
    expect((await seen()).filter((line) => !line.startsWith('pump-1 '))).toEqual([]);
  });
});
