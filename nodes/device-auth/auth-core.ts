/**
 * The device-auth pipeline, free of Node-RED: what a message presents is turned into a
 * credential, the registry gives its verdict, and this node polices the rest (payload size,
 * replays, what a JWT is bound to, rates, the body's syntax, field allow-lists, the ids a sender
 * chooses, the devices a gateway or integration speaks for).
 *
 * Order: size cap (and, for a body something already parsed, its depth and key count); credential
 * (missing, malformed); the registry's verdict (lockout, unknown, revoked, signature, time);
 * replay and body binding; per-device rate; body parsing within the depth and key limits (only
 * bytes that verified are parsed); allow-list; sender-chosen ids; the reading's time; the devices
 * the sender speaks for (each with its own time).
 */
import { STATUS_CODES } from 'node:http';
import type { DeviceIdentity } from '../shared/device';
import type { AuthMethod, DeviceRegistryService, Presented, RejectCode, Verdict, VerifyPolicy } from '../shared/device-registry-api';
import { sha256, sha256Hex } from '../shared/digest';
import { checkShape, LimitError, parseJsonWithin, type LimitCode, type ShapeLimits } from '../shared/json-limits';
import { isUtf8Text, looksLikeJson } from '../shared/payload';
import { readingTime } from '../shared/timestamp';
import { ReplayCache } from './replay-cache';
import { TokenBuckets } from './token-bucket';

export type AuthMode = 'anonymous' | AuthMethod | 'broker' | 'auto';

/** Why a message (or one reading of a batch) is refused: the registry's codes and this node's own. */
export type AuthCode = RejectCode | LimitCode | 'bad_timestamp' | 'internal' | 'replay_cache_full' | 'shared_state_unavailable';

/**
 * The replay cache and the rate limits kept where several Node-RED instances share them (Redis,
 * nodes/device-auth/shared-checks.ts), in place of this process's own: one call per message.
 */
export interface SharedChecks {
  /**
   * For a device (or an anonymous source): remembers `replay` (when given) until its time, unless
   * it was seen before (then `replayed`, and no token is taken); then, with `takeToken`, takes a
   * token from the device's bucket. `waitMs`: 0 when a token was taken (or none was asked for),
   * else how long until there is one.
   */
  check(device: string, replay: { key: string; until: number } | undefined, takeToken: boolean, now: number): Promise<{ replayed: boolean; waitMs: number }>;
}

export interface AuthSettings {
  mode: AuthMode;
  /** With mode auto: the methods this endpoint accepts (what its flow documents), the others refused. */
  accepted: ReadonlySet<AuthMethod>;
  policy: VerifyPolicy;
  /**
   * JWTs must carry a jti (each token is then accepted once). Otherwise a token must carry a jti
   * or a body hash (`bh`: base64url SHA-256 of the body bytes), so it cannot be replayed with
   * another body.
   */
  requireJti: boolean;
  /** Largest body in bytes; 0: no cap. */
  maxBytes: number;
  /** How deep a body may nest and how many keys and items it may hold (checked before it is parsed). */
  limits: ShapeLimits;
  /** The reading's own time field (ms or s since the epoch, or ISO 8601); '': none, the time of acceptance. */
  timeField: string;
  /** What the body becomes once verified. */
  parse: 'auto' | 'json' | 'raw';
  /** Top-level payload fields that go on; empty: all. */
  allowedFields: readonly string[];
  /** Per device (per source when anonymous); undefined: no limit. */
  rate?: { perSecond: number; burst: number };
  /** Webhook signed content, e.g. `{body}` or `{timestamp}.{body}` or `v0:{timestamp}:{body}`. */
  webhookContent: string;
  /**
   * The sender speaks for devices registered under it (a gateway's sensors, a vendor cloud's or a
   * partner's devices): each reading names one in `sensorField`, and only those registered under
   * the sender go on. With `scoped`, a name is the sender's own: `<sender>:<name>` is the device.
   */
  gateway?: { batchPath: string; sensorField: string; split: boolean; scoped: boolean };
  /** Top-level payload fields holding ids the sender chooses: prefixed `<sender id>:` so no sender can reuse another's. */
  scopedFields: readonly string[];
  replayCapacity: number;
}

/** Where credentials were found; the adapter reads them with typed inputs. */
export interface CredentialFields {
  deviceId?: unknown;
  apiKey?: unknown;
  timestamp?: unknown;
  nonce?: unknown;
  signature?: unknown;
  token?: unknown;
}

export interface HttpRequestInfo {
  method: string;
  /** Path and query as sent. */
  url: string;
  contentType?: string;
}

export interface AuthInput {
  body: unknown;
  http?: HttpRequestInfo;
  topic?: string;
  fields: CredentialFields;
  /**
   * Where the message came from (IP, client id, topic, or a property): the key of anonymous rate
   * limits, and of lockout after failed credentials (a device id is locked from that source only).
   */
  source?: string;
  /** What an iot-mqtt-broker node marked the message with, if anything. */
  brokerMark?: unknown;
  /** The client certificate chain (DER, the device's first) of the TLS connection the request came over. */
  certificate?: readonly Buffer[];
}

export interface SensorReading {
  device: DeviceIdentity;
  item: unknown;
  index: number;
  /** When the reading was measured (its own time), else accepted; ms since the epoch. */
  time: number;
}

export interface SensorRejection {
  code: AuthCode;
  message: string;
  item: unknown;
  index: number;
}

export type AuthOutcome =
  | { ok: true; device: DeviceIdentity; payload: unknown; time: number; sensors?: SensorReading[]; rejectedSensors?: SensorRejection[] }
  | { ok: false; code: AuthCode; message: string; status: number; retryAfterSeconds?: number; id?: string };

type Rejection = Extract<AuthOutcome, { ok: false }>;

/** The HTTP status an HTTP flow answers a rejection with; the body says no more than its name. */
export function httpStatusOf(code: AuthCode): number {
  switch (code) {
    case 'malformed':
    case 'too_deep':
    case 'too_many_keys':
    case 'bad_timestamp':
      return 400;
    case 'too_large':
      return 413;
    case 'rate_limited':
    case 'locked_out':
      return 429;
    // Said only to a sender whose credential verified: a wrong or unknown one gets 401 either way,
    // whether or not the id exists or may use the method (no enumeration of registered ids).
    case 'revoked':
    case 'not_under_gateway':
      return 403;
    // The node's own capacity, not the sender's fault: send it again later.
    case 'replay_cache_full':
    case 'registry_unavailable':
    case 'shared_state_unavailable':
      return 503;
    default:
      return 401;
  }
}

/**
 * The HTTP status of a refusal for good that came from downstream (a settlement, not this node's
 * own rejection): the limits' own statuses, else 422 (understood, and will never be taken).
 */
export function refusalStatus(code: string | undefined): number {
  switch (code) {
    case 'too_large':
      return 413;
    case 'malformed':
    case 'too_deep':
    case 'too_many_keys':
    case 'bad_timestamp':
      return 400;
    default:
      return 422;
  }
}

export function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** A 429 always says when to try again: `retryAfterMs` when known, else a second. */
function rejection(code: AuthCode, message: string, id?: string, retryAfterMs?: number): Rejection {
  const out: Rejection = { ok: false, code, message, status: httpStatusOf(code) };
  if (id !== undefined) out.id = id;
  if (out.status === 429) out.retryAfterSeconds = Math.max(1, Math.ceil((retryAfterMs ?? 1000) / 1000));
  return out;
}

/** What a sender is asked to wait while the shared state does not answer: a Redis restart or failover. */
const SHARED_STATE_RETRY_S = 5;

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A credential field as one string: absent, or refused when a header was sent twice or is not text. */
function text(value: unknown, name: string): string | undefined | Rejection {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') return rejection('malformed', `${name} must be one text value${Array.isArray(value) ? ' (it was sent more than once)' : ''}`);
  return value;
}

function isRejection(value: unknown): value is Rejection {
  return typeof value === 'object' && value !== null && (value as { ok?: unknown }).ok === false;
}

/** The bytes of the body as they arrived, or undefined when something already parsed it. */
export function bodyBytes(body: unknown, http?: HttpRequestInfo): Buffer | undefined {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (http && BODYLESS.has(http.method.toUpperCase())) return Buffer.alloc(0);
  if (body === undefined || body === null) return Buffer.alloc(0);
  return undefined;
}

export function webhookContent(template: string, timestamp: string | undefined, body: Buffer): Buffer {
  const at = template.indexOf('{body}');
  const fill = (part: string) => Buffer.from(part.split('{timestamp}').join(timestamp ?? ''), 'utf8');
  return Buffer.concat([fill(template.slice(0, at)), body, fill(template.slice(at + 6))]);
}

function stripScheme(token: string, scheme: string): string {
  return token.length > scheme.length && token.slice(0, scheme.length + 1).toLowerCase() === `${scheme.toLowerCase()} ` ? token.slice(scheme.length + 1).trim() : token;
}

export class DeviceAuthCore {
  accepted = 0;
  rejected = 0;
  private readonly replays: ReplayCache;
  private readonly rates: TokenBuckets | undefined;

  constructor(
    readonly settings: AuthSettings,
    private readonly registry: DeviceRegistryService | undefined,
    /** Asks the broker node a mark names whether it stands for a live, authenticated connection. */
    private readonly brokerIdentity: (mark: unknown) => DeviceIdentity | undefined,
    /** Replays and rates shared with other instances; undefined: this process's own. */
    private readonly shared?: SharedChecks,
  ) {
    this.replays = new ReplayCache(settings.replayCapacity);
    this.rates = settings.rate ? new TokenBuckets(settings.rate.perSecond, settings.rate.burst) : undefined;
  }

  authenticate(input: AuthInput, now: number): AuthOutcome | Promise<AuthOutcome> {
    const outcome = this.run(input, now);
    return outcome instanceof Promise ? outcome.then((o) => this.count(o)) : this.count(outcome);
  }

  private count(outcome: AuthOutcome): AuthOutcome {
    if (outcome.ok) this.accepted++;
    else this.rejected++;
    return outcome;
  }

  private run(input: AuthInput, now: number): AuthOutcome | Promise<AuthOutcome> {
    const bytes = bodyBytes(input.body, input.http);
    if (!bytes) {
      // Parsed before it came here (an http in node, a broker): bounded before anything walks it.
      const shape = checkShape(input.body, this.settings.limits);
      if (shape) return rejection(shape.code, shape.message);
    }
    const max = this.settings.maxBytes;
    if (max > 0) {
      const size = bytes ? bytes.length : Buffer.byteLength(safeJson(input.body));
      if (size > max) return rejection('too_large', `the body has ${size} bytes; at most ${max} are accepted`);
    }
    const mode = this.settings.mode === 'auto' ? detectMode(input, this.settings.accepted) : (this.settings.mode as Exclude<AuthMode, 'auto'>);
    if (isRejection(mode)) return mode;
    if (this.settings.mode === 'auto' && mode !== 'broker' && mode !== 'anonymous' && !this.settings.accepted.has(mode)) {
      return rejection('method_not_allowed', `this endpoint accepts ${[...this.settings.accepted].join(', ') || 'no method'}, not ${mode}`);
    }
    if (mode === 'anonymous') {
      const source = input.source || 'unknown';
      const device: DeviceIdentity = { id: `anonymous:${source}`, method: 'anonymous' };
      if (this.shared) return this.checkShared(device, undefined, input, bytes, 'anonymous', now);
      const limited = this.limit(device.id, now);
      if (limited) return limited;
      return this.accept(device, input, bytes, 'anonymous', now);
    }
    if (mode === 'broker') {
      const device = input.brokerMark === undefined ? undefined : this.brokerIdentity(input.brokerMark);
      if (!device) return rejection('not_authenticated', 'the message did not come from a live, authenticated connection of an iot-mqtt-broker node');
      return this.afterVerdict({ ok: true, device: { ...device, method: device.method ?? 'mqtt' } }, input, bytes, now);
    }
    if (!this.registry) return rejection('registry_unavailable', 'no device registry is configured');
    const presented = this.presented(mode, input, bytes);
    if (isRejection(presented)) return presented;
    const verdict = this.registry.verify(presented, this.settings.policy, now, input.source);
    return verdict instanceof Promise ? verdict.then((v) => this.afterVerdict(v, input, bytes, now)) : this.afterVerdict(verdict, input, bytes, now);
  }

  /** The credential the message presents for a method. */
  private presented(method: AuthMethod, input: AuthInput, bytes: Buffer | undefined): Presented | Rejection {
    const f = input.fields;
    const id = text(f.deviceId, 'the device id');
    if (isRejection(id)) return id;
    switch (method) {
      case 'apikey': {
        const key = text(f.apiKey ?? f.token, 'the API key');
        if (isRejection(key)) return key;
        if (key === undefined) return rejection('missing_credentials', 'no API key');
        const bare = stripScheme(stripScheme(key, 'Bearer'), 'ApiKey');
        return id === undefined ? { method, key: bare } : { method, id, key: bare };
      }
      case 'hmac': {
        const timestamp = text(f.timestamp, 'the timestamp');
        const nonce = text(f.nonce, 'the nonce');
        const signature = text(f.signature, 'the signature');
        for (const value of [timestamp, nonce, signature]) if (isRejection(value)) return value;
        if (id === undefined || timestamp === undefined || nonce === undefined || signature === undefined) {
          return rejection('missing_credentials', 'HMAC needs the device id, a timestamp, a nonce and a signature');
        }
        if (!bytes) return rejection('malformed', 'the body was parsed before this node: HMAC is computed over the bytes as sent (tick "Do not parse request body" on the http-in node, or have MQTT deliver a Buffer)');
        const scope = input.http ? `${input.http.method.toUpperCase()} ${input.http.url}` : (input.topic ?? '');
        return { method, id, timestamp: timestamp as string, nonce: nonce as string, signature: signature as string, scope, bodyDigest: sha256Hex(bytes) };
      }
      case 'sas':
      case 'jwt': {
        const raw = text(f.token, 'the token');
        if (isRejection(raw)) return raw;
        if (raw === undefined) return rejection('missing_credentials', method === 'jwt' ? 'no token (Authorization: Bearer …)' : 'no SAS token (Authorization: SharedAccessSignature …)');
        const token = method === 'jwt' ? stripScheme(raw.trim(), 'Bearer') : raw.trim();
        return id === undefined ? { method, token } : { method, id, token };
      }
      case 'webhook': {
        const signature = text(f.signature, 'the signature');
        const timestamp = text(f.timestamp, 'the timestamp');
        if (isRejection(signature)) return signature;
        if (isRejection(timestamp)) return timestamp;
        if (signature === undefined) return rejection('missing_credentials', 'no webhook signature');
        if (id === undefined) return rejection('missing_credentials', 'no device id for the webhook sender');
        if (!bytes) return rejection('malformed', 'the body was parsed before this node: tick "Do not parse request body" on the http-in node');
        if (this.settings.webhookContent.includes('{timestamp}') && timestamp === undefined) return rejection('missing_credentials', 'no webhook timestamp');
        const content = webhookContent(this.settings.webhookContent, timestamp, bytes);
        return timestamp === undefined ? { method, id, signature, content } : { method, id, signature, content, timestamp };
      }
      case 'x509': {
        if (!input.certificate) return rejection('missing_credentials', 'no client certificate: the request did not come over TLS with one (https with requestCert)');
        return id === undefined ? { method, chain: input.certificate } : { method, id, chain: input.certificate };
      }
    }
  }

  private afterVerdict(verdict: Verdict, input: AuthInput, bytes: Buffer | undefined, now: number): AuthOutcome | Promise<AuthOutcome> {
    if (!verdict.ok) return rejection(verdict.code, verdict.message, verdict.id, verdict.retryAfterMs);
    const device = verdict.device;
    if (device.method === 'jwt' && input.brokerMark === undefined) {
      const unbound = this.bodyBinding(device, verdict.replay !== undefined, bytes);
      if (unbound) return unbound;
    }
    if (this.shared) return this.checkShared(device, verdict.replay, input, bytes, device.method ?? 'unknown', now);
    if (verdict.replay) {
      const answer = this.replays.check(verdict.replay.key, verdict.replay.until, now);
      if (answer === 'replayed') return rejection('replayed', 'this nonce, token id or signature was used before', device.id);
      if (answer === 'full') return rejection('replay_cache_full', 'the replay cache is full: too many signed messages within the time window', device.id);
    }
    const limited = this.limit(device.id, now);
    if (limited) return limited;
    return this.accept(device, input, bytes, device.method ?? 'unknown', now);
  }

  /**
   * A JWT that comes with a message must not be reusable with another body: it carries a `jti`
   * (accepted once), or a body hash `bh` that matches the bytes sent (or both).
   */
  private bodyBinding(device: DeviceIdentity, hasJti: boolean, bytes: Buffer | undefined): Rejection | undefined {
    const bh = device.claims?.bh;
    if (bh !== undefined) {
      if (typeof bh !== 'string') return rejection('malformed', 'bh must be the base64url SHA-256 of the body', device.id);
      if (!bytes) return rejection('malformed', 'the body was parsed before this node: bh is the hash of the bytes as sent (tick "Do not parse request body" on the http-in node)', device.id);
      if (sha256(bytes).toString('base64url') !== bh) return rejection('wrong_body', 'the body is not the one the token was signed for (bh)', device.id);
    }
    if (this.settings.requireJti && !hasJti) return rejection('unbound_token', 'the token has no jti, and this endpoint accepts each token once', device.id);
    if (!hasJti && bh === undefined) return rejection('unbound_token', 'the token has neither a jti nor a body hash (bh): it could be replayed with any body', device.id);
    return undefined;
  }

  private limit(key: string, now: number): Rejection | undefined {
    if (!this.rates) return undefined;
    return this.limited(key, this.rates.take(key, now));
  }

  private limited(key: string, waitMs: number): Rejection | undefined {
    if (waitMs === 0) return undefined;
    return rejection('rate_limited', `more than ${this.settings.rate?.perSecond}/s`, key, waitMs);
  }

  /** The replay and rate checks in the shared state (one round trip), then on as alone. */
  private checkShared(device: DeviceIdentity, replay: { key: string; until: number } | undefined, input: AuthInput, bytes: Buffer | undefined, method: string, now: number): AuthOutcome | Promise<AuthOutcome> {
    const takeToken = this.settings.rate !== undefined;
    if (!replay && !takeToken) return this.accept(device, input, bytes, method, now);
    return (this.shared as SharedChecks).check(device.id, replay, takeToken, now).then(
      (answer) => {
        if (answer.replayed) return rejection('replayed', 'this nonce, token id or signature was used before', device.id);
        return this.limited(device.id, answer.waitMs) ?? this.accept(device, input, bytes, method, now);
      },
      (err: Error) => ({ ...rejection('shared_state_unavailable', `the shared state (Redis) did not answer: ${err.message}`, device.id), retryAfterSeconds: SHARED_STATE_RETRY_S }),
    );
  }

  private accept(device: DeviceIdentity, input: AuthInput, bytes: Buffer | undefined, method: string, now: number): AuthOutcome {
    const payload = this.parsed(input, bytes);
    if (isRejection(payload)) return { ...payload, id: device.id };
    if (isRecord(payload)) {
      const allowed = this.settings.allowedFields;
      if (allowed.length > 0) for (const key of Object.keys(payload)) if (!allowed.includes(key)) delete payload[key];
      // Anonymous senders have no id of their own to scope with: their ids are the flow's to check.
      if (device.method !== 'anonymous') for (const field of this.settings.scopedFields) scopeField(payload, field, device.id);
    }
    const time = this.timeOf(payload, now);
    if (isRejection(time)) return { ...time, id: device.id };
    if (!this.settings.gateway) return { ok: true, device, payload, time };
    return this.sensors(device, payload, method, time, now);
  }

  /** The reading's own time, else `now`; a time field that is not a time refuses the reading. */
  private timeOf(reading: unknown, now: number): number | Rejection {
    const field = this.settings.timeField;
    if (!field || !isRecord(reading) || reading[field] === undefined) return now;
    const time = readingTime(reading[field]);
    if (Number.isNaN(time)) return rejection('bad_timestamp', `${field} ${JSON.stringify(reading[field])?.slice(0, 64)} is not a time (ms or s since the epoch, or ISO 8601 with a zone)`);
    return time;
  }

  private parsed(input: AuthInput, bytes: Buffer | undefined): unknown {
    const mode = this.settings.parse;
    const body = input.body;
    if (mode === 'raw' || !bytes || !(Buffer.isBuffer(body) || typeof body === 'string' || body instanceof Uint8Array)) return body;
    const type = input.http?.contentType?.toLowerCase() ?? '';
    if (mode === 'json' || type.includes('json') || (type === '' && looksLikeJson(bytes))) {
      try {
        return parseJsonWithin(bytes, { maxBytes: Infinity, ...this.settings.limits });
      } catch (err) {
        if (err instanceof LimitError) return rejection(err.code, err.message);
        return rejection('malformed', `the body is not valid JSON: ${(err as Error).message}`);
      }
    }
    if (type.startsWith('application/x-www-form-urlencoded')) {
      const form = [...new URLSearchParams(bytes.toString('utf8'))];
      if (form.length > this.settings.limits.maxKeys) return rejection('too_many_keys', `the form holds more than ${this.settings.limits.maxKeys} fields`);
      return Object.fromEntries(form);
    }
    if (type.startsWith('text/') || (type === '' && isUtf8Text(bytes))) return bytes.toString('utf8');
    return bytes;
  }

  /**
   * Checks each device a gateway's (or an integration's) message names: the ones not registered
   * under the sender (or with a bad time) are rejected one by one, the rest go on with their
   * registered ids. A message that is one reading (an object naming a device, not a batch) is a
   * batch of one.
   */
  private sensors(gateway: DeviceIdentity, payload: unknown, method: string, time: number, now: number): AuthOutcome {
    const { batchPath, sensorField, scoped } = this.settings.gateway as NonNullable<AuthSettings['gateway']>;
    const container = isRecord(payload) && batchPath ? payload : undefined;
    const inside = container?.[batchPath];
    const single = isRecord(payload) && !Array.isArray(inside) && payload[sensorField] !== undefined;
    const batch = single ? [payload] : Array.isArray(payload) ? payload : inside;
    if (!Array.isArray(batch) || batch.length === 0) {
      return rejection('malformed', `a gateway batch is an array of readings${batchPath ? `, or an object with one in ${batchPath}` : ''}, or one reading naming its device in ${sensorField}`, gateway.id);
    }
    const sensors: SensorReading[] = [];
    const rejectedSensors: SensorRejection[] = [];
    batch.forEach((item: unknown, index) => {
      const named = isRecord(item) ? item[sensorField] : undefined;
      if (typeof named !== 'string' || named === '') {
        rejectedSensors.push({ code: 'malformed', message: `reading ${index} names no device (${sensorField})`, item, index });
        return;
      }
      const sensorId = scoped ? `${gateway.id}:${named}` : named;
      const verdict = (this.registry as DeviceRegistryService).sensor(gateway.id, sensorId, method);
      if (!verdict.ok) {
        rejectedSensors.push({ code: verdict.code, message: verdict.message, item, index });
        return;
      }
      const at = this.timeOf(item, now);
      if (isRejection(at)) {
        rejectedSensors.push({ code: at.code, message: `reading ${index}: ${at.message}`, item, index });
        return;
      }
      // The reading carries the device's registered id from here on, never the sender's name for it.
      (item as Record<string, unknown>)[sensorField] = sensorId;
      sensors.push({ device: verdict.device, item, index, time: at });
    });
    if (sensors.length === 0) {
      const first = rejectedSensors[0];
      const code = first.code === 'malformed' || first.code === 'bad_timestamp' ? first.code : 'not_under_gateway';
      return rejection(code, `no reading names a device of ${gateway.id}: ${first.message}`, gateway.id);
    }
    if (single) return { ok: true, device: gateway, payload, time, sensors, rejectedSensors };
    const accepted = sensors.map((s) => s.item);
    const filtered = container ? { ...container, [batchPath]: accepted } : accepted;
    return { ok: true, device: gateway, payload: filtered, time, sensors, rejectedSensors };
  }
}

/** An id the sender chose, made its own: `<sender>:<id>`. Absent or non-scalar values stay as they are. */
function scopeField(payload: Record<string, unknown>, field: string, sender: string): void {
  const value = payload[field];
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) payload[field] = `${sender}:${value}`;
}

function detectMode(input: AuthInput, accepted: ReadonlySet<AuthMethod>): Exclude<AuthMode, 'auto'> | Rejection {
  if (input.brokerMark !== undefined) return 'broker';
  // A client certificate is a property of the connection: it speaks for the request when this endpoint takes certificates.
  if (input.certificate && accepted.has('x509')) return 'x509';
  const f = input.fields;
  const token = typeof f.token === 'string' ? f.token.trim() : undefined;
  if (token?.startsWith('SharedAccessSignature ')) return 'sas';
  if (token !== undefined) {
    const bare = stripScheme(token, 'Bearer');
    return JWT_SHAPE.test(bare) ? 'jwt' : 'apikey';
  }
  if (f.signature !== undefined && f.nonce !== undefined && f.timestamp !== undefined) return 'hmac';
  if (f.apiKey !== undefined && f.apiKey !== '') return 'apikey';
  return rejection('missing_credentials', 'the message carries no credentials (client certificate, API key, HMAC signature, SAS token, JWT) and did not come from an iot-mqtt-broker node');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}
