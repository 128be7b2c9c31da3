/**
 * X.509 device identity. A device proves itself with a client certificate over TLS (the handshake
 * proves it holds the certificate's private key); the registry decides what the certificate is
 * worth:
 *
 * - issued by a fleet's CA (directly, or through intermediates the device sent along), or pinned
 *   by its SHA-256 fingerprint on a registered device (self-signed devices, no CA);
 * - naming a device: by its subject CN, by a subjectAltName (DNS or URI) that is a device id, or
 *   by its fingerprint, as the fleet says; a fleet may name only the ids its pattern allows;
 * - valid now (notBefore, notAfter, with the token clock tolerance);
 * - not revoked: by the device, its serial number or fingerprint in the revocation list, or its
 *   serial in the fleet's CRL (a CRL that cannot be read refuses the whole fleet).
 */
import { X509Certificate } from 'node:crypto';
import type { RejectCode } from '../shared/device-registry-api';
import { normalSerial, type RevocationList } from './crl';
import { isDeviceId } from './records';

export type IdFrom = 'cn' | 'san' | 'fingerprint';
export const ID_FROM: readonly IdFrom[] = ['cn', 'san', 'fingerprint'];

export interface Fleet {
  name: string;
  /** The fleet's CA certificates (more than one while a CA is rolled over). */
  cas: readonly X509Certificate[];
  idFrom: IdFrom;
  /** Only ids that match are this fleet's to name. */
  ids?: RegExp;
  /** The fleet's CRL, or why it cannot be used (then every certificate of the fleet is refused). */
  crl?: RevocationList | string;
}

/** What a certificate that verified says. */
export interface CertificateClaim {
  id: string;
  /** The fleet whose CA issued it; undefined for a pinned certificate. */
  fleet?: Fleet;
  fingerprint: string;
  serial: string;
  subject: string;
}

export interface CertificateFailure {
  ok: false;
  code: RejectCode;
  message: string;
}

function fail(code: RejectCode, message: string): CertificateFailure {
  return { ok: false, code, message };
}

/** How deep a chain of intermediates may be. */
const MAX_INTERMEDIATES = 4;
const CHAIN_LIMIT = 8;

/** A SHA-256 fingerprint as the registry compares them: 64 lowercase hex digits. */
export function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}

function validNow(cert: X509Certificate, now: number, skewMs: number): CertificateFailure | undefined {
  if (Date.parse(cert.validTo) < now - skewMs) return fail('expired', `the certificate expired on ${cert.validTo}`);
  if (Date.parse(cert.validFrom) > now + skewMs) return fail('not_yet_valid', `the certificate is valid from ${cert.validFrom}`);
  return undefined;
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Whether one of `cas` issued `leaf`, directly or through the intermediates (CA certificates valid now). */
function issuedBy(leaf: X509Certificate, intermediates: readonly X509Certificate[], cas: readonly X509Certificate[], now: number, skewMs: number): boolean {
  let current = leaf;
  for (let depth = 0; depth <= MAX_INTERMEDIATES; depth++) {
    if (cas.some((ca) => validNow(ca, now, skewMs) === undefined && signedBy(current, ca))) return true;
    const next = intermediates.find((c) => c !== current && c.ca && validNow(c, now, skewMs) === undefined && signedBy(current, c));
    if (!next) return false;
    current = next;
  }
  return false;
}

/** The subject's common names (OpenSSL's one-line-per-field form). */
function commonNames(cert: X509Certificate): string[] {
  // A certificate with an empty subject (names only in subjectAltName) has none.
  return (cert.subject ?? '')
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
}

/** DNS and URI subjectAltNames. */
function altNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:') || entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

/** How the registry answers what a certificate could name. */
export interface CertificateLookup {
  /** The registered device a fingerprint is pinned on. */
  pinned(fingerprint: string): string | undefined;
  /** Whether an id is a registered device. */
  registered(id: string): boolean;
}

/**
 * The device a certificate chain names, or why it names none. Among several subjectAltNames the
 * first that is a registered device (within the fleet's pattern) is the one.
 */
export function identifyCertificate(chain: readonly Buffer[], fleets: readonly Fleet[], lookup: CertificateLookup, now: number, skewMs: number): CertificateClaim | CertificateFailure {
  if (chain.length === 0 || chain.length > CHAIN_LIMIT) return fail('malformed', `a client certificate chain has 1 to ${CHAIN_LIMIT} certificates`);
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch (err) {
    return fail('malformed', `the client certificate cannot be read: ${(err as Error).message}`);
  }
  const [leaf, ...intermediates] = certs;
  const fingerprint = fingerprintOf(leaf);
  const base = { fingerprint, serial: normalSerial(leaf.serialNumber), subject: (leaf.subject ?? '').replace(/\n/g, ', ') };
  const fleet = fleets.find((f) => issuedBy(leaf, intermediates, f.cas, now, skewMs));
  const pin = lookup.pinned(fingerprint);
  if (!fleet) {
    // A certificate pinned on a device needs no CA (self-signed devices).
    if (pin === undefined) return fail('untrusted_certificate', 'no fleet CA issued this certificate and no device has it pinned');
    return validNow(leaf, now, skewMs) ?? { ...base, id: pin };
  }
  const expired = validNow(leaf, now, skewMs);
  if (expired) return expired;
  let id: string | undefined;
  if (fleet.idFrom === 'fingerprint') {
    id = pin;
    if (id === undefined) return fail('unknown_device', `no device of fleet ${fleet.name} has this certificate (${fingerprint}) pinned`);
  } else {
    const names = fleet.idFrom === 'cn' ? commonNames(leaf) : altNames(leaf);
    if (fleet.idFrom === 'cn' && names.length !== 1) return fail('wrong_subject', `the certificate must name the device in exactly one CN (it has ${names.length})`);
    const ids = names.filter(isDeviceId);
    if (ids.length === 0) return fail('wrong_subject', `the certificate names no device id in its ${fleet.idFrom === 'cn' ? 'CN' : 'subjectAltName (DNS or URI)'}`);
    const allowed = fleet.ids ? ids.filter((candidate) => fleet.ids?.test(candidate)) : ids;
    if (allowed.length === 0) return fail('wrong_subject', `fleet ${fleet.name} may not name ${ids.join(', ')}`);
    id = allowed.find((candidate) => lookup.registered(candidate)) ?? allowed[0];
  }
  if (fleet.ids && !fleet.ids.test(id)) return fail('wrong_subject', `fleet ${fleet.name} may not name ${id}`);
  return { ...base, id, fleet };
}

/** Why a certificate a device presented is revoked (or its fleet's CRL unusable), or undefined. */
export function certificateRevoked(claim: CertificateClaim, revokedSerials: ReadonlySet<string>, revokedFingerprints: ReadonlySet<string>): CertificateFailure | undefined {
  if (revokedFingerprints.has(claim.fingerprint)) return fail('revoked', `the certificate ${claim.fingerprint} is revoked`);
  if (revokedSerials.has(claim.serial)) return fail('revoked', `the certificate with serial ${claim.serial} is revoked`);
  const crl = claim.fleet?.crl;
  if (typeof crl === 'string') return fail('registry_unavailable', `the CRL of fleet ${claim.fleet?.name} cannot be used: ${crl}`);
  if (crl?.serials.has(claim.serial)) return fail('revoked', `the certificate with serial ${claim.serial} is on the CRL of fleet ${claim.fleet?.name}`);
  return undefined;
}
