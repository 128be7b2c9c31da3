/**
 * A Node-RED message to bytes and back, for storing. JSON when the message is plain data (the
 * common case, and the fastest both ways); V8's structured serialisation when it holds Buffers
 * (binary payloads from MQTT or TCP), BigInts or cycles, so those come back as they went in.
 * The first byte tells them apart: a JSON object starts with "{", V8's format with 0xFF.
 *
 * What cannot be stored is left out: the HTTP request and response objects (`req`, `res`: live
 * sockets), the delivery token of another buffer (it is settled when this buffer accepts) and
 * the redelivery count (this buffer sets its own).
 *
 * What cannot be routed is never stored: Node-RED clones a message (recursively) for every node
 * past the first on an output and for every Complete and Catch node, so a property nested a few
 * thousand levels deep overflows the stack wherever it goes. `shapeProblem` finds it before the
 * message is accepted; `readStored` finds it again when a message stored by an older version is
 * read back for delivery.
 */
import type { NodeMessage } from 'node-red';
import { deserialize, serialize } from 'node:v8';
import { checkShape, type LimitCode, type ShapeLimits } from '../shared/json-limits';
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

/** Properties of a message that are neither stored nor checked: live HTTP objects, the token. */
const NOT_STORED = new Set(['req', 'res', '_delivery']);

export interface ShapeProblem {
  code: LimitCode;
  /** What is wrong, naming the properties: "msg.payload: the value nests more than 32 levels deep". */
  message: string;
  /** The top-level properties that exceed the limits. */
  properties: string[];
}

/**
 * The properties of a message that nest deeper or hold more keys and items than the limits allow
 * (each property is measured alone, as a parsed body is), or undefined when it may be routed.
 */
export function shapeProblem(msg: NodeMessage, limits: ShapeLimits): ShapeProblem | undefined {
  let found: ShapeProblem | undefined;
  const all = msg as Record<string, unknown>;
  for (const property in all) {
    const value = all[property];
    if (value === null || typeof value !== 'object' || NOT_STORED.has(property)) continue;
    const problem = checkShape(value, limits);
    if (!problem) continue;
    found ??= { code: problem.code, message: '', properties: [] };
    found.properties.push(property);
    found.message += `${found.message ? '; ' : ''}msg.${property}: ${problem.message}`;
  }
  return found;
}

export type StoredRead = { msg: NodeMessage; problem?: undefined } | { msg?: undefined; problem: { code: string; message: string } };

/** A stored message decoded, unless it cannot be decoded or routed (stored by an older version). */
export function readStored(body: Buffer, limits: ShapeLimits): StoredRead {
  let msg: NodeMessage;
  try {
    msg = decodeMessage(body);
  } catch (err) {
    return { problem: { code: 'unreadable', message: `the stored message cannot be read: ${(err as Error).message}` } };
  }
  const shape = shapeProblem(msg, limits);
  return shape ? { problem: { code: shape.code, message: `${shape.message}: it cannot be routed` } } : { msg };
}

/** A stored message as it is kept: JSON as text, V8's format as bytes (for dead letters). */
export function storedContent(body: Buffer): string | Buffer {
  return body[0] === JSON_OBJECT ? body.toString() : body;
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
