/**
 * Reading the values users map with typed inputs (msg, flow, global, JSONata, env, constants).
 * A msg path is parsed once when the node starts, not on every message.
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';

export interface PropertyReader {
  /** Whether read() answers with a Promise (JSONata, flow and global context). */
  readonly async: boolean;
  read(msg: NodeMessage): unknown;
}

export function propertyReader(RED: NodeAPI, node: Node, value: string, type: string): PropertyReader {
  switch (type) {
    case 'msg':
      return messagePathReader(RED, value);
    case 'jsonata': {
      const expression = RED.util.prepareJSONataExpression(value, node);
      return {
        async: true,
        read: (msg) =>
          new Promise((resolve, reject) => {
            RED.util.evaluateJSONataExpression(expression, msg, (err, result) => (err ? reject(err) : resolve(result)));
          }),
      };
    }
    case 'flow':
    case 'global':
      return {
        async: true,
        read: (msg) =>
          new Promise((resolve, reject) => {
            RED.util.evaluateNodeProperty(value, type, node, msg, (err, result) => (err ? reject(err) : resolve(result)));
          }),
      };
    default:
      return { async: false, read: (msg) => RED.util.evaluateNodeProperty(value, type, node, msg) };
  }
}

function messagePathReader(RED: NodeAPI, path: string): PropertyReader {
  const segments = RED.util.normalisePropertyExpression(path);
  // Nested msg references (msg.a[msg.b]) need the message to resolve: leave those to Node-RED.
  if (segments.some((s) => typeof s !== 'string' && typeof s !== 'number')) {
    return { async: false, read: (msg) => RED.util.getMessageProperty(msg, path) };
  }
  return {
    async: false,
    read: (msg) => {
      let value: unknown = msg;
      for (const segment of segments) {
        if (value === null || value === undefined) return undefined;
        value = (value as Record<string | number, unknown>)[segment];
      }
      return value;
    },
  };
}

/** Reads the property and hands it on: at once when the reader is synchronous, later otherwise. */
export function readProperty(reader: PropertyReader, msg: NodeMessage, next: (value: unknown) => void, failed: (err: Error) => void): void {
  if (!reader.async) {
    next(reader.read(msg));
    return;
  }
  (reader.read(msg) as Promise<unknown>).then(next, failed);
}
