/**
 * Certificate revocation lists (RFC 5280, section 5): the serial numbers a CA has revoked, read
 * from a DER or PEM file and accepted only when the fleet's CA signed it.
 *
 * node:crypto reads certificates (X509Certificate) but not CRLs, and a CRL library would be a
 * seventh production dependency (the flow library's scorecard allows six), so this reads the few
 * DER fields a CRL needs: the signed part (tbsCertList), its dates, the revoked serials and the
 * signature. Anything it does not understand makes the whole file unusable, never half-read.
 */
import { verify as verifySignature, type X509Certificate } from 'node:crypto';

export class CrlError extends Error {}

interface Element {
  tag: number;
  /** Where the element starts (its tag) and where its content starts and ends. */
  start: number;
  content: number;
  end: number;
}

/** One DER element at `at`, checked to lie within `limit`. */
function element(der: Buffer, at: number, limit: number): Element {
  if (at + 2 > limit) throw new CrlError('the list ends inside an element');
  const tag = der[at];
  let length = der[at + 1];
  let content = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || content + bytes > limit) throw new CrlError('an element has a length DER does not allow');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[content + i];
    content += bytes;
  }
  const end = content + length;
  if (end > limit) throw new CrlError('an element is longer than what holds it');
  return { tag, start: at, content, end };
}

/** The elements inside a constructed element, in order. */
function children(der: Buffer, parent: Element): Element[] {
  const items: Element[] = [];
  for (let at = parent.content; at < parent.end; ) {
    const child = element(der, at, parent.end);
    items.push(child);
    at = child.end;
  }
  return items;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OID = 0x06;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

/** Signature algorithms by OID: the hash node:crypto verifies with (null: the key decides, Ed25519). */
const SIGNATURE_HASHES: Record<string, string | null> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
};

function oidText(der: Buffer, oid: Element): string {
  const bytes = der.subarray(oid.content, oid.end);
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let value = 0;
  for (let i = 1; i < bytes.length; i++) {
    value = value * 128 + (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

function timeOf(der: Buffer, time: Element): number {
  const text = der.toString('latin1', time.content, time.end);
  const match = time.tag === UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) throw new CrlError(`a date is not in DER form: ${text.slice(0, 20)}`);
  let year = Number(match[1]);
  if (time.tag === UTC_TIME) year += year < 50 ? 2000 : 1900;
  return Date.UTC(year, Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6]));
}

/** A serial number as the registry compares them: lowercase hex without leading zeros. */
export function normalSerial(hex: string): string {
  return hex.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+(?=.)/, '');
}

export interface RevocationList {
  /** Revoked serial numbers, normalised. */
  serials: ReadonlySet<string>;
  thisUpdate: number;
  /** When the CA promises a newer list; undefined when it does not say. */
  nextUpdate?: number;
}

/** The DER of a CRL file: PEM (`-----BEGIN X509 CRL-----`) is decoded, anything else is taken as DER. */
export function crlDer(file: Buffer): Buffer {
  const text = file.toString('latin1');
  const pem = /-----BEGIN X509 CRL-----([\s\S]+?)-----END X509 CRL-----/.exec(text);
  return pem ? Buffer.from(pem[1].replace(/\s+/g, ''), 'base64') : file;
}

/** Reads a CRL and checks that one of the CA certificates signed it. */
export function parseCrl(file: Buffer, issuers: readonly X509Certificate[]): RevocationList {
  const der = crlDer(file);
  const list = element(der, 0, der.length);
  if (list.tag !== SEQUENCE || list.end !== der.length) throw new CrlError('not a DER certificate revocation list');
  const [tbs, algorithm, signature] = children(der, list);
  if (!tbs || tbs.tag !== SEQUENCE || algorithm?.tag !== SEQUENCE || signature?.tag !== BIT_STRING) throw new CrlError('not a certificate revocation list');
  const algorithmOid = children(der, algorithm)[0];
  if (algorithmOid?.tag !== OID) throw new CrlError('the signature algorithm is missing');
  const oid = oidText(der, algorithmOid);
  if (!(oid in SIGNATURE_HASHES)) throw new CrlError(`signature algorithm ${oid} is not supported`);
  // A BIT STRING's first content byte counts unused bits: 0 for a signature.
  const signatureBytes = der.subarray(signature.content + 1, signature.end);
  const signed = der.subarray(tbs.start, tbs.end);
  const signedBy = issuers.some((ca) => {
    try {
      return verifySignature(SIGNATURE_HASHES[oid], signed, ca.publicKey, signatureBytes);
    } catch {
      return false;
    }
  });
  if (!signedBy) throw new CrlError('the list is not signed by the fleet’s CA');

  const fields = children(der, tbs);
  let i = fields[0]?.tag === INTEGER ? 1 : 0; // the version is optional
  i += 2; // the signature algorithm and the issuer: the signature above already vouches for them
  const thisUpdate = fields[i];
  if (!thisUpdate || (thisUpdate.tag !== UTC_TIME && thisUpdate.tag !== GENERALIZED_TIME)) throw new CrlError('thisUpdate is missing');
  i++;
  let nextUpdate: number | undefined;
  if (fields[i] && (fields[i].tag === UTC_TIME || fields[i].tag === GENERALIZED_TIME)) nextUpdate = timeOf(der, fields[i++]);
  const serials = new Set<string>();
  if (fields[i]?.tag === SEQUENCE) {
    for (const entry of children(der, fields[i])) {
      const serial = children(der, entry)[0];
      if (entry.tag !== SEQUENCE || serial?.tag !== INTEGER) throw new CrlError('a revoked entry has no serial number');
      serials.add(normalSerial(der.toString('hex', serial.content, serial.end)));
    }
  }
  return { serials, thisUpdate: timeOf(der, thisUpdate), ...(nextUpdate !== undefined ? { nextUpdate } : {}) };
}
