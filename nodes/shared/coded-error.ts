/**
 * The pack's one way to reject a message: `msg.error = { code, message, node }` on the node's
 * last output, and `done(err)` as well when the user asked for Catch-node handling.
 */
import type { Node, NodeMessage } from 'node-red';

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
  const error: CodedError = { ...details, code, message, node: node.id };
  msg.error = error;
  const out: Array<NodeMessage | null> = new Array(options.outputs).fill(null);
  out[options.outputs - 1] = msg;
  send(out);
  if (options.catchErrors) done(Object.assign(new Error(`${code}: ${message}`), { code }));
  else done();
}
