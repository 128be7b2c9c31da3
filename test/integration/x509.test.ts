/**
 * X.509 device identity end to end in a Node-RED runtime, with certificates made by openssl:
 * devices connect to iot-mqtt-broker over mutual TLS with no password (and mosquitto_pub does
 * too), and post to an https endpoint whose requests iot-device-auth checks; unknown CAs and
 * revoked certificates are refused; a certificate revoked while its device is connected (by
 * serial in the revocation file, or on the fleet's CRL) cuts the device off within a second; the
 * device still keeps to its topics.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import mqttBrokerNode from '../../nodes/mqtt-broker/mqtt-broker';
import { helper, nodeRedPath } from '../support/node-red';
import { TestPki, type CertificateAuthority, type Issued } from '../support/pki';
import { freePort, portOpen } from '../support/services';
import { ensureInstalled, SYSTEM_PACKAGES } from '../support/system-packages';
import { eventually } from '../support/wait';

const run = promisify(execFile);
const tlsConfigNode = createRequire(nodeRedPath)('@node-red/nodes/core/network/05-tls.js') as typeof registryNode;
const PUMP_3_KEY = 'key-for-pump-3-0123456789abcdef';

let pki: TestPki;
let fleetCa: CertificateAuthority;
let serverCa: CertificateAuthority;
let stranger: CertificateAuthority;
let server: Issued;
const device: Record<string, Issued> = {};
let port: number;
const clients: MqttClient[] = [];
let out: { published: NodeMessage[]; events: NodeMessage[]; authenticated: NodeMessage[]; rejected: NodeMessage[] };

beforeAll(async () => {
  ensureInstalled(SYSTEM_PACKAGES.mosquittoClients);
  pki = new TestPki();
  fleetCa = pki.ca('plant-ca');
  serverCa = pki.ca('server-ca');
  stranger = pki.ca('stranger-ca');
  server = pki.device(serverCa, 'broker', { cn: '127.0.0.1', san: ['IP:127.0.0.1'], extensions: 'server' });
  for (const id of ['pump-1', 'pump-2', 'pump-4']) device[id] = pki.device(fleetCa, id, { cn: id });
  device.forged = pki.device(stranger, 'forged-pump-1', { cn: 'pump-1' });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  pki.dispose();
});
beforeEach(async () => {
  writeFileSync(join(pki.dir, 'revoked.txt'), '');
  pki.crl(fleetCa, join(pki.dir, 'plant.crl'));
  port = await freePort();
  helper.settings({ userDir: pki.dir });
  const flow = [
    {
      id: 'registry',
      type: 'iot-device-registry',
      source: 'list',
      devices: [{ id: 'pump-1', enabled: true }, { id: 'pump-2', enabled: true }, { id: 'pump-3', enabled: true }, { id: 'pump-4', enabled: true }],
      fleets: [{ name: 'plant', ca: fleetCa.certPath, idFrom: 'cn', ids: '^pump-', crl: 'plant.crl' }],
      revokedFile: 'revoked.txt',
    },
    { id: 'tls', type: 'tls-config', cert: server.certPath, key: server.keyPath, ca: '', verifyservercert: false },
    { id: 'broker', type: 'iot-mqtt-broker', registry: 'registry', host: '127.0.0.1', port, usetls: true, tls: 'tls', requestCert: true, methods: ['x509', 'apikey'], wires: [['published', 'auth'], ['events'], []] },
    { id: 'auth', type: 'iot-device-auth', method: 'broker', wires: [['authenticated'], ['rejected']] },
    { id: 'https-auth', type: 'iot-device-auth', registry: 'registry', method: 'x509', wires: [['authenticated'], ['rejected']] },
    ...['published', 'events', 'authenticated', 'rejected'].map((id) => ({ id, type: 'helper' })),
  ];
  await helper.load([registryNode, mqttBrokerNode, deviceAuthNode, tlsConfigNode], flow, { registry: { secrets: JSON.stringify({ 'pump-3': { apiKey: PUMP_3_KEY } }) } });
  out = { published: [], events: [], authenticated: [], rejected: [] };
  for (const id of Object.keys(out) as Array<keyof typeof out>) helper.getNode(id).on('input', (msg: NodeMessage) => out[id].push(msg));
  await eventually('the broker listening', async () => ((await portOpen(port)) ? true : undefined));
  await eventually('the registry with its fleet', () => ((helper.getNode('registry') as Node & { registry: { state: string } }).registry.state === 'ready' ? true : undefined));
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await helper.unload();
});

function connect(issued: Issued | undefined, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {
    ca: serverCa.cert,
    ...(issued ? { key: issued.key, cert: issued.cert } : {}),
    clientId: issued?.name ?? 'pump-3',
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  });
  return client.then((c) => {
    clients.push(c);
    return c;
  });
}

const eventsOf = (kind: string) => out.events.filter((e) => e.topic === kind).map((e) => e.payload as Record<string, unknown>);

/** When a connected client is closed by the broker. */
function closedAt(client: MqttClient): Promise<number> {
  return new Promise((resolve) => client.once('close', () => resolve(Date.now())));
}

describe('X.509 devices over MQTT', () => {
  it('lets a device in by its client certificate alone, as the device its CN names, within its topics', async () => {
    const pump = await connect(device['pump-1']);
    await pump.publishAsync('devices/pump-1/telemetry', '{"temperature":21}', { qos: 1 });
    await eventually('the publish authenticated', () => (out.authenticated.length > 0 ? true : undefined));
    expect(out.authenticated[0].device).toMatchObject({ id: 'pump-1', method: 'x509' });
    const closed = closedAt(pump);
    pump.publish('devices/pump-2/telemetry', 'not mine');
    await closed;
    expect(eventsOf('denied').map((e) => `${e.topic} ${e.code}`)).toEqual(['devices/pump-2/telemetry topic_not_allowed']);
  });

  it('takes mosquitto_pub with a client certificate, and a password from a device without one', async () => {
    const args = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '--cafile', serverCa.certPath, '-q', '1'];
    await run('mosquitto_pub', [...args, '--cert', device['pump-4'].certPath, '--key', device['pump-4'].keyPath, '-i', 'pump-4', '-t', 'devices/pump-4/t', '-m', 'by certificate'], { timeout: 15_000 });
    await run('mosquitto_pub', [...args, '-i', 'pump-3', '-u', 'pump-3', '-P', PUMP_3_KEY, '-t', 'devices/pump-3/t', '-m', 'by password'], { timeout: 15_000 });
    await eventually('both', () => (out.authenticated.length >= 2 ? true : undefined));
    expect(out.authenticated.map((m) => `${(m.device as { id: string }).id} ${(m.device as { method: string }).method} ${String(m.payload)}`).sort()).toEqual(['pump-3 apikey by password', 'pump-4 x509 by certificate']);
  });

  it('refuses a certificate no fleet CA issued, and one whose CN is not the client’s claimed id', async () => {
    const forged = await connect(device.forged).catch((err: Error & { code?: number }) => err);
    expect((forged as Error & { code?: number }).code).toBe(4);
    const claimed = await connect(device['pump-1'], { username: 'pump-2' }).catch((err: Error & { code?: number }) => err);
    expect((claimed as Error & { code?: number }).code).toBe(4);
    await eventually('two refusals', () => (eventsOf('refused').length >= 2 ? true : undefined));
    expect(eventsOf('refused').map((e) => e.code)).toEqual(['untrusted_certificate', 'wrong_subject']);
  });

  it('cuts off a connected device within a second of its certificate’s serial entering the revocation file', async () => {
    const pump = await connect(device['pump-1']);
    const closed = closedAt(pump);
    writeFileSync(join(pki.dir, 'revoked.txt'), `# lost in the field\nserial:${device['pump-1'].serial}\n`);
    const revokedAt = Date.now();
    expect((await closed) - revokedAt).toBeLessThan(1_000);
    const again = await connect(device['pump-1']).catch((err: Error & { code?: number }) => err);
    expect((again as Error & { code?: number }).code).toBe(5);
    expect(eventsOf('refused').map((e) => e.code)).toContain('revoked');
  });

  it('cuts off a connected device within a second of its certificate appearing on the fleet’s CRL', async () => {
    const pump = await connect(device['pump-2']);
    const other = await connect(device['pump-4']);
    const closed = closedAt(pump);
    pki.revoke(fleetCa, device['pump-2']);
    pki.crl(fleetCa, join(pki.dir, 'plant.crl'));
    const revokedAt = Date.now();
    expect((await closed) - revokedAt).toBeLessThan(1_000);
    expect(other.connected).toBe(true);
  });
});

describe('X.509 devices over HTTPS', () => {
  let https: Server;
  let httpsPort: number;

  beforeEach(async () => {
    // What Node-RED's https settings with requestCert give the http-in node: req.socket is the TLS socket.
    https = createHttpsServer({ key: server.key, cert: server.cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        (helper.getNode('https-auth') as Node & { receive(msg: NodeMessage): void }).receive({ _msgid: String(Date.now()), payload: Buffer.concat(chunks), req, res: { _res: res } } as unknown as NodeMessage);
        res.end();
      });
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', () => resolve()));
    httpsPort = (https.address() as AddressInfo).port;
  });
  afterEach(async () => {
    https.closeAllConnections();
    await new Promise<void>((resolve) => https.close(() => resolve()));
  });

  function post(issued: Issued | undefined, body: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: httpsPort, method: 'POST', path: '/readings', ca: serverCa.cert, ...(issued ? { key: issued.key, cert: issued.cert } : {}), headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('authenticates a request by the client certificate of its connection', async () => {
    await post(device['pump-4'], '{"temperature":19}');
    await post(device.forged, '{"temperature":99}');
    await post(undefined, '{"temperature":98}');
    await eventually('three answers', () => (out.authenticated.length + out.rejected.length >= 3 ? true : undefined));
    expect(out.authenticated.map((m) => [m.device, m.payload])).toEqual([[expect.objectContaining({ id: 'pump-4', method: 'x509', claims: expect.objectContaining({ fleet: 'plant' }) }), { temperature: 19 }]]);
    expect(out.rejected.map((m) => [(m.error as { code: string }).code, m.statusCode])).toEqual([
      ['untrusted_certificate', 401],
      ['missing_credentials', 401],
    ]);
  });
});
