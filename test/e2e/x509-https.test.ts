/**
 * npm start over https (NODE_RED_HTTPS_KEY_FILE, NODE_RED_HTTPS_CERT_FILE) with a flow whose
 * endpoint knows devices by their client certificates: http in → iot-device-auth (client
 * certificate) → http response. A device with a certificate from the fleet's CA is answered with
 * its identity; a certificate from elsewhere, no certificate, and a revoked one are refused with
 * their status, and nothing of theirs reaches the flow.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRedProcess } from '../support/node-red-process';
import { TestPki, type CertificateAuthority, type Issued } from '../support/pki';
import { eventually } from '../support/wait';

let pki: TestPki;
let fleetCa: CertificateAuthority;
let serverCa: CertificateAuthority;
const certs: Record<string, Issued> = {};
let node: NodeRedProcess;

function flows(): unknown[] {
  const tab = 'x509.tab';
  return [
    { id: tab, type: 'tab', label: 'X.509 devices' },
    {
      id: 'x509.registry',
      type: 'iot-device-registry',
      name: 'plant devices',
      settingsVersion: 2,
      source: 'list',
      devices: [{ id: 'pump-1', enabled: true }, { id: 'pump-2', enabled: true }],
      fleets: [{ name: 'plant', ca: fleetCa.certPath, idFrom: 'cn', ids: '^pump-' }],
      revokedFile: join(pki.dir, 'revoked.txt'),
    },
    { id: 'x509.in', type: 'http in', z: tab, url: '/x509/readings', method: 'post', upload: false, skipBodyParsing: true, wires: [['x509.auth']] },
    { id: 'x509.auth', type: 'iot-device-auth', z: tab, registry: 'x509.registry', method: 'x509', wires: [['x509.ok'], ['x509.out']] },
    { id: 'x509.ok', type: 'function', z: tab, func: 'msg.payload = { device: msg.device.id, method: msg.device.method, temperature: msg.payload.temperature };\nreturn msg;', outputs: 1, wires: [['x509.out']] },
    { id: 'x509.out', type: 'http response', z: tab, statusCode: '', headers: {}, wires: [] },
  ];
}

beforeAll(async () => {
  pki = new TestPki();
  fleetCa = pki.ca('plant-ca');
  serverCa = pki.ca('server-ca');
  certs.server = pki.device(serverCa, 'node-red', { cn: '127.0.0.1', san: ['IP:127.0.0.1'], extensions: 'server' });
  certs.pump1 = pki.device(fleetCa, 'pump-1', { cn: 'pump-1' });
  certs.pump2 = pki.device(fleetCa, 'pump-2', { cn: 'pump-2' });
  certs.forged = pki.device(pki.ca('stranger-ca'), 'forged', { cn: 'pump-1' });
  writeFileSync(join(pki.dir, 'revoked.txt'), `serial:${certs.pump2.serial}\n`);
  node = await NodeRedProcess.start({ flows: flows(), env: { NODE_RED_HTTPS_KEY_FILE: certs.server.keyPath, NODE_RED_HTTPS_CERT_FILE: certs.server.certPath } });
}, 120_000);
afterAll(async () => {
  await node?.dispose();
  pki?.dispose();
});

function post(issued: Issued | undefined, body: string): Promise<{ status: number; body: string }> {
  const url = new URL('/x509/readings', node.editorUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: serverCa.cert, ...(issued ? { key: issued.key, cert: issued.cert } : {}), headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('npm start over https with X.509 devices', () => {
  it('serves https and answers a device by the certificate it connected with', async () => {
    expect(node.editorUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ok = await eventually('the flow answering', async () => {
      const answer = await post(certs.pump1, '{"temperature":21.5}');
      return answer.status === 503 ? undefined : answer;
    });
    expect(ok).toEqual({ status: 200, body: JSON.stringify({ device: 'pump-1', method: 'x509', temperature: 21.5 }) });
    expect(await post(certs.forged, '{"temperature":99}')).toEqual({ status: 401, body: 'Unauthorized' });
    expect(await post(undefined, '{"temperature":99}')).toEqual({ status: 401, body: 'Unauthorized' });
    expect(await post(certs.pump2, '{"temperature":99}')).toEqual({ status: 403, body: 'Forbidden' });
  });
});
