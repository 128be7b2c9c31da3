/**
 * Limits on what the pack parses or stores: a body's size, how deeply it nests, how many keys and
 * items it holds. A message nested a few thousand levels deep is small (6 KB) but overflows the
 * stack wherever something walks it recursively (Node-RED clones every message it routes), so it
 * must be refused before it is accepted, not found when it is delivered.
 *
 * Both checks walk without recursion. The text check runs before JSON.parse and counts brackets
 * and commas outside strings (an upper bound of keys and items), so a hostile body costs one
 * linear scan and no allocation.
 */

export type LimitCode = 'too_large' | 'too_deep' | 'too_many_keys';

export interface ShapeLimits {
  /** Deepest nesting of objects and arrays (the top-level value is depth 1). */
  maxDepth: number;
  /** Object keys plus array items, counted over the whole value. */
  maxKeys: number;
}

export interface ParseLimits extends ShapeLimits {
  /** Bytes of the text. */
  maxBytes: number;
}

/** Sized for readings and batches of them: generous for devices, small for an attacker. */
export const DEFAULT_PARSE_LIMITS: Readonly<ParseLimits> = Object.freeze({ maxBytes: 1_048_576, maxDepth: 32, maxKeys: 10_000 });

export class LimitError extends Error {
  constructor(
    readonly code: LimitCode,
    message: string,
  ) {
    super(message);
    this.name = 'LimitError';
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * Parses JSON text within the limits. Throws a LimitError (too_large, too_deep, too_many_keys)
 * before parsing when the text exceeds them, or the SyntaxError of JSON.parse.
 */
export function parseJsonWithin(text: string | Buffer, limits: ParseLimits = DEFAULT_PARSE_LIMITS): unknown {
  const bytes = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (bytes > limits.maxBytes) throw new LimitError('too_large', `the body is ${bytes} bytes, more than ${limits.maxBytes}`);
  const source = typeof text === 'string' ? text : text.toString('utf8');
  const problem = scanText(source, limits);
  if (problem) throw problem;
  return JSON.parse(source);
}

/** The first limit a parsed value exceeds, or undefined. */
export function checkShape(value: unknown, limits: ShapeLimits = DEFAULT_PARSE_LIMITS): LimitError | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  // Depth-first with an explicit stack of [value, depth]; Buffers and typed arrays are leaves.
  const stack: Array<[object, number]> = [[value, 1]];
  const seen = new Set<object>();
  let keys = 0;
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [object, number];
    if (depth > limits.maxDepth) return tooDeep(limits.maxDepth);
    if (seen.has(current)) continue;
    seen.add(current);
    if (ArrayBuffer.isView(current)) continue;
    const children: unknown[] = Array.isArray(current) ? current : Object.values(current);
    keys += children.length;
    if (keys > limits.maxKeys) return tooMany(limits.maxKeys);
    for (const child of children) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return undefined;
}

function scanText(text: string, limits: ShapeLimits): LimitError | undefined {
  let depth = 0;
  let keys = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limits.maxDepth) return tooDeep(limits.maxDepth);
      keys++;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
    else if (c === COMMA && ++keys > limits.maxKeys) return tooMany(limits.maxKeys);
  }
  return undefined;
}

function tooDeep(max: number): LimitError {
  return new LimitError('too_deep', `the value nests more than ${max} levels deep`);
}

function tooMany(max: number): LimitError {
  return new LimitError('too_many_keys', `the value holds more than ${max} keys and items`);
}

/**
 * The first property of a Node-RED message that makes the message nest deeper than `maxDepth`
 * (the message itself is level 1); `req` and `res`, which Node-RED never copies, are skipped.
 * Node-RED copies a message for every Complete and Catch node that watches its sender and for every
 * wire but the first, recursively: a message a few thousand levels deep overflows the stack there,
 * wherever the sender calls send() or done(). A sink checks each message with this on its hot path:
 * no allocation, no key count, and recursion no deeper than `maxDepth` (a cycle counts as too deep).
 */
export function tooDeepProperty(msg: object, maxDepth: number = DEFAULT_PARSE_LIMITS.maxDepth): string | undefined {
  for (const key in msg) {
    if (key === 'req' || key === 'res') continue;
    const value = (msg as Record<string, unknown>)[key];
    if (value !== null && typeof value === 'object' && deeperThan(value, maxDepth - 1)) return key;
  }
  return undefined;
}

/**
 * Takes every property out of a message that nests too deep to be copied, so that the message
 * can still be passed on to say why it was refused; returns their names.
 */
export function removeTooDeep(msg: object, maxDepth: number = DEFAULT_PARSE_LIMITS.maxDepth): string[] {
  const removed: string[] = [];
  for (let key = tooDeepProperty(msg, maxDepth); key !== undefined; key = tooDeepProperty(msg, maxDepth)) {
    delete (msg as Record<string, unknown>)[key];
    removed.push(key);
  }
  return removed;
}

/**
 * For a node that must refuse a message too deep to be copied (too_deep): takes the deep
 * properties out and says which, or returns undefined when the message is fine.
 */
export function takeOutTooDeep(msg: object, maxDepth: number = DEFAULT_PARSE_LIMITS.maxDepth): string | undefined {
  if (tooDeepProperty(msg, maxDepth) === undefined) return undefined;
  const removed = removeTooDeep(msg, maxDepth).map((key) => `msg.${key}`);
  return `${removed.join(', ')} nests more than ${maxDepth} levels deep: taken out of the message, which Node-RED could not copy otherwise`;
}

/** Whether a value nests more than `levels` levels (the value itself is one). */
function deeperThan(value: object, levels: number): boolean {
  if (levels <= 0) return true;
  if (ArrayBuffer.isView(value)) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item !== null && typeof item === 'object' && deeperThan(item, levels - 1)) return true;
    }
    return false;
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (child !== null && typeof child === 'object' && deeperThan(child, levels - 1)) return true;
  }
  return false;
}
