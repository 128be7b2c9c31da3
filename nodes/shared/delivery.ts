/**
 * At-least-once delivery between iot-buffer and the nodes downstream of it.
 *
 * The buffer marks every message it delivers with `msg._delivery = { buffer, id }`: the id of the
 * buffer node, and the id of the delivery (one queued message, or one batch of them). The message
 * stays in the buffer until that delivery is settled:
 *
 *   - a sink of the pack (time series, Salesforce) settles it itself, with settleDelivery(), once
 *     its write succeeded (ok) or failed for good (not ok);
 *   - any other flow settles it by wiring a Complete node (ok) or a Catch node (not ok, the
 *     error says why) back into the buffer's input: the buffer knows its own deliveries.
 *
 * A delivery not settled in time is delivered again. Settling is idempotent: when a message fans
 * out to two sinks, the first settlement counts and later ones are ignored.
 *
 * The property travels with the message through any node that keeps the msg object, and survives
 * Node-RED's message cloning (it is plain data).
 */
import type { NodeAPI, NodeMessage } from 'node-red';

export const DELIVERY_PROPERTY = '_delivery';

export interface DeliveryToken {
  /** Id of the iot-buffer node that delivered the message. */
  buffer: string;
  /** The delivery to settle. */
  id: string;
}

export type Outcome =
  /** Done: remove it from the queue. */
  | { ok: true }
  /**
   * Not done. `retry: true`: deliver it again later (after `retryAfterMs` when the sink knows,
   * e.g. from a Retry-After header). `retry: false`: it will never succeed (a record Salesforce
   * rejects as invalid, say): move it to the dead-letter output with the reason.
   */
  | { ok: false; reason: string; retry: boolean; retryAfterMs?: number };

/** What a node that delivers messages offers for settling them (the buffer implements it). */
export interface DeliverySource {
  settleDelivery(id: string, outcome: Outcome): void;
}

/** The delivery token a message carries, if it came from a buffer. */
export function deliveryOf(msg: NodeMessage): DeliveryToken | undefined {
  const token = msg[DELIVERY_PROPERTY] as Partial<DeliveryToken> | undefined;
  if (token === null || typeof token !== 'object') return undefined;
  return typeof token.buffer === 'string' && typeof token.id === 'string' ? { buffer: token.buffer, id: token.id } : undefined;
}

/**
 * Settles the delivery a message carries. Returns false when the message came from no buffer, or
 * its buffer is gone (redeployed or removed: it will deliver the message again itself).
 */
export function settleDelivery(RED: NodeAPI, msg: NodeMessage, outcome: Outcome): boolean {
  const token = deliveryOf(msg);
  if (!token) return false;
  const source = RED.nodes.getNode(token.buffer) as Partial<DeliverySource> | null;
  if (!source || typeof source.settleDelivery !== 'function') return false;
  source.settleDelivery(token.id, outcome);
  return true;
}
