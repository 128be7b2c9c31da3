/**
 * X.509 device identity in the registry, with certificates made by openssl: fleets whose CAs
 * issue device certificates (named by CN, subjectAltName or pinned fingerprint), intermediates,
 * self-signed pinned certificates, validity dates, and revocation by device, serial, fingerprint
 * and a CRL signed by the fleet's CA.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crlDer, CrlError, parseCrl } from '../../nodes/device-registry/crl';
import { loadFleets } from '../../nodes/device-registry/fleets';
import { parseRecord } from '../../nodes/device-registry/records';
import { DeviceRegistry } from '../../nodes/device-registry/registry';
import { DerivedStore, RecordStore } from '../../nodes/device-registry/stores';
import type { Presented, Verdict, VerifyPolicy } from '../../nodes/shared/device-registry-api';
import { TestPki, type CertificateAuthority, type Issued } from '../support/pki';

const policy: VerifyPolicy = { skewMs: 300_000, tokenSkewMs: 30_000, maxLifetimeMs: 3_600_000 };
const DAY = 86_400_000;

let pki: TestPki;
let plant: CertificateAuthority;
let partner: CertificateAuthority;
let line: CertificateAuthority;
let stranger: CertificateAuthority;
const certs: Record<string, Issued> = {};

beforeAll(() => {
  pki = new TestPki();
  plant = pki.ca('plant-ca');
  partner = pki.ca('partner-ca');
  line = pki.ca('line-3-ca', plant);
  stranger = pki.ca('stranger-ca');
  certs.pump1 = pki.device(plant, 'pump-1', { cn: 'pump-1' });
  certs.pump2 = pki.device(plant, 'pump-2', { cn: 'pump-2' });
  certs.valve = pki.device(plant, 'valve-1', { cn: 'valve-1' });
  certs.viaLine = pki.device(line, 'pump-3', { cn: 'pump-3' });
  certs.expired = pki.device(plant, 'pump-1-expired', { cn: 'pump-1', from: Date.now() - 60 * DAY, to: Date.now() - DAY });
  certs.early = pki.device(plant, 'pump-1-early', { cn: 'pump-1', from: Date.now() + DAY, to: Date.now() + 60 * DAY });
  certs.san = pki.device(partner, 'fc-1', { san: ['DNS:fc-1.partner.example', 'URI:fc-1'] });
  certs.forged = pki.device(stranger, 'pump-1-forged', { cn: 'pump-1' });
  certs.pinned = pki.selfSigned('cam-1', 'whatever');
  certs.unpinned = pki.selfSigned('cam-2', 'cam-2');
});
afterAll(() => pki.dispose());

const der = (issued: Issued) => Buffer.from(readFileSync(issued.certPath, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
const x509 = (chain: Issued[], id?: string): Presented => (id ? { method: 'x509', id, chain: chain.map(der) } : { method: 'x509', chain: chain.map(der) });
const codeOf = (v: Verdict) => (v.ok ? 'ok' : v.code);

async function registryWith(crlOf?: string): Promise<DeviceRegistry> {
  const registry = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
  const devices = [
    { id: 'pump-1', meta: { assetId: '02iP1' } },
    { id: 'pump-2', methods: 'apikey', apiKey: 'key-for-pump-2-0123456789abcdef' },
    { id: 'pump-3' },
    { id: 'valve-1' },
    { id: 'fc-1' },
    { id: 'cam-1', certificates: `sha256:${certs.pinned.fingerprint.match(/../g)?.join(':')}` },
  ];
  registry.use(new RecordStore(devices.map((d, i) => parseRecord(d, { where: `device ${i}`, secretsAllowed: true }))));
  const { fleets, problems } = await loadFleets(
    [
      { name: 'plant', ca: readFileSync(plant.certPath, 'utf8'), idFrom: 'cn', ids: '^pump-', ...(crlOf ? { crl: crlOf } : {}) },
      { name: 'partner', ca: partner.certPath, idFrom: 'san' },
    ],
    (file) => file,
  );
  registry.useFleets(fleets);
  registry.setRevoked([]);
  if (!crlOf) expect(problems).toEqual([]);
  return registry;
}

describe('X.509 device identity', () => {
  it('names the device by the CN of a certificate its fleet’s CA issued', async () => {
    const registry = await registryWith();
    const verdict = await registry.verify(x509([certs.pump1]), policy, Date.now());
    expect(verdict).toMatchObject({ ok: true, device: { id: 'pump-1', method: 'x509', meta: { assetId: '02iP1' }, claims: { fleet: 'plant', serial: certs.pump1.serial, fingerprint: certs.pump1.fingerprint } } });
    expect(codeOf(await registry.verify(x509([certs.pump1], 'pump-1'), policy, Date.now()))).toBe('ok');
    expect(codeOf(await registry.verify(x509([certs.pump1], 'pump-2'), policy, Date.now()))).toBe('wrong_subject');
  });

  it('follows intermediates the device sends, by subjectAltName for a fleet that says so', async () => {
    const registry = await registryWith();
    expect(codeOf(await registry.verify(x509([certs.viaLine, line]), policy, Date.now()))).toBe('ok');
    expect(codeOf(await registry.verify(x509([certs.viaLine]), policy, Date.now()))).toBe('untrusted_certificate');
    expect(await registry.verify(x509([certs.san]), policy, Date.now())).toMatchObject({ ok: true, device: { id: 'fc-1', claims: { fleet: 'partner' } } });
  });

  it.each([
    ['a CA that is no fleet’s', () => [certs.forged], 'untrusted_certificate'],
    ['an id outside its fleet’s pattern', () => [certs.valve], 'wrong_subject'],
    ['an expired certificate', () => [certs.expired], 'expired'],
    ['a certificate not valid yet', () => [certs.early], 'not_yet_valid'],
    ['a device not registered for x509', () => [certs.pump2], 'method_not_allowed'],
    ['a self-signed certificate nobody pinned', () => [certs.unpinned], 'untrusted_certificate'],
  ])('refuses %s', async (_what, chain, code) => {
    const registry = await registryWith();
    expect(codeOf(await registry.verify(x509(chain()), policy, Date.now()))).toBe(code);
  });

  it('accepts a self-signed certificate pinned on a device by its fingerprint', async () => {
    const registry = await registryWith();
    expect(await registry.verify(x509([certs.pinned]), policy, Date.now())).toMatchObject({ ok: true, device: { id: 'cam-1', method: 'x509' } });
  });

  it('refuses garbage as malformed', async () => {
    const registry = await registryWith();
    expect(codeOf(await registry.verify({ method: 'x509', chain: [randomBytes(300)] }, policy, Date.now()))).toBe('malformed');
    expect(codeOf(await registry.verify({ method: 'x509', chain: [] }, policy, Date.now()))).toBe('malformed');
    expect(codeOf(await registry.verify({ method: 'x509', chain: 'nope' } as unknown as Presented, policy, Date.now()))).toBe('malformed');
  });

  it('revokes by device id, serial number and fingerprint', async () => {
    const registry = await registryWith();
    const verdicts = async () => [codeOf(await registry.verify(x509([certs.pump1]), policy, Date.now())), codeOf(await registry.verify(x509([certs.san]), policy, Date.now()))];
    registry.setRevoked([`serial:${certs.pump1.serial.toUpperCase()}`]);
    expect(await verdicts()).toEqual(['revoked', 'ok']);
    registry.setRevoked([`sha256:${certs.san.fingerprint}`]);
    expect(await verdicts()).toEqual(['ok', 'revoked']);
    registry.setRevoked(['pump-1']);
    expect(await verdicts()).toEqual(['revoked', 'ok']);
  });

  it('revokes what the fleet’s CRL lists, and refuses the fleet while its CRL cannot be trusted', async () => {
    const crl = join(pki.dir, 'plant.crl');
    pki.revoke(plant, certs.pump1);
    pki.crl(plant, crl);
    const registry = await registryWith(crl);
    expect(codeOf(await registry.verify(x509([certs.pump1]), policy, Date.now()))).toBe('revoked');
    expect(codeOf(await registry.verify(x509([certs.viaLine, line]), policy, Date.now()))).toBe('ok');
    const forged = join(pki.dir, 'forged.crl');
    pki.crl(stranger, forged);
    const distrusting = await registryWith(forged);
    expect(codeOf(await distrusting.verify(x509([certs.viaLine, line]), policy, Date.now()))).toBe('registry_unavailable');
    expect(codeOf(await distrusting.verify(x509([certs.san]), policy, Date.now()))).toBe('ok');
  });

  it('keeps the CRL it had when an update cannot be read, and refuses the fleet when it never had one', async () => {
    const path = join(pki.dir, 'reloaded.crl');
    pki.crl(plant, path);
    const setting = [{ name: 'plant', ca: plant.certPath, idFrom: 'cn', crl: path }];
    const first = await loadFleets(setting, (f) => f);
    expect(first.problems).toEqual([]);
    writeFileSync(path, readFileSync(path).subarray(0, 40));
    const half = await loadFleets(setting, (f) => f, first.fleets);
    expect(half.fleets[0].crl).toBe(first.fleets[0].crl);
    expect(half.problems).toEqual([expect.stringContaining('the one read before stays in use')]);
    const none = await loadFleets(setting, (f) => f);
    expect(typeof none.fleets[0].crl).toBe('string');
    expect((await loadFleets([{ name: 'x', ca: 'no-such-file.pem' }], (f) => join(pki.dir, f))).problems).toEqual([expect.stringContaining('no-such-file.pem')]);
    expect((await loadFleets([{ name: 'x', ca: readFileSync(certs.pump1.certPath, 'utf8') }], (f) => f)).problems).toEqual([expect.stringContaining('is not a CA certificate')]);
  });

  it('lets derived registries take certificates, named by CN', async () => {
    const registry = new DeviceRegistry({ failures: 0, windowMs: 1, lockMs: 1 });
    registry.use(new DerivedStore(randomBytes(32), { methods: ['x509'], derivation: 'v2', idPattern: /^pump-\d+$/ }));
    registry.useFleets((await loadFleets([{ name: 'plant', ca: plant.certPath, idFrom: 'cn' }], (f) => f)).fleets);
    registry.setRevoked([]);
    expect(await registry.verify(x509([certs.pump2]), policy, Date.now())).toMatchObject({ ok: true, device: { id: 'pump-2', method: 'x509' } });
    expect(codeOf(await registry.verify(x509([certs.valve]), policy, Date.now()))).toBe('unknown_device');
  });
});

describe('certificate revocation lists', () => {
  it('reads the serials of a PEM or DER CRL signed by the CA, and refuses one it did not sign or that was altered', () => {
    const path = join(pki.dir, 'partner.crl');
    pki.revoke(partner, certs.san);
    pki.crl(partner, path);
    const pem = readFileSync(path);
    const cas = [new X509Certificate(partner.cert)];
    expect([...parseCrl(pem, cas).serials]).toEqual([certs.san.serial]);
    expect([...parseCrl(crlDer(pem), cas).serials]).toEqual([certs.san.serial]);
    expect(() => parseCrl(pem, [new X509Certificate(plant.cert)])).toThrow(/not signed by the fleet’s CA/);
    const altered = Buffer.from(crlDer(pem));
    altered[altered.length - 80] ^= 0xff;
    expect(() => parseCrl(altered, cas)).toThrow(CrlError);
    writeFileSync(join(pki.dir, 'garbage.crl'), randomBytes(100));
    expect(() => parseCrl(readFileSync(join(pki.dir, 'garbage.crl')), cas)).toThrow(CrlError);
  });
});
