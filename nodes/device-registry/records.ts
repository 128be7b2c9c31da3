/**
 * A registered device as the registry holds it, and the one validation every source (the
 * editor's list, a registry file) goes through. Key material stays inside the registry folder.
 */
import { sha256 } from '../shared/digest';
import { AUTH_METHODS, type AuthMethod, type SecretMethod } from '../shared/device-registry-api';

export interface DeviceRecord {
  id: string;
  enabled: boolean;
  /** Methods this device may use; undefined: every method its key material supports. */
  methods?: ReadonlySet<AuthMethod>;
  /** Shared secret bytes: HMAC, SAS, webhook signatures and HS256 tokens. */
  secret?: Buffer;
  /** A derived device's key for each method (stores.ts); a listed device has its one secret instead. */
  keyFor?(method: SecretMethod): Buffer;
  /** SHA-256 of the API key: the key itself is never kept. */
  apiKeyHash?: Buffer;
  /** Public keys for JWT (PEM text, or JWK / JWK Set JSON). */
  publicKeys?: readonly string[];
  /** JWT algorithms this device may sign with. */
  algorithms?: readonly string[];
  /** SHA-256 fingerprints (lowercase hex) of client certificates pinned on this device. */
  certificates?: ReadonlySet<string>;
  gateway?: string;
  topics?: { publish?: readonly string[]; subscribe?: readonly string[] };
  meta?: Record<string, unknown>;
}

export const JWT_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519', 'HS256'] as const;

/** Device ids appear in MQTT topics and client ids: no `/`, `+`, `#`, spaces or control characters. */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:@~-]{0,127}$/;
const MIN_SECRET_BYTES = 16;
const HEX_SHA256 = /^(?:sha256:)?([0-9a-fA-F]{64})$/;
const TOPIC_FILTER = /^(?:[^#+/\u0000]*|\+|#|\{id\})(?:\/(?:[^#+/\u0000]*|\+|\{id\}))*(?:\/#)?$/;

export class RecordError extends Error {}

export function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && DEVICE_ID.test(value);
}

/** A certificate fingerprint (`sha256:AB:CD:…`, `AB:CD:…` or bare hex) as the registry compares them: 64 lowercase hex digits. */
export function normalFingerprint(text: string): string | undefined {
  const hex = text
    .trim()
    .replace(/^sha256:/i, '')
    .replace(/:/g, '')
    .toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/** Secret text to key bytes: `base64:…` and `hex:…` are decoded, anything else is UTF-8. */
export function decodeSecret(text: string): Buffer {
  let bytes: Buffer;
  if (text.startsWith('base64:')) {
    const body = text.slice(7).trim();
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(body)) throw new RecordError('the secret after base64: is not base64');
    bytes = Buffer.from(body, 'base64');
  } else if (text.startsWith('hex:')) {
    const body = text.slice(4).trim();
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(body)) throw new RecordError('the secret after hex: is not hex');
    bytes = Buffer.from(body, 'hex');
  } else {
    bytes = Buffer.from(text, 'utf8');
  }
  if (bytes.length < MIN_SECRET_BYTES) throw new RecordError(`a secret needs at least ${MIN_SECRET_BYTES} bytes (it has ${bytes.length})`);
  return bytes;
}

/** An API key as stored: `sha256:<hex>` (or bare hex) is a hash already; `plainAllowed` hashes anything else. */
export function apiKeyHashOf(text: string, plainAllowed: boolean): Buffer {
  const hash = HEX_SHA256.exec(text.trim());
  if (hash) return Buffer.from(hash[1], 'hex');
  if (!plainAllowed) throw new RecordError('apiKeyHash must be the SHA-256 of the key in hex (64 characters, optionally prefixed sha256:)');
  if (text.length < MIN_SECRET_BYTES) throw new RecordError(`an API key needs at least ${MIN_SECRET_BYTES} characters`);
  return sha256(text);
}

function list(value: unknown, what: string): string[] {
  if (value === undefined || value === null || value === '') return [];
  const items = typeof value === 'string' ? value.split(/[\s,]+/) : Array.isArray(value) ? value : undefined;
  if (!items || items.some((i) => typeof i !== 'string')) throw new RecordError(`${what} must be a list of names`);
  return (items as string[]).map((i) => i.trim()).filter((i) => i !== '');
}

function topicList(value: unknown, what: string): string[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const topics = typeof value === 'string' ? value.split(/[\s,]+/).filter((t) => t !== '') : value;
  if (!Array.isArray(topics) || topics.some((t) => typeof t !== 'string' || !TOPIC_FILTER.test(t) || t === '')) {
    throw new RecordError(`${what} must be MQTT topic filters (+, # and {id} allowed)`);
  }
  return topics as string[];
}

function publicKeysOf(value: unknown): string[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const items = Array.isArray(value) ? value : [value];
  return items.map((item) => {
    const text = typeof item === 'string' ? item.trim() : item !== null && typeof item === 'object' ? JSON.stringify(item) : '';
    if (/^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----$/.test(text)) return text;
    let parsed: { kty?: unknown; keys?: unknown; d?: unknown } | undefined;
    try {
      parsed = text.startsWith('{') ? (JSON.parse(text) as typeof parsed) : undefined;
    } catch {
      parsed = undefined;
    }
    const jwks = Array.isArray(parsed?.keys) ? (parsed?.keys as Array<{ kty?: unknown; d?: unknown }>) : parsed ? [parsed] : [];
    if (jwks.length === 0 || jwks.some((k) => k === null || typeof k !== 'object' || typeof k.kty !== 'string')) {
      throw new RecordError('publicKey must be a PEM public key (BEGIN PUBLIC KEY), a JWK or a JWK Set');
    }
    // A JWK with "d" (or an oct key) is a private or secret key: it has no place in a registry of public keys.
    if (jwks.some((k) => k.d !== undefined || k.kty === 'oct')) throw new RecordError('publicKey holds a private or secret key: give the public part only');
    return text;
  });
}

/** Where secrets may come from: the list's credentials may hold them, a registry file may not. */
export interface RecordSource {
  /** Shown in errors: `device 3`, `line 17`. */
  where: string;
  secretsAllowed: boolean;
}

/**
 * Validates one device as given by a source. Fields: id, enabled, methods, secret (credentials
 * only), apiKey (credentials only) or apiKeyHash, publicKey, algorithms, certificates (pinned
 * fingerprints), gateway, topics ({ publish, subscribe }) or publishTopics / subscribeTopics, meta.
 */
export function parseRecord(raw: Record<string, unknown>, source: RecordSource): DeviceRecord {
  const at = (message: string) => new RecordError(`${source.where}: ${message}`);
  try {
    if (!isDeviceId(raw.id)) throw new RecordError(`id ${JSON.stringify(raw.id)} is not a device id (letters, digits and . _ : @ ~ -, up to 128)`);
    const record: DeviceRecord = { id: raw.id, enabled: enabledOf(raw.enabled) };
    const methods = list(raw.methods, 'methods');
    if (methods.length > 0) {
      const unknown = methods.filter((m) => !(AUTH_METHODS as readonly string[]).includes(m));
      if (unknown.length > 0) throw new RecordError(`unknown method(s) ${unknown.join(', ')} (known: ${AUTH_METHODS.join(', ')})`);
      record.methods = new Set(methods as AuthMethod[]);
    }
    if (raw.secret !== undefined && raw.secret !== '') {
      if (!source.secretsAllowed) throw new RecordError('a registry file may not hold secrets: use the list (credentials) or derived keys');
      if (typeof raw.secret !== 'string') throw new RecordError('secret must be text');
      record.secret = decodeSecret(raw.secret);
    }
    if (raw.apiKey !== undefined && raw.apiKey !== '') {
      if (!source.secretsAllowed) throw new RecordError('a registry file holds API keys hashed: use apiKeyHash');
      if (typeof raw.apiKey !== 'string') throw new RecordError('apiKey must be text');
      record.apiKeyHash = apiKeyHashOf(raw.apiKey, true);
    } else if (raw.apiKeyHash !== undefined && raw.apiKeyHash !== '') {
      if (typeof raw.apiKeyHash !== 'string') throw new RecordError('apiKeyHash must be text');
      record.apiKeyHash = apiKeyHashOf(raw.apiKeyHash, false);
    }
    const keys = publicKeysOf(raw.publicKey);
    if (keys) record.publicKeys = keys;
    const pins = list(raw.certificates, 'certificates');
    if (pins.length > 0) {
      const fingerprints = pins.map((pin) => normalFingerprint(pin));
      if (fingerprints.some((f) => f === undefined)) throw new RecordError('certificates must be SHA-256 fingerprints (64 hex digits, colons allowed, optionally prefixed sha256:)');
      record.certificates = new Set(fingerprints as string[]);
    }
    const algorithms = list(raw.algorithms, 'algorithms');
    if (algorithms.length > 0) {
      const unknown = algorithms.filter((a) => !(JWT_ALGORITHMS as readonly string[]).includes(a));
      if (unknown.length > 0) throw new RecordError(`unsupported algorithm(s) ${unknown.join(', ')} (supported: ${JWT_ALGORITHMS.join(', ')})`);
      record.algorithms = algorithms;
    }
    if (raw.gateway !== undefined && raw.gateway !== '' && raw.gateway !== null) {
      if (!isDeviceId(raw.gateway)) throw new RecordError(`gateway ${JSON.stringify(raw.gateway)} is not a device id`);
      if (raw.gateway === raw.id) throw new RecordError('a device cannot be its own gateway');
      record.gateway = raw.gateway;
    }
    const topics = (raw.topics ?? {}) as Record<string, unknown>;
    if (typeof topics !== 'object' || topics === null || Array.isArray(topics)) throw new RecordError('topics must be { publish, subscribe }');
    const publish = topicList(raw.publishTopics ?? topics.publish, 'publish topics');
    const subscribe = topicList(raw.subscribeTopics ?? topics.subscribe, 'subscribe topics');
    if (publish || subscribe) record.topics = { ...(publish ? { publish } : {}), ...(subscribe ? { subscribe } : {}) };
    const meta = metaOf(raw);
    if (meta) record.meta = meta;
    return record;
  } catch (err) {
    if (err instanceof RecordError) throw at(err.message);
    throw err;
  }
}

function enabledOf(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === true) return true;
  if (value === false) return false;
  if (typeof value === 'string' && /^(true|yes|1)$/i.test(value)) return true;
  if (typeof value === 'string' && /^(false|no|0)$/i.test(value)) return false;
  throw new RecordError(`enabled must be true or false, not ${JSON.stringify(value)}`);
}

/** `meta` as an object (or JSON text), plus flat `meta.<name>` fields from CSV columns. */
function metaOf(raw: Record<string, unknown>): Record<string, unknown> | undefined {
  let meta: Record<string, unknown> | undefined;
  if (raw.meta !== undefined && raw.meta !== '' && raw.meta !== null) {
    let value = raw.meta;
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value);
      } catch {
        throw new RecordError('meta is not valid JSON');
      }
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RecordError('meta must be an object');
    meta = { ...(value as Record<string, unknown>) };
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!key.startsWith('meta.') || value === '' || value === undefined) continue;
    meta ??= {};
    meta[key.slice(5)] = value;
  }
  return meta;
}

/** The shared secret a method's proof is checked with: the method's derived key, or the device's secret. */
export function secretOf(record: DeviceRecord, method: SecretMethod): Buffer | undefined {
  return record.keyFor ? record.keyFor(method) : record.secret;
}

/**
 * Which methods a record can use: those its key material supports, narrowed by its own list. A
 * client certificate's key material is outside the record (a fleet CA, or a pin), so x509 is
 * allowed unless the device's list leaves it out.
 */
export function methodAllowed(record: DeviceRecord, method: AuthMethod): boolean {
  if (record.methods && !record.methods.has(method)) return false;
  const hasSecret = record.keyFor !== undefined || record.secret !== undefined;
  switch (method) {
    case 'apikey':
      return record.apiKeyHash !== undefined;
    case 'jwt':
      return hasSecret || (record.publicKeys?.length ?? 0) > 0;
    case 'x509':
      return true;
    default:
      return hasSecret;
  }
}
