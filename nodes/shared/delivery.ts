/**
 * At-least-once delivery, and honest receipts, between the pack's nodes.
 *
 * A *source* marks every message it hands on with `msg._delivery = { source, id }`: its own node
 * id and the id of the delivery. The source keeps what it handed on until that delivery is
 * settled. Three kinds of node are sources:
 *
 *   - iot-buffer, for every message (or batch) it delivers: it keeps it on disk until settled;
 *   - a front door that answers a sender (iot-mqtt-broker for QoS 1/2 publishes, iot-device-auth
 *     for HTTP requests) when it is set to answer only once the message is stored: it holds the
 *     PUBACK or the HTTP answer until the delivery is settled;
 *   - a node that splits one settled message into parts (a gateway's batch into readings) and
 *     settles the whole once every part is settled.
 *
 * Who settles:
 *   - iot-buffer settles the delivery a message carries once it has stored the message durably
 *     (ok), or refused it (not ok, retry: the sender may try again later);
 *   - a sink of the pack (time series, Salesforce) settles once its write succeeded (ok) or
 *     failed (not ok; retry or not);
 *   - a node that rejects a message for good (bad signature, malformed) settles it not ok,
 *     retry: false;
 *   - any other flow settles a buffer's delivery by wiring a Complete node (ok) or a Catch node
 *     (not ok, the error says why) back into the buffer's input.
 *
 * What a front door makes of it: ok is the receipt (PUBACK, HTTP 2xx); not ok without retry is
 * a final refusal (MQTT 3.1.1 has no negative PUBACK, so it is acknowledged and reported; HTTP
 * gets the refusal's status); not ok with retry means "not taken, send it again" (no PUBACK and
 * the connection is closed so that the device resends; HTTP 503 with Retry-After).
 *
 * A delivery not settled in time counts as failed and may be delivered again. Settling is
 * idempotent: when a message fans out to two settlers, the first settlement counts and later ones
 * are ignored. The property travels with the message through any node that keeps the msg object,
 * and survives Node-RED's message cloning (it is plain data).
 */
import type { NodeAPI, NodeMessage } from 'node-red';

export const DELIVERY_PROPERTY = '_delivery';

export interface DeliveryToken {
  /** Id of the node that handed the message on and waits for its settlement. */
  source: string;
  /** The delivery to settle. */
  id: string;
  /**
   * Set by a source that had nothing more to hand on right after this delivery: a sink that
   * gathers messages into batches may write now instead of waiting for more.
   */
  last?: boolean;
  /**
   * Set on the message's token by settleDelivery(): a node that settled a delivery with its own
   * outcome and then rejects the message (nodes/shared/coded-error.ts) does not settle it twice.
   */
  settled?: boolean;
}

export type Outcome =
  /** Done: remove it from the queue. */
  | { ok: true }
  /**
   * Not done. `retry: true`: deliver it again later (after `retryAfterMs` when the sink knows,
   * e.g. from a Retry-After header). `retry: false`: it will never succeed (a record Salesforce
   * rejects as invalid, say): move it to the dead-letter output with the reason. `code` is the
   * coded error of the node that refused it, when one did (a front door answers by it).
   */
  | { ok: false; reason: string; retry: boolean; retryAfterMs?: number; code?: string };

/** What a node that hands messages on offers for settling them. */
export interface DeliverySource {
  settleDelivery(id: string, outcome: Outcome): void;
  /**
   * A sink says how many unsettled messages from this source it can usefully hold at once (its
   * batch capacity), so that a source whose window is automatic hands on enough to fill the
   * sink's batches and no more than it can hold.
   */
  announceCapacity?(sink: string, messages: number): void;
}

/** The delivery token a message carries, if it came from a source. */
export function deliveryOf(msg: NodeMessage): DeliveryToken | undefined {
  const token = msg[DELIVERY_PROPERTY] as Partial<DeliveryToken> | undefined;
  if (token === null || typeof token !== 'object') return undefined;
  if (typeof token.source !== 'string' || typeof token.id !== 'string') return undefined;
  return token.last === true ? { source: token.source, id: token.id, last: true } : { source: token.source, id: token.id };
}

function sourceOf(RED: NodeAPI, token: DeliveryToken): Partial<DeliverySource> | undefined {
  const source = RED.nodes.getNode(token.source) as Partial<DeliverySource> | null;
  return source ?? undefined;
}

/**
 * Settles the delivery a message carries. Returns false when the message came from no source, or
 * its source is gone (redeployed or removed: a buffer delivers the message again itself).
 */
export function settleDelivery(RED: NodeAPI, msg: NodeMessage, outcome: Outcome): boolean {
  const token = deliveryOf(msg);
  if (!token) return false;
  (msg[DELIVERY_PROPERTY] as DeliveryToken).settled = true;
  return settleToken(RED, token, outcome);
}

/** Whether this message's delivery was settled already (through settleDelivery on this message object). */
export function isSettled(msg: NodeMessage): boolean {
  const token = msg[DELIVERY_PROPERTY] as Partial<DeliveryToken> | undefined;
  return token !== null && typeof token === 'object' && token.settled === true;
}

/** Settles a delivery by its token: for a source that took a message apart and settles the whole. */
export function settleToken(RED: NodeAPI, token: DeliveryToken, outcome: Outcome): boolean {
  const source = sourceOf(RED, token);
  if (!source || typeof source.settleDelivery !== 'function') return false;
  source.settleDelivery(token.id, outcome);
  return true;
}

/**
 * What a message wired back into its source says of its delivery: a Complete node's (no
 * msg.error) that it is done; a Catch node's that it failed, to be tried again unless
 * `msg.retry` is false (after `msg.retryAfter` ms when set).
 */
export function outcomeOfReturned(msg: NodeMessage): Outcome {
  const error = msg.error as { message?: unknown; source?: { type?: unknown; name?: unknown } } | undefined;
  if (error === undefined || error === null) return { ok: true };
  const source = error.source;
  const from = source && typeof source.type === 'string' ? `${source.type}${typeof source.name === 'string' && source.name ? ` "${source.name}"` : ''}: ` : '';
  // Node-RED puts the error's toString() in msg.error.message: "Error: ..." says nothing.
  const text = typeof error.message === 'string' ? error.message.replace(/^Error: /, '') : String(error);
  const reason = `${from}${text}`;
  const retryAfter = Number(msg.retryAfter);
  return { ok: false, reason, retry: msg.retry !== false, retryAfterMs: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined };
}

/**
 * A message a source handed on, wired back into the source's input (a Complete node after the
 * nodes that process it, a Catch node): settles that delivery as the message says, and returns
 * true. Any other message: false, nothing done.
 */
export function settleIfReturned(source: { id: string; settleDelivery(id: string, outcome: Outcome): void }, msg: NodeMessage): boolean {
  const token = deliveryOf(msg);
  if (token?.source !== source.id) return false;
  source.settleDelivery(token.id, outcomeOfReturned(msg));
  return true;
}

/** Tells the source of a message how many of its messages this sink can hold at once. */
export function announceCapacity(RED: NodeAPI, msg: NodeMessage, sink: string, messages: number): boolean {
  const token = deliveryOf(msg);
  if (!token) return false;
  const source = sourceOf(RED, token);
  if (!source || typeof source.announceCapacity !== 'function') return false;
  source.announceCapacity(sink, messages);
  return true;
}
