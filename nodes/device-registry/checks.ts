/**
 * What every verifier of the registry shares: the shape of a check's result, timestamps and their
 * window, and constant-time comparison of secrets.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RejectCode } from '../shared/device-registry-api';

export type Check =
  | { ok: true; claims?: Record<string, unknown>; replay?: { key: string; until: number } }
  | { ok: false; code: RejectCode; message: string };

export function fail(code: RejectCode, message: string): { ok: false; code: RejectCode; message: string } {
  return { ok: false, code, message };
}

/** Unix time in seconds (up to 11 digits) or milliseconds (12 or 13 digits), decimal digits only. */
export function parseTimestamp(text: string): number | undefined {
  if (!/^\d{9,13}$/.test(text)) return undefined;
  const value = Number(text);
  return text.length <= 11 ? value * 1000 : value;
}

/** `expired` before now − skew, `not_yet_valid` after now + skew. */
export function windowCheck(at: number, now: number, skewMs: number, what: string): Check | undefined {
  if (at < now - skewMs) return fail('expired', `${what} is ${Math.round((now - at) / 1000)} s old (the window is ±${skewMs / 1000} s)`);
  if (at > now + skewMs) return fail('not_yet_valid', `${what} is ${Math.round((at - now) / 1000)} s in the future (the window is ±${skewMs / 1000} s)`);
  return undefined;
}

/** Equal length and equal bytes, in time that does not depend on where they differ. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function hmac(hash: string, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$|^[A-Za-z0-9_-]+$/;
const ANY_ENCODING: ReadonlyArray<'hex' | 'base64'> = ['hex', 'base64'];

/** A signature as hex, base64 or base64url, decoded when it has exactly `bytes` bytes. */
export function decodeSignature(text: string, bytes: number, encodings: ReadonlyArray<'hex' | 'base64'> = ANY_ENCODING): Buffer | undefined {
  if (encodings.includes('hex') && text.length === bytes * 2) {
    // Hex decoding stops at the first pair that is not hex, so a full length means all of it was.
    const decoded = Buffer.from(text, 'hex');
    if (decoded.length === bytes) return decoded;
  }
  if (encodings.includes('base64') && text.length <= Math.ceil(bytes / 3) * 4 && BASE64.test(text)) {
    const decoded = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (decoded.length === bytes) return decoded;
  }
  return undefined;
}
