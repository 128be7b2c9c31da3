/**
 * Parse and shape limits (nodes/shared/json-limits.ts): deep, wide and large values are refused
 * with their code, without recursion, before anything walks them.
 */
import { describe, expect, it } from 'vitest';
import { checkShape, DEFAULT_PARSE_LIMITS, LimitError, parseJsonWithin, removeTooDeep, takeOutTooDeep, tooDeepProperty } from '../../nodes/shared/json-limits';

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof LimitError ? err.code : (err as Error).name;
  }
};

describe('parseJsonWithin', () => {
  it.each([
    ['a reading', '{"temperature":21.5,"battery":3.4}', undefined],
    ['32 levels', nested(32), undefined],
    ['33 levels', nested(33), 'too_deep'],
    ['3,000 levels (6 KB)', nested(3000), 'too_deep'],
    ['brackets inside strings do not count', JSON.stringify({ note: '['.repeat(500) }), undefined],
    ['escaped quotes do not end a string', JSON.stringify({ note: '\\"[[[[' + '['.repeat(100) }), undefined],
    ['10,000 items', JSON.stringify(new Array(9_999).fill(0)), undefined],
    ['10,001 items', JSON.stringify(new Array(10_001).fill(0)), 'too_many_keys'],
    ['not JSON', '{not json', 'SyntaxError'],
  ])('%s', (_name, text, code) => {
    expect(codeOf(() => parseJsonWithin(text))).toBe(code);
    expect(codeOf(() => parseJsonWithin(Buffer.from(text)))).toBe(code);
  });

  it('refuses a body over its size before reading it', () => {
    expect(codeOf(() => parseJsonWithin('"' + 'x'.repeat(100) + '"', { ...DEFAULT_PARSE_LIMITS, maxBytes: 50 }))).toBe('too_large');
  });

  it('returns what JSON.parse returns', () => {
    expect(parseJsonWithin('{"a":[1,{"b":null}]}')).toEqual({ a: [1, { b: null }] });
  });
});

describe('checkShape', () => {
  it('measures depth and keys of values without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(checkShape(deep)?.code).toBe('too_deep');
    expect(checkShape({ a: { b: { c: 1 } } }, { maxDepth: 3, maxKeys: 10 })).toBeUndefined();
    expect(checkShape({ a: { b: { c: {} } } }, { maxDepth: 3, maxKeys: 10 })?.code).toBe('too_deep');
    expect(checkShape(Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, i])), { maxDepth: 3, maxKeys: 10 })?.code).toBe('too_many_keys');
  });

  it('treats Buffers as leaves and survives cycles', () => {
    const cyclic: Record<string, unknown> = { payload: Buffer.alloc(100_000) };
    cyclic.self = cyclic;
    expect(checkShape(cyclic)).toBeUndefined();
    expect(checkShape(42)).toBeUndefined();
    expect(checkShape(null)).toBeUndefined();
  });
});

describe('tooDeepProperty and removeTooDeep: messages Node-RED could not copy', () => {
  const levels = (n: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < n; i++) value = { a: value };
    return value;
  };

  it('names the property that makes a message nest deeper than the limit (the message is level 1)', () => {
    expect(tooDeepProperty({ payload: levels(31) }, 32)).toBeUndefined();
    expect(tooDeepProperty({ payload: levels(32) }, 32)).toBe('payload');
    expect(tooDeepProperty({ payload: { v: 1 }, trace: [[levels(40)]] })).toBe('trace');
    // Node-RED never copies req and res; Buffers are leaves.
    expect(tooDeepProperty({ req: levels(100), res: levels(100), payload: Buffer.alloc(10) })).toBeUndefined();
  });

  it('counts a cycle as too deep, and never recurses past the limit (3,000 levels)', () => {
    const cyclic: Record<string, unknown> = { v: 1 };
    cyclic.self = cyclic;
    expect(tooDeepProperty({ payload: cyclic })).toBe('payload');
    expect(tooDeepProperty({ payload: levels(3000) })).toBe('payload');
  });

  it('takes every too-deep property out and says which', () => {
    const msg: Record<string, unknown> = { payload: levels(40), topic: 't', trace: levels(50), device: { id: 'd' } };
    expect(removeTooDeep(msg)).toEqual(['payload', 'trace']);
    expect(msg).toEqual({ topic: 't', device: { id: 'd' } });
  });
});

describe('takeOutTooDeep', () => {
  it('says what it took out of a message too deep to copy, and leaves a fine one alone', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    const msg: Record<string, unknown> = { payload: { v: 1 }, trace: deep };
    expect(takeOutTooDeep(msg)).toBe('msg.trace nests more than 32 levels deep: taken out of the message, which Node-RED could not copy otherwise');
    expect(msg).toEqual({ payload: { v: 1 } });
    expect(takeOutTooDeep(msg)).toBeUndefined();
  });
});
