/**
 * The registry service: finds the device a credential claims to be, refuses locked, unknown and
 * revoked devices, runs the method's check with the device's key material, and answers with the
 * device's identity or a coded rejection. It is the only place that touches key material.
 *
 * Order of checks: the credential's shape (malformed), lockout of that id from that source, the
 * device and whether it may use the method (when not, the same work is done against a dummy key
 * and the answer is as unspecific as a wrong key's, so neither the status nor the time tells
 * registered ids from unknown ones), the cryptographic check, then revocation, so that only a
 * holder of a valid credential learns that its device is revoked.
 *
 * Lockout counts failures per device id and source (an IP address, a broker client's address):
 * an attacker who fails on purpose locks out only itself, never the device that proves its key
 * from elsewhere, and a webhook integration that reports from its own addresses is never locked
 * by strangers. Unknown ids are counted as well, so a lock does not tell that an id exists.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { DeviceIdentity } from '../shared/device';
import type { AuthMethod, DeviceRegistryService, DeviceView, Presented, RejectCode, Verdict, VerifyPolicy } from '../shared/device-registry-api';
import { hmac, safeEqual, type Check } from './checks';
import { canonicalString, checkHmac, hmacShape, type HmacParts } from './hmac';
import { checkJwt, parseJwt, type JwtParts } from './jwt';
import { Lockout, type LockoutPolicy } from './lockout';
import { sha256 } from '../shared/digest';
import { isDeviceId, methodAllowed, normalFingerprint, secretOf, type DeviceRecord } from './records';
import { normalSerial } from './crl';
import { certificateRevoked, identifyCertificate, type CertificateClaim, type Fleet } from './x509';
import { checkSas, parseSas, type SasToken } from './sas';
import type { DeviceStore } from './stores';
import { checkWebhook, defaultWebhookPolicy, webhookSignature } from './webhook';

const API_KEY_LIMIT = 512;

type Failure = Extract<Verdict, { ok: false }>;

function reject(code: RejectCode, message: string, id?: string): Failure {
  return id === undefined ? { ok: false, code, message } : { ok: false, code, message, id };
}

/** The text fields each method's credential must have (the id is optional where the credential names the device). */
const TEXT_FIELDS: Record<string, readonly string[]> = {
  apikey: ['key'],
  hmac: ['id', 'timestamp', 'nonce', 'signature', 'scope', 'bodyDigest'],
  sas: ['token'],
  jwt: ['token'],
  webhook: ['id', 'signature'],
  x509: [],
};

/**
 * What is wrong with the shape of a presented credential, if anything: consumers build them from
 * what devices send, and the registry answers every shape with a verdict, never a throw.
 */
function shapeProblem(p: Presented): string | undefined {
  const fields = p !== null && typeof p === 'object' ? TEXT_FIELDS[(p as { method?: unknown }).method as string] : undefined;
  if (!fields) return `unknown method ${String((p as { method?: unknown } | null)?.method).slice(0, 32)}`;
  const given = p as unknown as Record<string, unknown>;
  const missing = fields.find((f) => typeof given[f] !== 'string');
  if (missing) return `${missing} must be text`;
  if (given.id !== undefined && typeof given.id !== 'string') return 'the device id must be text';
  if (p.method === 'webhook' && !Buffer.isBuffer(p.content)) return 'the signed content must be bytes';
  if (p.method === 'x509' && (!Array.isArray(p.chain) || !p.chain.every((c) => Buffer.isBuffer(c)))) return 'the certificate chain must be DER certificates';
  return undefined;
}

/** One lockout entry per device id and source; a credential without a known source shares the id's sourceless entry. */
function lockKey(id: string, source: string | undefined): string {
  return `${id}\n${source ?? ''}`;
}

/** Public-key algorithms and the kind of key that verifies them, for the dummy check of unknown ids. */
const DUMMY_KEY_KINDS: Record<string, () => KeyObject> = {
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  ES384: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
  RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
  PS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
  EdDSA: () => generateKeyPairSync('ed25519').publicKey,
  Ed25519: () => generateKeyPairSync('ed25519').publicKey,
};

/** What identify() learned: the device id, and for some methods the parsed credential. */
interface Claim {
  id: string;
  record?: DeviceRecord;
  jwt?: JwtParts;
  sas?: SasToken;
  signature?: Buffer;
  hmac?: HmacParts;
  certificate?: CertificateClaim;
}

export class DeviceRegistry implements DeviceRegistryService {
  private store: DeviceStore | undefined;
  private problem: string | undefined;
  /** Set while something the registry must not do without (its revocation list) is unreadable. */
  private blocked: string | undefined;
  private revoked: ReadonlySet<string> = new Set();
  private revokedSerials: ReadonlySet<string> = new Set();
  private revokedFingerprints: ReadonlySet<string> = new Set();
  private fleets: readonly Fleet[] = [];
  /** Set until the fleets a registry is configured with were read for the first time. */
  private fleetsLoading = false;
  private readonly listeners = new Set<() => void>();
  private readonly lockout: Lockout;
  private readonly dummyKey = randomBytes(32);
  private readonly dummyHash = sha256(randomBytes(32));
  /** Keys nobody holds, made when first needed, one per public-key algorithm. */
  private readonly dummyPublicKeys = new Map<string, KeyObject>();

  constructor(lockout: LockoutPolicy) {
    this.lockout = new Lockout(lockout);
  }

  get state(): 'ready' | 'loading' | 'failed' {
    if (this.blocked !== undefined) return 'failed';
    return this.store && !this.fleetsLoading ? 'ready' : this.problem !== undefined ? 'failed' : 'loading';
  }

  /** Why the last load failed (the previous devices, if any, stay in use), or why it is blocked. */
  get loadProblem(): string | undefined {
    return this.blocked ?? this.problem;
  }

  use(store: DeviceStore): void {
    this.store = store;
    this.problem = undefined;
    this.changed();
  }

  loadFailed(problem: string): void {
    this.problem = problem;
  }

  /** Revocation entries: device ids, `serial:<hex>` and `sha256:<fingerprint>` of certificates. */
  setRevoked(entries: Iterable<string>): void {
    const ids = new Set<string>();
    const serials = new Set<string>();
    const fingerprints = new Set<string>();
    for (const entry of entries) {
      if (/^serial:/i.test(entry)) serials.add(normalSerial(entry.slice(7)));
      else if (/^sha256:/i.test(entry) && normalFingerprint(entry)) fingerprints.add(normalFingerprint(entry) as string);
      else ids.add(entry);
    }
    this.revoked = ids;
    this.revokedSerials = serials;
    this.revokedFingerprints = fingerprints;
    this.blocked = undefined;
    this.changed();
  }

  /** Refuses every credential until useFleets() is first called: a certificate must not be judged without its fleet. */
  expectFleets(): void {
    this.fleetsLoading = true;
  }

  /** The fleets whose CAs issue device certificates, with their CRLs (a change re-checks connected devices). */
  useFleets(fleets: readonly Fleet[]): void {
    this.fleets = fleets;
    this.fleetsLoading = false;
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

  sign(id: string, content: Buffer, hash: 'sha256' | 'sha1' | 'sha512'): string | undefined {
    if (this.blocked !== undefined) return undefined;
    const record = typeof id === 'string' ? this.store?.get(id) : undefined;
    if (!record || this.isRevoked(record) || !methodAllowed(record, 'webhook')) return undefined;
    const secret = secretOf(record, 'webhook');
    return secret ? hmac(hash, secret, content).toString('hex') : undefined;
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

  verify(presented: Presented, policy: VerifyPolicy, now: number, source?: string): Verdict | Promise<Verdict> {
    const store = this.blocked === undefined && !this.fleetsLoading ? this.store : undefined;
    if (!store) return reject('registry_unavailable', this.loadProblem ? `the device registry cannot be used: ${this.loadProblem}` : 'the device registry is still loading');
    const claim = this.identify(store, presented, policy, now);
    if ('ok' in claim) return claim;
    const { id } = claim;
    const key = lockKey(id, source);
    const lockedUntil = this.lockout.lockedUntil(key, now);
    if (lockedUntil > 0) {
      const locked = reject('locked_out', `${id} is locked for ${Math.ceil((lockedUntil - now) / 1000)} s after repeated failures from ${source || 'an unknown source'}`, id);
      locked.retryAfterMs = lockedUntil - now;
      return locked;
    }
    const record = claim.record ?? store.get(id);
    if (!record || !methodAllowed(record, presented.method)) {
      const refused = () => {
        this.lockout.failed(key, now);
        return record ? reject('method_not_allowed', `${id} is not registered for ${presented.method}`, id) : reject('unknown_device', `${id} is not registered`, id);
      };
      const equalized = this.equalizeTiming(presented, policy, store.size === undefined);
      return equalized ? equalized.then(refused) : refused();
    }
    const checked = this.check(record, claim, presented, policy, now);
    return checked instanceof Promise ? checked.then((c) => this.finish(record, presented.method, c, now, key)) : this.finish(record, presented.method, checked, now, key);
  }

  /** The device a credential claims to be, or why it cannot be read. */
  private identify(store: DeviceStore, p: Presented, policy: VerifyPolicy, now: number): Claim | Failure {
    const shape = shapeProblem(p);
    if (shape) return reject('malformed', shape);
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
      case 'x509': {
        // What the handshake proved is checked first: a failure here cannot be a guess, so it does not count towards lockout.
        const lookup = { pinned: (fingerprint: string) => store.byCertificate(fingerprint)?.id, registered: (id: string) => store.get(id) !== undefined };
        const certificate = identifyCertificate(p.chain, this.fleets, lookup, now, policy.tokenSkewMs);
        if ('ok' in certificate) return reject(certificate.code, certificate.message, p.id);
        if (p.id !== undefined && p.id !== certificate.id) return reject('wrong_subject', `the certificate names ${certificate.id}, not ${p.id}`, p.id);
        return { id: certificate.id, certificate };
      }
      default:
        return reject('malformed', `unknown method ${String((p as { method: unknown }).method).slice(0, 32)}`);
    }
  }

  private claimedId(id: unknown): Claim | Failure {
    return isDeviceId(id) ? { id } : reject('malformed', 'the device id is missing or not a device id');
  }

  private check(record: DeviceRecord, claim: Claim, p: Presented, policy: VerifyPolicy, now: number): Check | Promise<Check> {
    switch (p.method) {
      case 'apikey':
        return safeEqual(sha256(p.key), record.apiKeyHash as Buffer) ? { ok: true } : { ok: false, code: 'bad_key', message: 'the API key does not match' };
      case 'hmac':
        return checkHmac(secretOf(record, 'hmac') as Buffer, p, claim.hmac as HmacParts, policy, now);
      case 'sas':
        return checkSas(secretOf(record, 'sas') as Buffer, claim.sas as SasToken, policy, now);
      case 'jwt':
        return checkJwt(record, claim.jwt as JwtParts, p.token, policy, now);
      case 'webhook':
        return checkWebhook(secretOf(record, 'webhook') as Buffer, claim.signature as Buffer, p, policy, now);
      case 'x509': {
        const certificate = claim.certificate as CertificateClaim;
        const revoked = certificateRevoked(certificate, this.revokedSerials, this.revokedFingerprints);
        if (revoked) return revoked;
        const claims: Record<string, unknown> = { subject: certificate.subject, serial: certificate.serial, fingerprint: certificate.fingerprint };
        if (certificate.fleet) claims.fleet = certificate.fleet.name;
        return { ok: true, claims };
      }
    }
  }

  private finish(record: DeviceRecord, method: AuthMethod, checked: Check, now: number, key: string): Verdict {
    if (!checked.ok) {
      this.lockout.failed(key, now);
      return reject(checked.code, checked.message, record.id);
    }
    if (this.isRevoked(record)) return reject('revoked', `${record.id} is revoked`, record.id);
    this.lockout.succeeded(key);
    const verdict: Verdict = { ok: true, device: this.identity(record, method, undefined, checked.claims) };
    if (checked.replay) verdict.replay = checked.replay;
    return verdict;
  }

  /**
   * The work a registered device's check would have cost, against a key nobody has: hashing for
   * shared secrets (and the key derivation of a derived registry), a signature verification with
   * a dummy public key for a JWT signed with one.
   */
  private equalizeTiming(p: Presented, policy: VerifyPolicy, derived: boolean): Promise<void> | undefined {
    if (derived) hmac('sha256', this.dummyKey, p.method);
    switch (p.method) {
      case 'apikey':
        safeEqual(sha256(p.key), this.dummyHash);
        return undefined;
      case 'hmac':
        hmac('sha256', this.dummyKey, canonicalString(p));
        return undefined;
      case 'webhook':
        hmac(defaultWebhookPolicy(policy).hash, this.dummyKey, p.content);
        return undefined;
      case 'jwt': {
        const alg = decodeProtectedHeader(p.token).alg as string;
        const make = DUMMY_KEY_KINDS[alg];
        if (!make) {
          hmac('sha256', this.dummyKey, p.token);
          return undefined;
        }
        let key = this.dummyPublicKeys.get(alg);
        if (!key) this.dummyPublicKeys.set(alg, (key = make()));
        return compactVerify(p.token, key, { algorithms: [alg] }).then(
          () => undefined,
          () => undefined,
        );
      }
      case 'x509':
        // A certificate's check costs no secret: nothing to equal.
        return undefined;
      default:
        hmac('sha256', this.dummyKey, p.token);
        return undefined;
    }
  }
}
