/**
 * What devices do, for tests: key pairs, JWTs (with jose, as a device would), HMAC-signed HTTP
 * requests and messages, SAS tokens and webhook signatures.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { bodyDigest, signHmac } from '../../nodes/device-registry/hmac';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as PEM, as a registry holds it. */
  pem: string;
}

function pair(kind: 'ec' | 'rsa' | 'ed25519'): KeyPair {
  const keys =
    kind === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return { ...keys, pem: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString().trim() };
}

let cached: { es256: KeyPair; rs256: KeyPair; ed25519: KeyPair; other: KeyPair } | undefined;

/** One key pair of each kind, made once per test file. */
export function keyPairs(): { es256: KeyPair; rs256: KeyPair; ed25519: KeyPair; other: KeyPair } {
  cached ??= { es256: pair('ec'), rs256: pair('rsa'), ed25519: pair('ed25519'), other: pair('ec') };
  return cached;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A device's token: `sub` is the device, 5 minutes of life, a fresh jti, unless claims say otherwise. */
export async function deviceJwt(key: KeyObject | Uint8Array, alg: string, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const now = nowSeconds();
  const payload: JWTPayload = { iat: now, exp: now + 300, jti: randomBytes(8).toString('hex'), ...claims };
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ alg, ...header }).sign(key);
}

/** An unsigned token, as an attacker sends it: alg none and an empty signature. */
export function unsignedJwt(claims: JWTPayload): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ iat: nowSeconds(), exp: nowSeconds() + 300, ...claims })}.`;
}

export interface SignedRequest {
  id: string;
  timestamp: string;
  nonce: string;
  signature: string;
  bodyDigest: string;
  scope: string;
}

/** The HMAC headers a device sends with a request or message. */
export function hmacSigned(key: Buffer, id: string, scope: string, body: Buffer | string, options: { timestamp?: number; nonce?: string } = {}): SignedRequest {
  const timestamp = String(options.timestamp ?? nowSeconds());
  const nonce = options.nonce ?? randomBytes(12).toString('base64url');
  const digest = bodyDigest(body);
  const parts = { id, timestamp, nonce, scope, bodyDigest: digest };
  return { ...parts, signature: signHmac(key, parts) };
}

/** HTTP headers for an HMAC-signed request. */
export function hmacHeaders(signed: SignedRequest): Record<string, string> {
  return { 'x-device-id': signed.id, 'x-timestamp': signed.timestamp, 'x-nonce': signed.nonce, 'x-signature': signed.signature };
}
