/**
 * The pack's message contract for identity: device-auth sets
 * `msg.device = { id, method, gateway?, claims?, meta? }`, and every node downstream keys its
 * state by `msg.device.id` when present, else by `msg.topic`.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { propertyReader, type PropertyReader } from './typed-property';

export interface DeviceIdentity {
  id: string;
  method?: string;
  gateway?: string;
  claims?: Record<string, unknown>;
  meta?: Record<string, unknown>;
}

/** msg.device when it has the contract's shape, else undefined. */
export function deviceOf(msg: NodeMessage): DeviceIdentity | undefined {
  const device = msg.device as Partial<DeviceIdentity> | undefined;
  return device !== null && typeof device === 'object' && typeof device.id === 'string' ? (device as DeviceIdentity) : undefined;
}

/**
 * The part of msg.device a node may keep in its saved state: a JSON copy, undefined when it has
 * none (a cycle or a BigInt anywhere in it), so that a later save cannot fail on it. `kept`, the
 * copy kept from the device's last reading, is returned as it is when the device still equals it:
 * a device's identity rarely changes between readings, and a JSON round trip per reading per node
 * was a good part of the Buffered flow's cost.
 */
export function savableDevice(device: unknown, kept?: unknown): unknown {
  if (kept !== undefined && sameJson(device, kept)) return kept;
  try {
    const text = JSON.stringify(device);
    return text === undefined ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Whether `value` is plain data equal to `json` (a value made by JSON.parse), so that its JSON
 * copy would equal `json`. Strict: anything JSON would change (a Date, NaN, an undefined property,
 * a class instance) counts as different, and is copied.
 */
function sameJson(value: unknown, json: unknown): boolean {
  if (value === json) return true;
  if (value === null || json === null || typeof value !== 'object' || typeof json !== 'object') return false;
  if (Array.isArray(value)) {
    if (!Array.isArray(json) || value.length !== json.length) return false;
    for (let i = 0; i < value.length; i++) if (!sameJson(value[i], json[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (Array.isArray(json) || (proto !== Object.prototype && proto !== null)) return false;
  const keys = Object.keys(value);
  const jsonObject = json as Record<string, unknown>;
  if (keys.length !== Object.keys(jsonObject).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(jsonObject, key) || !sameJson((value as Record<string, unknown>)[key], jsonObject[key])) return false;
  }
  return true;
}

/** The default state key of a message: its device id, else its topic, else ''. */
export function defaultKey(msg: NodeMessage): string {
  const device = deviceOf(msg);
  if (device) return device.id;
  const topic = msg.topic as unknown;
  return typeof topic === 'string' ? topic : typeof topic === 'number' ? String(topic) : '';
}

export interface KeyProblem {
  code: 'missing_key' | 'bad_key';
  message: string;
}

/**
 * How a node finds the state key of a message: by default its device id or topic, or the
 * property the user names (typed input type 'device' or an empty property means the default).
 */
export class StateKeyReader {
  private readonly reader: PropertyReader | undefined;

  constructor(RED: NodeAPI, node: Node, private readonly property: string | undefined, private readonly type: string | undefined) {
    this.reader = type && type !== 'device' && property ? propertyReader(RED, node, property, type) : undefined;
  }

  /** Finds the message's key and hands it to `next`, or the problem to `rejected`. */
  read(msg: NodeMessage, next: (key: string) => void, rejected: (problem: KeyProblem) => void): void {
    const settle = (key: string | KeyProblem) => (typeof key === 'string' ? next(key) : rejected(key));
    if (!this.reader) {
      const key = defaultKey(msg);
      // A reading kept under '' would join every other one without a key.
      if (key === '') rejected({ code: 'missing_key', message: 'no msg.device.id (text) and no msg.topic: no key to keep state by' });
      else next(key);
    } else if (!this.reader.async) {
      settle(this.keyFrom(this.reader.read(msg)));
    } else {
      (this.reader.read(msg) as Promise<unknown>).then(
        (value) => settle(this.keyFrom(value)),
        (err: Error) => rejected({ code: 'bad_key', message: err.message }),
      );
    }
  }

  /** The key when it can be had at once (resets and other control messages), else the default. */
  readNow(msg: NodeMessage): string {
    const key = this.reader && !this.reader.async ? this.keyFrom(this.reader.read(msg)) : defaultKey(msg);
    return typeof key === 'string' ? key : defaultKey(msg);
  }

  private keyFrom(value: unknown): string | KeyProblem {
    if (typeof value === 'string' && value !== '') return value;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    const where = `${this.type}.${this.property}`;
    if (value === undefined || value === null || value === '') return { code: 'missing_key', message: `${where} is empty: no key to keep state by` };
    return { code: 'bad_key', message: `${where} must be a string or a number` };
  }
}
