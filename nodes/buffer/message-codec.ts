/**
 * A Node-RED message to bytes and back, for storing. JSON when the message is plain data (the
 * common case, and the fastest both ways); V8's structured serialisation when it holds Buffers
 * (binary payloads from MQTT or TCP), BigInts or cycles, so those come back as they went in.
 * The first byte tells them apart: a JSON object starts with "{", V8's format with 0xFF.
 *
 * What cannot be stored is left out: the HTTP request and response objects (`req`, `res`: live
 * sockets), the delivery token of another buffer (it is settled when this buffer accepts) and
 * the redelivery count (this buffer sets its own).
 */
import type { NodeMessage } from 'node-red';
import { deserialize, serialize } from 'node:v8';
import type { EncodedMessage } from './store';

const JSON_OBJECT = 0x7b; // '{'
const V8_FORMAT = 0xff;
const BUFFER_IN_JSON = '{"type":"Buffer","data":[';

export class EncodingError extends Error {}

/** JSON text (written to the store as UTF-8 without a copy in between), or V8's bytes. */
export function encodeMessage(msg: NodeMessage): EncodedMessage {
  const stored = storable(msg);
  if (Buffer.isBuffer(stored.payload)) return withV8(stored) ?? unencodable();
  let text: string;
  try {
    text = JSON.stringify(stored);
  } catch {
    return withV8(stored) ?? unencodable();
  }
  if (text.includes(BUFFER_IN_JSON)) {
    const binary = withV8(stored);
    if (binary) return binary;
  }
  return text;
}

export function decodeMessage(body: Buffer): NodeMessage {
  if (body[0] === JSON_OBJECT) return JSON.parse(body.toString()) as NodeMessage;
  if (body[0] === V8_FORMAT) return deserialize(body) as NodeMessage;
  throw new EncodingError(`unknown message format 0x${(body[0] ?? 0).toString(16)}`);
}

/** The message without what is not stored (a shallow copy only when there is any). */
function storable(msg: NodeMessage): Record<string, unknown> {
  const all = msg as NodeMessage & Record<string, unknown>;
  if (all.req === undefined && all.res === undefined && all._delivery === undefined && all.redelivered === undefined) return all;
  const { req, res, _delivery, redelivered, ...stored } = all;
  return stored;
}

function withV8(value: object): Buffer | undefined {
  try {
    return serialize(value);
  } catch {
    return undefined;
  }
}

function unencodable(): never {
  throw new EncodingError('the message cannot be stored: it holds values that are neither JSON nor structured-clonable (functions, sockets)');
}
