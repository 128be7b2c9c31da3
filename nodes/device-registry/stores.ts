/**
 * Where a registry finds a device: a map of records (the editor's list, a registry file), or
 * derived keys, where each device's keys are computed from a master secret and nothing is stored
 * per device, so a fleet of any size costs the same few bytes.
 */
import type { AuthMethod, SecretMethod } from '../shared/device-registry-api';
import { hmac } from './checks';
import { sha256 } from '../shared/digest';
import { isDeviceId, RecordError, type DeviceRecord } from './records';

export interface DeviceStore {
  /** How many devices are registered; undefined when they are derived, not listed. */
  readonly size: number | undefined;
  get(id: string): DeviceRecord | undefined;
  /** The device an API key belongs to, for endpoints where the key comes without an id. */
  byApiKeyHash(hash: Buffer): DeviceRecord | undefined;
  /** The device a client certificate (its SHA-256 fingerprint) is pinned on. */
  byCertificate(fingerprint: string): DeviceRecord | undefined;
}

/** Deeply frozen, so that a node downstream cannot change the registry through msg.device.meta. */
function freeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value as object)) freeze(inner);
  }
  return value;
}

export class RecordStore implements DeviceStore {
  private readonly byId = new Map<string, DeviceRecord>();
  /** null: several devices share the key, so it identifies none. */
  private byKey: Map<string, DeviceRecord | null> | undefined;
  private readonly byPin = new Map<string, DeviceRecord>();

  constructor(records: Iterable<DeviceRecord>) {
    for (const record of records) {
      if (this.byId.has(record.id)) throw new RecordError(`device ${record.id} is registered twice`);
      if (record.meta) freeze(record.meta);
      this.byId.set(record.id, record);
    }
    for (const record of this.byId.values()) {
      if (record.gateway !== undefined && !this.byId.has(record.gateway)) {
        throw new RecordError(`device ${record.id}: its gateway ${record.gateway} is not registered`);
      }
      for (const pin of record.certificates ?? []) {
        const other = this.byPin.get(pin);
        if (other) throw new RecordError(`device ${record.id}: certificate ${pin} is already pinned on ${other.id}`);
        this.byPin.set(pin, record);
      }
    }
  }

  byCertificate(fingerprint: string): DeviceRecord | undefined {
    return this.byPin.get(fingerprint);
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): DeviceRecord | undefined {
    return this.byId.get(id);
  }

  byApiKeyHash(hash: Buffer): DeviceRecord | undefined {
    if (!this.byKey) {
      // Built on first use: most registries never look a key up without an id.
      this.byKey = new Map();
      for (const record of this.byId.values()) {
        if (!record.apiKeyHash) continue;
        const hex = record.apiKeyHash.toString('hex');
        this.byKey.set(hex, this.byKey.has(hex) ? null : record);
      }
    }
    return this.byKey.get(hash.toString('hex')) ?? undefined;
  }
}

export interface DerivedOptions {
  /** Methods every device may use (derived keys serve API keys, HMAC, SAS, webhooks and HS256). */
  methods: readonly AuthMethod[];
  derivation: KeyDerivation;
  /** Only ids that match are devices: bounds the fleet (for example ^pump-[0-9]+$). */
  idPattern?: RegExp;
  /**
   * With a separator, `<gateway><separator><sensor>` is a sensor of that gateway, e.g. `gw-7:s-12`
   * with `:`. The gateway is everything before the last separator.
   */
  gatewaySeparator?: string;
  /** Metadata every device carries. */
  meta?: Record<string, unknown>;
}

/**
 * How derived keys are made.
 * - v1 (flows written before key derivation had a setting): one key for every method,
 *   HMAC-SHA256(master, id). The API key is that key, so whoever sees a device's API key (an MQTT
 *   password, a proxy log) can also sign HMAC requests, webhooks and HS256 tokens as it.
 * - v2: a key per method, HMAC-SHA256(master, "iot/v2/<method>/" + id): an API key gives away
 *   nothing else.
 */
export type KeyDerivation = 'v1' | 'v2';
export const KEY_DERIVATIONS: readonly KeyDerivation[] = ['v1', 'v2'];

/** A derived device's key for one method. */
export function derivedKey(master: Buffer, id: string, method: SecretMethod, derivation: KeyDerivation): Buffer {
  return hmac('sha256', master, derivation === 'v1' ? id : `iot/v2/${method}/${id}`);
}

/** The API key of a derived device: its key in base64url. */
export function derivedApiKey(key: Buffer): string {
  return key.toString('base64url');
}

/** A derived device: its keys are computed when something needs them, not to describe the device. */
class DerivedRecord implements DeviceRecord {
  readonly enabled = true;
  gateway?: string;
  meta?: Record<string, unknown>;

  constructor(
    readonly id: string,
    readonly methods: ReadonlySet<AuthMethod>,
    private readonly keys: DerivedStore,
  ) {}

  keyFor(method: SecretMethod): Buffer {
    return this.keys.keyOf(this.id, method);
  }

  get apiKeyHash(): Buffer | undefined {
    return this.methods.has('apikey') ? sha256(derivedApiKey(this.keyFor('apikey'))) : undefined;
  }
}

/** Keys of the devices (and methods) seen most recently: most devices report again soon. A fixed number, whatever the fleet. */
export const DERIVED_KEY_CACHE = 10_000;

export class DerivedStore implements DeviceStore {
  readonly size = undefined;
  private readonly methods: ReadonlySet<AuthMethod>;
  private readonly meta: Record<string, unknown> | undefined;
  private readonly recent = new Map<string, Buffer>();

  constructor(
    private readonly master: Buffer,
    private readonly options: DerivedOptions,
  ) {
    if (master.length < 32) throw new RecordError('the master secret needs at least 32 bytes');
    this.methods = new Set(options.methods);
    this.meta = options.meta ? freeze({ ...options.meta }) : undefined;
  }

  get(id: string): DeviceRecord | undefined {
    if (!isDeviceId(id) || (this.options.idPattern && !this.options.idPattern.test(id))) return undefined;
    const record = new DerivedRecord(id, this.methods, this);
    const separator = this.options.gatewaySeparator;
    if (separator) {
      const at = id.lastIndexOf(separator);
      if (at > 0) record.gateway = id.slice(0, at);
    }
    if (this.meta) record.meta = this.meta;
    return record;
  }

  byApiKeyHash(): undefined {
    return undefined;
  }

  /** Derived devices are named by their certificates (CN or subjectAltName), never pinned. */
  byCertificate(): undefined {
    return undefined;
  }

  /** A device's key for a method, from the cache of recent ones (least recently used dropped first) or derived. */
  keyOf(id: string, method: SecretMethod): Buffer {
    // With v1 every method has the same key: one cache entry serves them all.
    const slot = this.options.derivation === 'v1' ? id : `${method}\n${id}`;
    let key = this.recent.get(slot);
    if (key) {
      this.recent.delete(slot);
    } else {
      key = derivedKey(this.master, id, method, this.options.derivation);
      if (this.recent.size >= DERIVED_KEY_CACHE) this.recent.delete(this.recent.keys().next().value as string);
    }
    this.recent.set(slot, key);
    return key;
  }
}
