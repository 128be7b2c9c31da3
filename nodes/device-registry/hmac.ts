/**
 * HMAC-signed messages (Direct pattern, constrained devices). A device signs a canonical string
 * with its shared secret:
 *
 *   IOT-HMAC-SHA256\n<device id>\n<timestamp>\n<nonce>\n<scope>\n<hex SHA-256 of the body bytes>
 *
 * where scope is `<METHOD> <path and query as sent>` over HTTP and the topic over MQTT. The
 * timestamp must lie within the skew window, and the nonce is remembered (by the consumer's
 * replay cache) until the timestamp leaves it.
 */
import { sha256Hex } from '../shared/digest';
import type { Presented, VerifyPolicy } from '../shared/device-registry-api';
import { decodeSignature, fail, hmac, parseTimestamp, safeEqual, windowCheck, type Check } from './checks';

export const HMAC_SCHEME = 'IOT-HMAC-SHA256';
const NONCE = /^[A-Za-z0-9_-]{8,128}$/;
const DIGEST = /^[0-9a-f]{64}$/;
const SCOPE_LIMIT = 4096;

export interface SignedParts {
  id: string;
  timestamp: string;
  nonce: string;
  scope: string;
  bodyDigest: string;
}

export function bodyDigest(body: Buffer | string): string {
  return sha256Hex(body);
}

export function canonicalString(parts: SignedParts): string {
  return `${HMAC_SCHEME}\n${parts.id}\n${parts.timestamp}\n${parts.nonce}\n${parts.scope}\n${parts.bodyDigest}`;
}

/** What a device computes: the hex HMAC-SHA256 of the canonical string. */
export function signHmac(key: Buffer, parts: SignedParts): string {
  return hmac('sha256', key, canonicalString(parts)).toString('hex');
}

type HmacPresented = Extract<Presented, { method: 'hmac' }>;

/** What a well-formed HMAC credential holds, decoded once. */
export interface HmacParts {
  signature: Buffer;
  /** The timestamp in ms. */
  at: number;
}

/** Checks what can be checked without the key, so malformed input never reaches a lookup. */
export function hmacShape(p: HmacPresented): HmacParts | ReturnType<typeof fail> {
  const at = parseTimestamp(p.timestamp);
  if (at === undefined) return fail('malformed', 'the timestamp must be Unix time in seconds or milliseconds (digits only)');
  if (!NONCE.test(p.nonce)) return fail('malformed', 'the nonce must be 8 to 128 characters of A-Z a-z 0-9 _ -');
  if (!DIGEST.test(p.bodyDigest)) return fail('malformed', 'the body digest must be lowercase hex SHA-256');
  if (p.scope.length > SCOPE_LIMIT || /[\r\n]/.test(p.scope)) return fail('malformed', 'the signed scope (method and path, or topic) is too long or holds a line break');
  const signature = decodeSignature(p.signature, 32);
  if (signature === undefined) return fail('malformed', 'the signature must be 32 bytes in hex, base64 or base64url');
  return { signature, at };
}

export function checkHmac(secret: Buffer, p: HmacPresented, parts: HmacParts, policy: VerifyPolicy, now: number): Check {
  if (!safeEqual(parts.signature, hmac('sha256', secret, canonicalString(p)))) return fail('bad_signature', 'the signature does not match');
  const window = windowCheck(parts.at, now, policy.skewMs, 'the timestamp');
  if (window) return window;
  return { ok: true, replay: { key: `hmac\n${p.id}\n${p.nonce}`, until: parts.at + policy.skewMs } };
}
