/**
 * The device-auth pipeline, free of Node-RED: what a message presents is turned into a
 * credential, the registry gives its verdict, and this node polices the rest (payload size,
 * replays, rates, the body's syntax, field allow-lists, the sensors of a gateway's batch).
 *
 * Order: size cap (and, for a body something already parsed, its depth and key count); credential
 * (missing, malformed); the registry's verdict (lockout, unknown, revoked, signature, time);
 * replay; per-device rate; body parsing within the depth and key limits (only bytes that verified
 * are parsed); allow-list; the reading's time; gateway sensors (each with its own time).
 */
import { STATUS_CODES } from 'node:http';
import type { DeviceIdentity } from '../shared/device';
import type { AuthMethod, DeviceRegistryService, Presented, RejectCode, Verdict, VerifyPolicy } from '../shared/device-registry-api';
import { sha256Hex } from '../shared/digest';
import { checkShape, LimitError, parseJsonWithin, type LimitCode, type ShapeLimits } from '../shared/json-limits';
import { isUtf8Text, looksLikeJson } from '../shared/payload';
import { readingTime } from '../shared/timestamp';
import { ReplayCache } from './replay-cache';
import { TokenBuckets } from './token-bucket';

export type AuthMode = 'anonymous' | AuthMethod | 'broker' | 'auto';

/** Why a message (or one reading of a batch) is refused: the registry's codes and this node's own. */
export type AuthCode = RejectCode | LimitCode | 'bad_timestamp' | 'internal';

export interface AuthSettings {
  mode: AuthMode;
  policy: VerifyPolicy;
  /** JWTs must carry a jti (each token is then accepted once). */
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
  gateway?: { batchPath: string; sensorField: string; split: boolean };
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
  /** The anonymous source (IP, client id, topic, or a property), when anonymous. */
  source?: string;
  /** What an iot-mqtt-broker node marked the message with, if anything. */
  brokerMark?: unknown;
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
    case 'revoked':
    case 'method_not_allowed':
    case 'not_under_gateway':
      return 403;
    case 'registry_unavailable':
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

function rejection(code: AuthCode, message: string, id?: string): Rejection {
  const out: Rejection = { ok: false, code, message, status: httpStatusOf(code) };
  if (id !== undefined) out.id = id;
  return out;
}

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
    const mode = this.settings.mode === 'auto' ? detectMode(input) : (this.settings.mode as Exclude<AuthMode, 'auto'>);
    if (isRejection(mode)) return mode;
    if (mode === 'anonymous') {
      const source = input.source || 'unknown';
      const limited = this.limit(`anonymous:${source}`, now);
      if (limited) return limited;
      return this.accept({ id: `anonymous:${source}`, method: 'anonymous' }, input, bytes, 'anonymous', now);
    }
    if (mode === 'broker') {
      const device = input.brokerMark === undefined ? undefined : this.brokerIdentity(input.brokerMark);
      if (!device) return rejection('not_authenticated', 'the message did not come from a live, authenticated connection of an iot-mqtt-broker node');
      return this.afterVerdict({ ok: true, device: { ...device, method: device.method ?? 'mqtt' } }, input, bytes, now);
    }
    if (!this.registry) return rejection('registry_unavailable', 'no device registry is configured');
    const presented = this.presented(mode, input, bytes);
    if (isRejection(presented)) return presented;
    const verdict = this.registry.verify(presented, this.settings.policy, now);
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
    }
  }

  private afterVerdict(verdict: Verdict, input: AuthInput, bytes: Buffer | undefined, now: number): AuthOutcome {
    if (!verdict.ok) return rejection(verdict.code, verdict.message, verdict.id);
    const device = verdict.device;
    if (verdict.replay) {
      const answer = this.replays.check(verdict.replay.key, verdict.replay.until, now);
      if (answer === 'replayed') return rejection('replayed', 'this nonce, token id or signature was used before', device.id);
      if (answer === 'full') return rejection('rate_limited', 'the replay cache is full: too many signed messages within the time window', device.id);
    } else if (this.settings.requireJti && device.method === 'jwt') {
      return rejection('malformed', 'the token has no jti, and this endpoint accepts each token once', device.id);
    }
    const limited = this.limit(device.id, now);
    if (limited) return limited;
    return this.accept(device, input, bytes, device.method ?? 'unknown', now);
  }

  private limit(key: string, now: number): Rejection | undefined {
    if (!this.rates) return undefined;
    const waitMs = this.rates.take(key, now);
    if (waitMs === 0) return undefined;
    const limited = rejection('rate_limited', `more than ${this.settings.rate?.perSecond}/s`, key);
    limited.retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    return limited;
  }

  private accept(device: DeviceIdentity, input: AuthInput, bytes: Buffer | undefined, method: string, now: number): AuthOutcome {
    const payload = this.parsed(input, bytes);
    if (isRejection(payload)) return { ...payload, id: device.id };
    const allowed = this.settings.allowedFields;
    if (allowed.length > 0 && isRecord(payload)) {
      for (const key of Object.keys(payload)) if (!allowed.includes(key)) delete payload[key];
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

  /** Checks each sensor of a gateway's batch; the ones not under it (or with a bad time) are rejected one by one. */
  private sensors(gateway: DeviceIdentity, payload: unknown, method: string, time: number, now: number): AuthOutcome {
    const { batchPath, sensorField } = this.settings.gateway as NonNullable<AuthSettings['gateway']>;
    const container = payload !== null && typeof payload === 'object' && !Array.isArray(payload) && batchPath ? (payload as Record<string, unknown>) : undefined;
    const batch = Array.isArray(payload) ? payload : container?.[batchPath];
    if (!Array.isArray(batch) || batch.length === 0) {
      return rejection('malformed', `a gateway batch is an array of readings${batchPath ? `, or an object with one in ${batchPath}` : ''}`, gateway.id);
    }
    const sensors: SensorReading[] = [];
    const rejectedSensors: SensorRejection[] = [];
    batch.forEach((item: unknown, index) => {
      const sensorId = item !== null && typeof item === 'object' ? (item as Record<string, unknown>)[sensorField] : undefined;
      if (typeof sensorId !== 'string') {
        rejectedSensors.push({ code: 'malformed', message: `reading ${index} names no sensor (${sensorField})`, item, index });
        return;
      }
      const verdict = (this.registry as DeviceRegistryService).sensor(gateway.id, sensorId, method);
      if (!verdict.ok) {
        rejectedSensors.push({ code: verdict.code, message: verdict.message, item, index });
        return;
      }
      const at = this.timeOf(item, now);
      if (isRejection(at)) rejectedSensors.push({ code: at.code, message: `reading ${index}: ${at.message}`, item, index });
      else sensors.push({ device: verdict.device, item, index, time: at });
    });
    if (sensors.length === 0) {
      const first = rejectedSensors[0];
      const code = first.code === 'malformed' || first.code === 'bad_timestamp' ? first.code : 'not_under_gateway';
      return rejection(code, `no reading of the batch is from a sensor of ${gateway.id}: ${first.message}`, gateway.id);
    }
    const accepted = sensors.map((s) => s.item);
    const filtered = container ? { ...container, [batchPath]: accepted } : accepted;
    return { ok: true, device: gateway, payload: filtered, time, sensors, rejectedSensors };
  }
}

function detectMode(input: AuthInput): Exclude<AuthMode, 'auto'> | Rejection {
  if (input.brokerMark !== undefined) return 'broker';
  const f = input.fields;
  const token = typeof f.token === 'string' ? f.token.trim() : undefined;
  if (token?.startsWith('SharedAccessSignature ')) return 'sas';
  if (token !== undefined) {
    const bare = stripScheme(token, 'Bearer');
    return JWT_SHAPE.test(bare) ? 'jwt' : 'apikey';
  }
  if (f.signature !== undefined && f.nonce !== undefined && f.timestamp !== undefined) return 'hmac';
  if (f.apiKey !== undefined && f.apiKey !== '') return 'apikey';
  return rejection('missing_credentials', 'the message carries no credentials (API key, HMAC signature, SAS token, JWT) and did not come from an iot-mqtt-broker node');
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
