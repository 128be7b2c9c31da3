/**
 * The registry service: finds the device a credential claims to be, refuses locked, unknown and
 * revoked devices, runs the method's check with the device's key material, and answers with the
 * device's identity or a coded rejection. It is the only place that touches key material.
 *
 * Order of checks: the credential's shape (malformed), lockout, the device (unknown: the same
 * hashing work is done against a dummy key, so timing does not tell unknown ids from bad
 * signatures), the method, the cryptographic check, then revocation, so that only a holder of a
 * valid credential learns that its device is revoked.
 */
import { randomBytes } from 'node:crypto';
import type { DeviceIdentity } from '../shared/device';
import type { AuthMethod, DeviceRegistryService, DeviceView, Presented, RejectCode, Verdict, VerifyPolicy } from '../shared/device-registry-api';
import { hmac, safeEqual, type Check } from './checks';
import { canonicalString, checkHmac, hmacShape, type HmacParts } from './hmac';
import { checkJwt, parseJwt, type JwtParts } from './jwt';
import { Lockout, type LockoutPolicy } from './lockout';
import { sha256 } from '../shared/digest';
import { isDeviceId, methodAllowed, type DeviceRecord } from './records';
import { checkSas, parseSas, type SasToken } from './sas';
import type { DeviceStore } from './stores';
import { checkWebhook, defaultWebhookPolicy, webhookSignature } from './webhook';

const API_KEY_LIMIT = 512;

type Failure = Extract<Verdict, { ok: false }>;

function reject(code: RejectCode, message: string, id?: string): Failure {
  return id === undefined ? { ok: false, code, message } : { ok: false, code, message, id };
}

/** What identify() learned: the device id, and for some methods the parsed credential. */
interface Claim {
  id: string;
  record?: DeviceRecord;
  jwt?: JwtParts;
  sas?: SasToken;
  signature?: Buffer;
  hmac?: HmacParts;
}

export class DeviceRegistry implements DeviceRegistryService {
  private store: DeviceStore | undefined;
  private problem: string | undefined;
  /** Set while something the registry must not do without (its revocation list) is unreadable. */
  private blocked: string | undefined;
  private revoked: ReadonlySet<string> = new Set();
  private readonly listeners = new Set<() => void>();
  private readonly lockout: Lockout;
  private readonly dummyKey = randomBytes(32);
  private readonly dummyHash = sha256(randomBytes(32));

  constructor(lockout: LockoutPolicy) {
    this.lockout = new Lockout(lockout);
  }

  get state(): 'ready' | 'loading' | 'failed' {
    if (this.blocked !== undefined) return 'failed';
    return this.store ? 'ready' : this.problem !== undefined ? 'failed' : 'loading';
  }

  /** Why the last load failed (the previous devices, if any, stay in use), or why it is blocked. */
  get loadProblem(): string | undefined {
    return this.blocked ?? this.problem;
  }

  get size(): number | undefined {
    return this.store?.size;
  }

  get revokedCount(): number {
    return this.revoked.size;
  }

  lockedCount(now: number): number {
    return this.lockout.lockedCount(now);
  }

  use(store: DeviceStore): void {
    this.store = store;
    this.problem = undefined;
    this.changed();
  }

  loadFailed(problem: string): void {
    this.problem = problem;
  }

  setRevoked(ids: Iterable<string>): void {
    this.revoked = new Set(ids);
    this.blocked = undefined;
    this.changed();
  }

  /** Refuses every credential until setRevoked() is called again: fail closed. */
  revocationUnknown(problem: string): void {
    this.blocked = problem;
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private isRevoked(record: DeviceRecord): boolean {
    return !record.enabled || this.revoked.has(record.id);
  }

  device(id: string): DeviceView | undefined {
    const record = this.store?.get(id);
    if (!record) return undefined;
    const view: DeviceView = { id: record.id, enabled: !this.isRevoked(record) };
    if (record.gateway !== undefined) view.gateway = record.gateway;
    if (record.topics) view.topics = record.topics;
    if (record.meta) view.meta = record.meta;
    return view;
  }

  sensor(gatewayId: string, sensorId: string, method: string): Verdict {
    if (!this.store || this.blocked !== undefined) return reject('registry_unavailable', 'the device registry is not loaded', sensorId);
    const record = typeof sensorId === 'string' ? this.store.get(sensorId) : undefined;
    if (!record) return reject('unknown_device', `sensor ${String(sensorId).slice(0, 128)} is not registered`, typeof sensorId === 'string' ? sensorId : undefined);
    if (record.gateway !== gatewayId) return reject('not_under_gateway', `sensor ${sensorId} is not registered under gateway ${gatewayId}`, sensorId);
    if (this.isRevoked(record)) return reject('revoked', `sensor ${sensorId} is revoked`, sensorId);
    return { ok: true, device: this.identity(record, method, gatewayId) };
  }

  private identity(record: DeviceRecord, method: string, gateway?: string, claims?: Record<string, unknown>): DeviceIdentity & { method: string } {
    const device: DeviceIdentity & { method: string } = { id: record.id, method };
    if (gateway !== undefined) device.gateway = gateway;
    if (claims) device.claims = claims;
    if (record.meta) device.meta = record.meta;
    return device;
  }

  verify(presented: Presented, policy: VerifyPolicy, now: number): Verdict | Promise<Verdict> {
    const store = this.blocked === undefined ? this.store : undefined;
    if (!store) return reject('registry_unavailable', this.loadProblem ? `the device registry cannot be used: ${this.loadProblem}` : 'the device registry is still loading');
    const claim = this.identify(store, presented, policy);
    if ('ok' in claim) return claim;
    const { id } = claim;
    const lockedUntil = this.lockout.lockedUntil(id, now);
    if (lockedUntil > 0) return reject('locked_out', `${id} is locked for ${Math.ceil((lockedUntil - now) / 1000)} s after repeated failures`, id);
    const record = claim.record ?? store.get(id);
    if (!record) {
      this.equalizeTiming(presented, policy);
      return reject('unknown_device', `${id} is not registered`, id);
    }
    if (!methodAllowed(record, presented.method)) return reject('method_not_allowed', `${id} is not registered for ${presented.method}`, id);
    const checked = this.check(record, claim, presented, policy, now);
    return checked instanceof Promise ? checked.then((c) => this.finish(record, presented.method, c, now)) : this.finish(record, presented.method, checked, now);
  }

  /** The device a credential claims to be, or why it cannot be read. */
  private identify(store: DeviceStore, p: Presented, policy: VerifyPolicy): Claim | Failure {
    switch (p.method) {
      case 'apikey': {
        if (typeof p.key !== 'string' || p.key === '' || p.key.length > API_KEY_LIMIT) return reject('malformed', 'the API key is empty or too long');
        if (p.id !== undefined) return this.claimedId(p.id);
        const record = store.byApiKeyHash(sha256(p.key));
        return record ? { id: record.id, record } : reject('unknown_device', 'no device has this API key');
      }
      case 'hmac': {
        const parts = hmacShape(p);
        if ('ok' in parts) return reject(parts.code, parts.message);
        return isDeviceId(p.id) ? { id: p.id, hmac: parts } : this.claimedId(p.id);
      }
      case 'sas': {
        const token = parseSas(p.token);
        if (typeof token === 'string') return reject('malformed', token);
        if (p.id !== undefined && p.id !== token.id) return reject('wrong_subject', 'the token names another device than the one claimed', p.id);
        const claim = this.claimedId(token.id);
        return 'ok' in claim ? claim : { ...claim, sas: token };
      }
      case 'jwt': {
        const parts = parseJwt(p);
        if ('ok' in parts) return reject(parts.code, parts.message, p.id);
        const claim = this.claimedId(parts.id);
        return 'ok' in claim ? claim : { ...claim, jwt: parts };
      }
      case 'webhook': {
        const signature = webhookSignature(p, policy);
        if (typeof signature === 'string') return reject('malformed', signature);
        const claim = this.claimedId(p.id);
        return 'ok' in claim ? claim : { ...claim, signature };
      }
      default:
        return reject('malformed', `unknown method ${String((p as { method: unknown }).method).slice(0, 32)}`);
    }
  }

  private claimedId(id: unknown): Claim | Failure {
    return isDeviceId(id) ? { id } : reject('malformed', 'the device id is missing or not a device id');
  }

  private check(record: DeviceRecord, claim: Claim, p: Presented, policy: VerifyPolicy, now: number): Check | Promise<Check> {
    const secret = record.secret as Buffer;
    switch (p.method) {
      case 'apikey':
        return safeEqual(sha256(p.key), record.apiKeyHash as Buffer) ? { ok: true } : { ok: false, code: 'bad_key', message: 'the API key does not match' };
      case 'hmac':
        return checkHmac(secret, p, claim.hmac as HmacParts, policy, now);
      case 'sas':
        return checkSas(secret, claim.sas as SasToken, policy, now);
      case 'jwt':
        return checkJwt(record, claim.jwt as JwtParts, p.token, policy, now);
      case 'webhook':
        return checkWebhook(secret, claim.signature as Buffer, p, policy, now);
    }
  }

  private finish(record: DeviceRecord, method: AuthMethod, checked: Check, now: number): Verdict {
    if (!checked.ok) {
      this.lockout.failed(record.id, now);
      return reject(checked.code, checked.message, record.id);
    }
    if (this.isRevoked(record)) return reject('revoked', `${record.id} is revoked`, record.id);
    this.lockout.succeeded(record.id);
    const verdict: Verdict = { ok: true, device: this.identity(record, method, undefined, checked.claims) };
    if (checked.replay) verdict.replay = checked.replay;
    return verdict;
  }

  /** The hashing a known device would have cost, against a key nobody has. */
  private equalizeTiming(p: Presented, policy: VerifyPolicy): void {
    switch (p.method) {
      case 'apikey':
        safeEqual(sha256(p.key), this.dummyHash);
        break;
      case 'hmac':
        hmac('sha256', this.dummyKey, canonicalString(p));
        break;
      case 'webhook':
        hmac(defaultWebhookPolicy(policy).hash, this.dummyKey, p.content);
        break;
      default:
        hmac('sha256', this.dummyKey, p.token);
    }
  }
}
