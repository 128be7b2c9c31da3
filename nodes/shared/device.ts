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
 * none (a cycle or a BigInt anywhere in it), so that a later save cannot fail on it.
 */
export function savableDevice(device: unknown): unknown {
  try {
    const text = JSON.stringify(device);
    return text === undefined ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
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
