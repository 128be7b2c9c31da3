/**
 * Shared access signatures as Azure IoT Hub makes them, so devices built for it can connect:
 *
 *   SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64 HMAC>&se=<expiry, s>[&skn=<policy>]
 *
 * The signature is HMAC-SHA256, keyed with the device's secret bytes (Azure device keys are
 * base64: register them as `base64:<key>`), over `<url-encoded resource>\n<expiry>`. The resource
 * names the device: `<host>/devices/<id>`, or the bare device id.
 */
import type { VerifyPolicy } from '../shared/device-registry-api';
import { decodeSignature, fail, hmac, safeEqual, type Check } from './checks';

const PREFIX = 'SharedAccessSignature ';
const TOKEN_LIMIT = 4096;
const DEVICE_IN_RESOURCE = /(?:^|\/)devices\/([^/]+)$/;

export interface SasToken {
  /** The resource, decoded. */
  resource: string;
  signature: string;
  /** Expiry in seconds since the epoch. */
  expiry: number;
  /** The device the resource names. */
  id: string;
}

/** Parses a token; a string is the reason it is malformed. */
export function parseSas(token: string): SasToken | string {
  if (token.length > TOKEN_LIMIT) return 'the token is too long';
  if (!token.startsWith(PREFIX)) return 'a SAS token starts with "SharedAccessSignature "';
  const fields = new Map<string, string>();
  for (const pair of token.slice(PREFIX.length).split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return `"${pair.slice(0, 20)}" is not a key=value field`;
    const key = pair.slice(0, eq);
    if (!['sr', 'sig', 'se', 'skn'].includes(key)) return `unknown field ${key.slice(0, 20)}`;
    if (fields.has(key)) return `field ${key} appears twice`;
    fields.set(key, pair.slice(eq + 1));
  }
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  if (!sr || !sig || !se) return 'sr, sig and se are required';
  if (!/^\d{1,12}$/.test(se)) return 'se must be the expiry in seconds since the epoch';
  let resource: string;
  let signature: string;
  try {
    resource = decodeURIComponent(sr);
    signature = decodeURIComponent(sig);
  } catch {
    return 'sr or sig is not URL-encoded correctly';
  }
  const named = DEVICE_IN_RESOURCE.exec(resource);
  const id = named ? named[1] : resource;
  return { resource, signature, expiry: Number(se), id };
}

export function sasStringToSign(resource: string, expiry: number): string {
  return `${encodeURIComponent(resource)}\n${expiry}`;
}

/** What a device (or Azure's SDK) makes. */
export function signSas(key: Buffer, resource: string, expiry: number): string {
  const signature = hmac('sha256', key, sasStringToSign(resource, expiry)).toString('base64');
  return `${PREFIX}sr=${encodeURIComponent(resource)}&sig=${encodeURIComponent(signature)}&se=${expiry}`;
}

export function checkSas(secret: Buffer, token: SasToken, policy: VerifyPolicy, now: number): Check {
  const signature = decodeSignature(token.signature, 32, ['base64']);
  if (!signature) return fail('malformed', 'sig must be a base64 HMAC-SHA256');
  if (!safeEqual(signature, hmac('sha256', secret, sasStringToSign(token.resource, token.expiry)))) {
    return fail('bad_signature', 'the SAS signature does not match');
  }
  if (policy.sasResource && !token.resource.toLowerCase().startsWith(policy.sasResource.toLowerCase())) {
    return fail('wrong_audience', `the token is for ${token.resource}, not for ${policy.sasResource}`);
  }
  const expiresAt = token.expiry * 1000;
  if (expiresAt < now - policy.tokenSkewMs) return fail('expired', `the token expired ${Math.round((now - expiresAt) / 1000)} s ago`);
  if (expiresAt - now > policy.maxLifetimeMs + policy.tokenSkewMs) {
    return fail('too_long_lived', `the token is valid for ${Math.round((expiresAt - now) / 1000)} s; at most ${policy.maxLifetimeMs / 1000} s is accepted`);
  }
  return { ok: true };
}
