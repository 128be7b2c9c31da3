/**
 * Fuzzing a node in a Node-RED runtime (node-red-node-test-helper) as real flows wire it: a Catch
 * and a Complete node scoped to it, every output to a helper node. Thousands of hostile messages
 * from a seeded generator (deep nesting, huge strings, wrong types, prototype-pollution keys, NaN
 * and Infinity, Buffers, BigInts, cycles) go in; the report says what went wrong:
 *
 * - a message never accounted for: done was not called (neither Complete nor Catch saw it);
 * - done called twice for one message;
 * - an error on an error output or at the Catch node without a code, with a code the node's help
 *   does not list, or with a generic one (internal, io_error) where nothing failed but the input;
 * - an unhandled rejection or uncaught exception in the process;
 * - Object.prototype polluted.
 *
 *   const report = await fuzzNode({ modules, flow, under: 'n', errorOutputs: ['errors'], codes, count: 10_000, seed: 1, message: (h) => ({ payload: h.value() }) });
 */
import type { NodeAPI, NodeMessage } from 'node-red';
import { Random } from '../../simulator/devices';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { coreNodes, helper } from './node-red';
import { watchProcessFailures } from './process-failures';
import { eventually, sleep } from './wait';

type FlowNode = { id: string; type: string; [property: string]: unknown };
type NodeModule = (RED: NodeAPI) => void;

/** Keys that walk into prototypes when code copies or merges objects carelessly. */
const POISON_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'toJSON', 'then'];
const PLAIN_KEYS = ['temperature', 'battery', 'value', 'device', 'id', 'timestamp', 'readings', 'sensor', 'alert', 'state', 'a', '', ' ', 'a.b', 'a[0]', 'é', '🔥', '$where', '\u0000'];

/** Hostile values from a seeded generator: the same seed gives the same values. */
export class Hostile {
  private readonly random: Random;

  constructor(seed: number) {
    this.random = new Random(seed);
  }

  chance(p: number): boolean {
    return this.random.chance(p);
  }

  int(low: number, high: number): number {
    return Math.floor(this.random.between(low, high + 1));
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(0, list.length - 1)];
  }

  number(): number {
    return this.pick([0, -0, 1, -1, 21.5, 99.9, 3.3, 1e308, -1e308, 5e-324, NaN, Infinity, -Infinity, 2 ** 53 + 1, Date.now(), Date.now() / 1000, 1e21, this.random.between(-1e6, 1e6)]);
  }

  string(): string {
    if (this.chance(0.001)) return 'x'.repeat(this.int(1, 3) * 1024 * 1024);
    if (this.chance(0.005)) return '9'.repeat(this.int(1000, 70_000));
    return this.pick([
      '',
      ' ',
      '21.5',
      '-0',
      '1e999',
      'NaN',
      'Infinity',
      'null',
      'true',
      '__proto__',
      'constructor',
      '\u0000\u0001',
      '\n\r\t',
      'a"b\\c',
      '🔥'.repeat(50),
      '{"a":1}',
      '[1,2,',
      '2026-03-01T12:00:00Z',
      '2026-13-45T99:00:00Z',
      'devices/+/#',
      '$SYS/broker',
      '${process.exit()}',
      '{{payload}}',
      'x'.repeat(this.int(1, 300)),
      String(this.number()),
    ]);
  }

  /** An object whose own keys include `__proto__` and friends, as JSON.parse makes them. */
  poisoned(depth: number): Record<string, unknown> {
    const target: Record<string, unknown> = {};
    const count = this.int(1, 4);
    for (let i = 0; i < count; i++) {
      const key = this.pick(POISON_KEYS);
      const value = this.chance(0.5) ? { polluted: 'yes', isAdmin: true, [this.pick(POISON_KEYS)]: { polluted: 'yes' } } : this.value(depth + 1);
      Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
    }
    for (let i = 0; i < this.int(0, 3); i++) target[this.pick(PLAIN_KEYS)] = this.value(depth + 1);
    return target;
  }

  /** `levels` objects or arrays each holding the next. */
  deep(levels: number): unknown {
    const top: Record<string, unknown> | unknown[] = this.chance(0.5) ? {} : [];
    let at: Record<string, unknown> | unknown[] = top;
    for (let i = 1; i < levels; i++) {
      const next: Record<string, unknown> | unknown[] = this.chance(0.5) ? {} : [];
      if (Array.isArray(at)) at.push(next);
      else at.temperature = next;
      at = next;
    }
    return top;
  }

  cyclic(): unknown {
    const value: Record<string, unknown> = { temperature: 21.5 };
    const kind = this.int(0, 2);
    if (kind === 0) value.self = value;
    else if (kind === 1) value.list = [1, value];
    else value.inner = { outer: value };
    return value;
  }

  wide(): unknown {
    return this.chance(0.5) ? Object.fromEntries(Array.from({ length: this.int(10_001, 20_000) }, (_, i) => [`k${i}`, i])) : Array.from({ length: this.int(10_001, 100_000) }, (_, i) => i);
  }

  special(): unknown {
    return this.pick([
      () => Buffer.alloc(this.int(0, 64), 0x41),
      () => Buffer.from('{"temperature":21.5}'),
      () => (this.chance(0.05) ? Buffer.alloc(2 * 1024 * 1024, 0x7b) : Buffer.from([0xff, 0xfe, 0x00])),
      () => new Date(),
      () => new Date(NaN),
      () => BigInt(this.int(0, 1e9)),
      () => new Uint8Array([1, 2, 3]),
      () => new Map([['temperature', 1]]),
      () => new Set([1, 2]),
      () => /a+$/,
      () => new Error('a message that is an error'),
      () => Symbol('s'),
      () => () => 'a function',
      () => Object.create(null) as Record<string, unknown>,
    ])();
  }

  /** Any value, as deep as `depth` allows, leaning to the shapes nodes expect. */
  value(depth = 0): unknown {
    const roll = this.random.next();
    if (depth > 4) return this.chance(0.5) ? this.number() : this.string();
    if (roll < 0.18) return this.number();
    if (roll < 0.3) return this.string();
    if (roll < 0.34) return this.pick([true, false, null, undefined]);
    if (roll < 0.44) return this.special();
    if (roll < 0.5) return this.poisoned(depth);
    // At most 1,000 levels: from about 3,000, Node-RED itself cannot carry a message (cloning it for
    // a Catch node or a second wire overflows the stack, in any node); the pack's edges refuse
    // bodies deeper than 32 while parsing them as text, where the fuzz of those nodes goes deeper.
    if (roll < 0.54) return this.deep(this.pick([33, 100, 1_000]));
    if (roll < 0.57) return this.cyclic();
    if (roll < 0.571) return this.wide();
    if (roll < 0.7) return Array.from({ length: this.int(0, 5) }, () => this.value(depth + 1));
    // An object of named readings, some of them wrong.
    const object: Record<string, unknown> = {};
    for (let i = 0; i < this.int(0, 5); i++) object[this.pick(PLAIN_KEYS)] = this.value(depth + 1);
    return object;
  }
}

/** A short description of a value's shape, for reports. */
export function shapeOf(value: unknown, depth = 0): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return `Buffer(${value.length})`;
  if (typeof value === 'string') return value.length > 40 ? `string(${value.length})` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'undefined') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value !== 'object') return typeof value;
  if (depth > 2) return Array.isArray(value) ? '[…]' : '{…}';
  if (Array.isArray(value)) return value.length > 5 ? `array(${value.length})` : `[${value.map((v) => shapeOf(v, depth + 1)).join(',')}]`;
  if (!(value.constructor === Object || Object.getPrototypeOf(value) === null)) return value.constructor?.name ?? 'object';
  const keys = Object.keys(value);
  if (keys.length > 6) return `object(${keys.length} keys)`;
  return `{${keys.map((k) => `${JSON.stringify(k)}:${shapeOf((value as Record<string, unknown>)[k], depth + 1)}`).join(',')}}`;
}

export interface FuzzOptions {
  /** The node modules to load (the Catch and Complete nodes are added). */
  modules: NodeModule[];
  /** The flow: the node under test, its config nodes, helper nodes on its outputs. */
  flow: FlowNode[];
  credentials?: Record<string, Record<string, string>>;
  /** The node under test. */
  under: string;
  /** Helper nodes that receive its error output. */
  errorOutputs: string[];
  /** Helper nodes on its other outputs. */
  outputs: string[];
  /** The error codes its help documents. */
  codes: readonly string[];
  count: number;
  seed: number;
  /** The message n, built from hostile values (its _msgid is set by the harness). */
  message(hostile: Hostile, n: number): Record<string, unknown>;
  /** How long to wait, without progress, for the last messages to be accounted for. */
  quietMs?: number;
  /** How long to keep watching once every message is accounted for (timers, state snapshots). */
  lingerMs?: number;
  /** Messages sent before the harness lets the event loop turn. */
  chunk?: number;
  /** Called once the flow is loaded, before the first message (to connect clients, wait for a port). */
  ready?(): Promise<void>;
  /** What is wrong with a message the node sent on one of `outputs`, if anything (a node's own promises). */
  judge?(output: string, msg: NodeMessage): string | undefined;
}

export interface FuzzReport {
  sent: number;
  /** Messages whose done was called (Complete or Catch). */
  accounted: number;
  /** Messages never accounted for, with their shape. */
  unaccounted: string[];
  doneTwice: string[];
  /** Errors without a code, with codes the help does not list, or generic ones, with the message's shape. */
  uncoded: string[];
  undocumented: string[];
  generic: string[];
  /** Unhandled rejections and uncaught exceptions. */
  crashes: string[];
  polluted: string[];
  /** What `judge` found wrong in messages sent on the outputs. */
  wrong: string[];
  /** How many errors of each code, and how many messages left on each output. */
  codes: Record<string, number>;
  outputs: Record<string, number>;
  /** The generic errors' messages, counted (what they hide). */
  genericMessages: Record<string, number>;
  /** How long sending took, and waiting for the last messages after it. */
  sendMs: number;
  settleMs: number;
}

/** For a fuzz test file: a Node-RED runtime with a user directory of its own, removed after the file. */
export function fuzzRuntime(name: string): void {
  let userDir = '';
  beforeAll(async () => {
    userDir = mkdtempSync(join(tmpdir(), `iot-fuzz-${name}-`));
    helper.settings({ userDir });
    await new Promise<void>((resolve) => helper.startServer(resolve));
  });
  afterAll(async () => {
    await helper.unload();
    await new Promise<void>((resolve) => helper.stopServer(resolve));
    rmSync(userDir, { recursive: true, force: true });
  });
}

/** Loads the flow, sends `count` hostile messages to the node under test, and reports. */
export async function fuzzNode(options: FuzzOptions): Promise<FuzzReport> {
  const flow: FlowNode[] = [
    ...options.flow,
    { id: 'fuzz.catch', type: 'catch', scope: [options.under], uncaught: false, wires: [['fuzz.caught']] },
    { id: 'fuzz.complete', type: 'complete', scope: [options.under], uncaught: false, wires: [['fuzz.completed']] },
    { id: 'fuzz.caught', type: 'helper' },
    { id: 'fuzz.completed', type: 'helper' },
  ];
  const failures = watchProcessFailures();
  const shapes = new Map<string, string>();
  const done = new Map<string, number>();
  const report: FuzzReport = { sent: 0, accounted: 0, unaccounted: [], doneTwice: [], uncoded: [], undocumented: [], generic: [], crashes: [], polluted: [], wrong: [], codes: {}, outputs: {}, genericMessages: {}, sendMs: 0, settleMs: 0 };
  const examples = (list: string[], line: string) => {
    if (list.length < 20) list.push(line);
  };
  const judgeError = (where: string, msg: NodeMessage) => {
    const error = (msg as { error?: { code?: unknown } }).error;
    const code = error?.code;
    const id = String(msg._msgid);
    const shape = `${where} ${id} ${shapes.get(id) ?? '(a message the node made)'}`;
    if (typeof code !== 'string' || code === '') return examples(report.uncoded, `${shape}: ${JSON.stringify(error)?.slice(0, 200)}`);
    report.codes[code] = (report.codes[code] ?? 0) + 1;
    if (!options.codes.includes(code)) examples(report.undocumented, `${shape}: ${code}`);
    if (code === 'internal' || code === 'io_error') {
      const message = `${code}: ${String((error as { message?: unknown }).message).slice(0, 100)}`;
      report.genericMessages[message] = (report.genericMessages[message] ?? 0) + 1;
      examples(report.generic, `${shape}: ${message}`);
    }
  };
  try {
    await helper.load([...options.modules, coreNodes.catch, coreNodes.complete], flow, options.credentials ?? {});
    const settle = (msg: NodeMessage) => {
      const id = String(msg._msgid);
      if (!shapes.has(id)) return;
      const times = (done.get(id) ?? 0) + 1;
      done.set(id, times);
      if (times === 2) examples(report.doneTwice, `${id} ${shapes.get(id)}`);
    };
    helper.getNode('fuzz.completed').on('input', settle);
    helper.getNode('fuzz.caught').on('input', (msg: NodeMessage) => {
      settle(msg);
      judgeError('caught', msg);
    });
    for (const id of options.outputs) {
      helper.getNode(id).on('input', (msg: NodeMessage) => {
        report.outputs[id] = (report.outputs[id] ?? 0) + 1;
        const wrong = options.judge?.(id, msg);
        if (wrong) examples(report.wrong, `${id} ${String(msg._msgid)} ${shapes.get(String(msg._msgid)) ?? '(a message the node made)'}: ${wrong}`);
      });
    }
    for (const id of options.errorOutputs) {
      helper.getNode(id).on('input', (msg: NodeMessage) => {
        report.outputs[id] = (report.outputs[id] ?? 0) + 1;
        judgeError(id, msg);
      });
    }
    await options.ready?.();
    const under = helper.getNode(options.under) as { receive(msg: NodeMessage): void };
    const hostile = new Hostile(options.seed);
    const started = Date.now();
    for (let n = 0; n < options.count; n++) {
      const id = `fuzz-${n}`;
      const msg = { ...options.message(hostile, n), _msgid: id };
      shapes.set(id, shapeOf(msg));
      report.sent++;
      try {
        under.receive(msg as NodeMessage);
      } catch (err) {
        examples(report.crashes, `receive threw for ${id} ${shapes.get(id)}: ${(err as Error).message}`);
      }
      if ((n + 1) % (options.chunk ?? 50) === 0) await sleep(0);
    }
    report.sendMs = Date.now() - started;
    // Wait until every message is accounted for, or nothing moved for quietMs.
    let last = -1;
    let lastMove = Date.now();
    await eventually('every message accounted for', () => {
      if (done.size === report.sent) return true;
      if (done.size !== last) {
        last = done.size;
        lastMove = Date.now();
      }
      return Date.now() - lastMove > (options.quietMs ?? 10_000) ? true : undefined;
    }, 600_000, 100);
    report.settleMs = Date.now() - started - report.sendMs;
    if (options.lingerMs) await sleep(options.lingerMs);
  } finally {
    // Stopped here (a node's close may write its state too), so that the next load starts clean.
    await helper.unload().catch((err: Error) => examples(report.crashes, `stopping the flow threw: ${err.message}`));
    failures.stop();
    report.crashes.push(...failures.seen.slice(0, 20));
    const probe = {} as Record<string, unknown>;
    for (const key of ['polluted', 'isAdmin']) if (probe[key] !== undefined) report.polluted.push(`Object.prototype.${key} = ${String(probe[key])}`);
    for (const key of Object.keys(Object.prototype)) report.polluted.push(`Object.prototype has ${key}`);
  }
  report.accounted = done.size;
  for (const [id, shape] of shapes) if (!done.has(id)) examples(report.unaccounted, `${id} ${shape}`);
  return report;
}

/** What must be empty in every fuzz report, as one object for one assertion that names what failed. */
export function problems(report: FuzzReport): Record<string, string[]> {
  return {
    unaccounted: report.unaccounted,
    doneTwice: report.doneTwice,
    uncoded: report.uncoded,
    undocumented: report.undocumented,
    generic: report.generic,
    crashes: report.crashes,
    polluted: report.polluted,
    wrong: report.wrong,
  };
}

export const NO_PROBLEMS: Record<string, string[]> = { unaccounted: [], doneTwice: [], uncoded: [], undocumented: [], generic: [], crashes: [], polluted: [], wrong: [] };

/**
 * A message as a device's reading reaches a node, with hostile parts: a payload that is usually an
 * object of readings (each value hostile now and then) and otherwise anything, a msg.device that
 * is usually well formed, a topic, a timestamp, sometimes prototype-pollution keys on the message
 * itself.
 */
export function readingMessage(h: Hostile): Record<string, unknown> {
  const msg: Record<string, unknown> = {};
  msg.payload = h.chance(0.45) ? { temperature: h.chance(0.6) ? h.int(-40, 120) + 0.5 : h.value(), battery: h.chance(0.7) ? 3.4 : h.value(), ...(h.chance(0.2) ? { timestamp: h.chance(0.5) ? Date.now() : h.value() } : {}) } : h.value();
  if (h.chance(0.7)) msg.device = h.chance(0.8) ? { id: h.chance(0.8) ? h.pick(['pump-1', 'pump-2', 'gw-1:s-01']) : h.value(), method: 'apikey', ...(h.chance(0.2) ? { meta: h.value() } : {}), ...(h.chance(0.1) ? { gateway: h.value() } : {}) } : h.value();
  if (h.chance(0.3)) msg.topic = h.chance(0.6) ? h.string() : h.value();
  if (h.chance(0.3)) msg.timestamp = h.chance(0.5) ? h.number() : h.value();
  if (h.chance(0.03)) {
    for (const key of ['__proto__', 'constructor']) Object.defineProperty(msg, key, { value: { polluted: 'yes', prototype: { polluted: 'yes' } }, enumerable: true, writable: true, configurable: true });
  }
  return msg;
}
