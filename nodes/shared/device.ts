/**
 * The pack's message contract for identity: device-auth sets
 * `msg.device = { id, method, gateway?, claims?, meta? }`, and every node downstream keys its
 * state by `msg.device.id` when present, else by `msg.topic`.
 */
import type { NodeMessage } from 'node-red';

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

/** The default state key of a message: its device id, else its topic, else ''. */
export function defaultKey(msg: NodeMessage): string {
  const device = deviceOf(msg);
  if (device) return device.id;
  const topic = msg.topic as unknown;
  return typeof topic === 'string' ? topic : typeof topic === 'number' ? String(topic) : '';
}
