/**
 * A Node-RED message to bytes and back, for storing. JSON when the message is plain data (the
 * common case, and the fastest both ways); V8's structured serialisation when it holds Buffers
 * (binary payloads from MQTT or TCP), BigInts or cycles, so those come back as they went in.
 *
 * What cannot be stored is left out: the HTTP request and response objects (`req`, `res`: live
 * sockets) and the delivery token of another buffer (it is settled when this buffer accepts).
 */
import type { NodeMessage } from 'node-red';
import { deserialize, serialize } from 'node:v8';

const JSON_FORMAT = 0x4a; // 'J'
const V8_FORMAT = 0x56; // 'V'
const BUFFER_IN_JSON = '{"type":"Buffer","data":[';

export class EncodingError extends Error {}

export function encodeMessage(msg: NodeMessage): Buffer {
  const { req, res, _delivery, redelivered, ...stored } = msg as NodeMessage & Record<string, unknown>;
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
  const out = Buffer.allocUnsafe(1 + Buffer.byteLength(text));
  out[0] = JSON_FORMAT;
  out.write(text, 1, 'utf8');
  return out;
}

export function decodeMessage(body: Buffer): NodeMessage {
  if (body[0] === JSON_FORMAT) return JSON.parse(body.toString('utf8', 1)) as NodeMessage;
  if (body[0] === V8_FORMAT) return deserialize(body.subarray(1)) as NodeMessage;
  throw new EncodingError(`unknown message format 0x${(body[0] ?? 0).toString(16)}`);
}

function withV8(value: object): Buffer | undefined {
  try {
    const bytes = serialize(value);
    const out = Buffer.allocUnsafe(1 + bytes.length);
    out[0] = V8_FORMAT;
    bytes.copy(out, 1);
    return out;
  } catch {
    return undefined;
  }
}

function unencodable(): never {
  throw new EncodingError('the message cannot be stored: it holds values that are neither JSON nor structured-clonable (functions, sockets)');
}
