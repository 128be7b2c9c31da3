/**
 * What the simulated devices sign with: keys derived from the master secret the example flows'
 * registry uses (IOT_DEVICE_MASTER_SECRET, or the file `npm start` keeps it in), the same way
 * that registry derives them (IOT_KEY_DERIVATION: v1, one key for every method, or v2, a key per
 * method), and the credentials of every method the device-auth node checks. The signing code is
 * the registry's own, so a device signs exactly what the flows verify.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { bodyDigest, signHmac } from '../nodes/device-registry/hmac';
import { decodeSecret } from '../nodes/device-registry/records';
import type { SecretMethod } from '../nodes/shared/device-registry-api';
import { derivedApiKey, derivedKey, KEY_DERIVATIONS, type KeyDerivation } from '../nodes/device-registry/stores';
import { signWebhook } from '../nodes/device-registry/webhook';

/** The JWT audience the example flows expect. */
export const AUDIENCE = 'iot-patterns';

/** The master secret: the environment's, else the one `npm start` generated in the data folder. */
export function masterSecret(dataDir: string): Buffer {
  const fromEnv = process.env.IOT_DEVICE_MASTER_SECRET;
  if (fromEnv) return decodeSecret(fromEnv);
  const file = join(dataDir, 'device-master-secret');
  if (!existsSync(file)) throw new Error(`no IOT_DEVICE_MASTER_SECRET and no ${file}: start Node-RED with npm start first, or set the variable`);
  return decodeSecret(readFileSync(file, 'utf8').trim());
}

/**
 * How the pattern flows' registry derives keys: IOT_KEY_DERIVATION, v2 by default (the shipped flows' registry). Flows
 * seeded by an `npm start` from before v2 keep v1 in their registry: run the simulator with IOT_KEY_DERIVATION=v1 for them.
 */
export function keyDerivation(): KeyDerivation {
  const value = process.env.IOT_KEY_DERIVATION || 'v2';
  if (!(KEY_DERIVATIONS as readonly string[]).includes(value)) throw new Error(`IOT_KEY_DERIVATION must be v1 or v2, not ${value}`);
  return value as KeyDerivation;
}

export class DeviceKeys {
  constructor(
    private readonly master: Buffer,
    private readonly derivation: KeyDerivation = keyDerivation(),
  ) {}

  key(id: string, method: SecretMethod): Buffer {
    return derivedKey(this.master, id, method, this.derivation);
  }

  apiKey(id: string): string {
    return derivedApiKey(this.key(id, 'apikey'));
  }

  /** Headers for an HMAC-signed HTTP request (the Direct pattern's constrained devices). */
  hmacHeaders(id: string, method: string, path: string, body: string, at = Date.now(), nonce = randomBytes(12).toString('base64url')): Record<string, string> {
    const timestamp = String(Math.floor(at / 1000));
    const signature = signHmac(this.key(id, 'hmac'), { id, timestamp, nonce, scope: `${method} ${path}`, bodyDigest: bodyDigest(body) });
    return { 'x-device-id': id, 'x-timestamp': timestamp, 'x-nonce': nonce, 'x-signature': signature };
  }

  /** A short-lived HS256 JWT naming the device, signed with its derived key. */
  async jwt(id: string, options: { lifetimeSeconds?: number; audience?: string; issuedAt?: number } = {}): Promise<string> {
    const issuedAt = Math.floor((options.issuedAt ?? Date.now()) / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(id)
      .setAudience(options.audience ?? AUDIENCE)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + (options.lifetimeSeconds ?? 300))
      .setJti(randomBytes(12).toString('base64url'))
      .sign(this.key(id, 'jwt'));
  }

  /** A webhook signature of the given content, as a vendor cloud or partner computes it. */
  webhook(id: string, content: string): string {
    return signWebhook(this.key(id, 'webhook'), content);
  }
}
