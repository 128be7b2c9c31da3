/**
 * Signed webhooks from vendor clouds (Cloudy pattern): an HMAC of the exact bytes sent, in a
 * header, hex or base64, perhaps behind a prefix such as `sha256=` (GitHub) or `v0=` (Slack).
 * The consumer builds the signed content (the raw body, or timestamp and body as the vendor
 * documents); this checks the signature and, when a timestamp came with it, its window.
 */
import type { Presented, VerifyPolicy } from '../shared/device-registry-api';
import { decodeSignature, fail, hmac, parseTimestamp, safeEqual, windowCheck, type Check } from './checks';

const DIGEST_BYTES = { sha1: 20, sha256: 32, sha512: 64 } as const;
const SIGNATURE_LIMIT = 1024;

type WebhookPresented = Extract<Presented, { method: 'webhook' }>;

export function defaultWebhookPolicy(policy: VerifyPolicy): NonNullable<VerifyPolicy['webhook']> {
  return policy.webhook ?? { hash: 'sha256', encoding: 'hex', prefix: '' };
}

/** The signature bytes, or why the header is malformed. */
export function webhookSignature(p: WebhookPresented, policy: VerifyPolicy): Buffer | string {
  const { hash, encoding, prefix } = defaultWebhookPolicy(policy);
  let text = p.signature.trim();
  if (text.length > SIGNATURE_LIMIT) return 'the signature header is too long';
  if (prefix) {
    if (!text.startsWith(prefix)) return `the signature must start with ${prefix}`;
    text = text.slice(prefix.length);
  }
  const bytes = decodeSignature(text, DIGEST_BYTES[hash], [encoding]);
  if (!bytes) return `the signature must be a ${hash} HMAC in ${encoding}`;
  if (p.timestamp !== undefined && parseTimestamp(p.timestamp) === undefined) return 'the timestamp must be Unix time in seconds or milliseconds';
  return bytes;
}

/** What a vendor computes, for tests and simulators. */
export function signWebhook(key: Buffer, content: Buffer | string, hash: 'sha1' | 'sha256' | 'sha512' = 'sha256', encoding: 'hex' | 'base64' = 'hex'): string {
  return hmac(hash, key, content).toString(encoding);
}

export function checkWebhook(secret: Buffer, signature: Buffer, p: WebhookPresented, policy: VerifyPolicy, now: number): Check {
  const { hash } = defaultWebhookPolicy(policy);
  if (!safeEqual(signature, hmac(hash, secret, p.content))) return fail('bad_signature', 'the webhook signature does not match the body');
  if (p.timestamp === undefined) return { ok: true };
  const at = parseTimestamp(p.timestamp) as number;
  const window = windowCheck(at, now, policy.skewMs, 'the webhook timestamp');
  if (window) return window;
  return { ok: true, replay: { key: `webhook\n${p.id}\n${signature.toString('base64')}`, until: at + policy.skewMs } };
}
