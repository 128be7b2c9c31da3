/**
 * The pack's one way to reject a message: `msg.error = { code, message, node }` on the node's
 * last output, `done(err)` as well when the user asked for Catch-node handling, and the delivery
 * the message carries (nodes/shared/delivery.ts) settled as not done, so that its source (a
 * buffer, or a front door holding the sender's receipt) learns of it at once.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { isSettled, settleDelivery } from './delivery';
import { failing } from './node-status';

export interface CodedError {
  /** Machine-readable, stable: e.g. `not_numeric`, `bad_signature`. */
  code: string;
  message: string;
  /** Id of the node that rejected the message. */
  node: string;
}

export interface RejectOptions {
  /** How many outputs the node has; the error output is the last. */
  outputs: number;
  /** Also call done(err) so that Catch nodes see it. */
  catchErrors: boolean;
  /** The runtime, to reach the source of the delivery the message carries. */
  RED: NodeAPI;
}

/**
 * Codes that say "not now" rather than "never": the message itself is fine and may succeed when
 * sent again (a limit, an unreachable registry or store, a node not set up yet). Every other code
 * refuses the message for good.
 */
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  'rate_limited',
  'replay_cache_full',
  'locked_out',
  'registry_unavailable',
  'internal',
  'invalid_config',
  'not_published',
  'queue_full',
  'overloaded',
  'disk_full',
  'no_permission',
  'io_error',
  'store_locked',
  'backend_unavailable',
  'shared_state_unavailable',
  'closed',
]);

export function isTransient(code: string): boolean {
  return TRANSIENT_CODES.has(code);
}

/**
 * `details` adds what a node knows beyond code and message (a sink's upstream error code and
 * fields, say); it never overrides code, message or node.
 */
export function reject(
  node: Node,
  msg: NodeMessage,
  code: string,
  message: string,
  send: (msg: Array<NodeMessage | null>) => void,
  done: (err?: Error) => void,
  options: RejectOptions,
  details?: Record<string, unknown>,
): void {
  // First: a source that hears of the refusal only after the message went on could answer late.
  // A node that settled it with an outcome of its own (a sink's retry-after) has said it all.
  if (!isSettled(msg)) settleDelivery(options.RED, msg, { ok: false, retry: isTransient(code), code, reason: `${code}: ${message}` });
  const error: CodedError = { ...details, code, message, node: node.id };
  msg.error = error;
  const out: Array<NodeMessage | null> = new Array(options.outputs).fill(null);
  out[options.outputs - 1] = msg;
  send(out);
  if (options.catchErrors) done(Object.assign(new Error(`${code}: ${message}`), { code }));
  else done();
}

/**
 * A node whose settings cannot work: it says why once, in the log and red in its status, and
 * refuses every message with `invalid_config` (transient: the sender may try again once the
 * flow is fixed), so that nothing sent to it is lost silently. `namespace` is the node's message
 * catalogue, which holds `errors.invalid-config` (with __message__) and `status.invalid-config`.
 * `warnOnly`: the cause already said why as an error of its own (a connection not usable).
 */
export function refuseEveryInput(node: Node, namespace: string, message: string, options: RejectOptions, warnOnly = false): void {
  const logged = options.RED._(`${namespace}.errors.invalid-config`, { message });
  if (warnOnly) node.warn(logged);
  else node.error(logged);
  node.status(failing(options.RED._(`${namespace}.status.invalid-config`)));
  node.on('input', (msg: NodeMessage, send: (msg: Array<NodeMessage | null>) => void, done: (err?: Error) => void) => {
    reject(node, msg, 'invalid_config', message, send, done, options);
  });
}
