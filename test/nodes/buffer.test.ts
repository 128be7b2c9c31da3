/**
 * iot-buffer inside a Node-RED runtime (node-red-node-test-helper), with a test sink whose
 * behaviour each test sets, wired the way users wire it: Complete and Catch nodes scoped to the
 * sink, back into the buffer. Ordering, redelivery, dead letters, capacity refusal, drop-oldest
 * counting, pause/resume/purge/status, batches, the pack sinks' settleDelivery, chained
 * buffers, a restart with messages waiting, a damaged store, bad configuration, secrets.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import bufferNode from '../../nodes/buffer/buffer';
import { LocalStore } from '../../nodes/buffer/local-store';
import { encodeMessage } from '../../nodes/buffer/message-codec';
import { reject } from '../../nodes/shared/coded-error';
import { settleDelivery } from '../../nodes/shared/delivery';
import { withMessages } from '../support/messages';
import { helper } from '../support/node-red';
import { eventually } from '../support/wait';

/** The buffer node answering RED._ from its own catalog, as Node-RED does. */
const iotBuffer = withMessages(bufferNode, 'buffer');

type FlowNode = { id: string; type: string; [property: string]: unknown };
type Behaviour = (msg: NodeMessage) => Error | undefined | 'silent';

let userDir: string;
/** What the test sink does with each message: fail (an Error), succeed, or never answer. */
let sinkBehaviour: Behaviour = () => undefined;
const received: NodeMessage[] = [];

/** A sink node for the tests: records what it receives, then does what the test says. */
function testSink(RED: NodeAPI): void {
  RED.nodes.registerType('test-sink', function (this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    this.on('input', (msg: NodeMessage, _send: (m: NodeMessage) => void, done: (err?: Error) => void) => {
      received.push(RED.util.cloneMessage(msg));
      const outcome = sinkBehaviour(msg);
      if (outcome === 'silent') return;
      done(outcome);
    });
  });
}

/** Settlements made to the upstream test source (a front door or another buffer). */
const settledUpstream: Array<[string, unknown]> = [];

/** A source upstream of the buffer (what a front door is): records how its deliveries are settled. */
function testSource(RED: NodeAPI): void {
  RED.nodes.registerType('test-source', function (this: Node & { settleDelivery(id: string, outcome: unknown): void }, def: NodeDef) {
    RED.nodes.createNode(this, def);
    this.settleDelivery = (id, outcome) => settledUpstream.push([id, outcome]);
  });
}

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});
beforeEach(() => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-buffer-node-'));
  helper.settings({ userDir });
  received.length = 0;
  settledUpstream.length = 0;
  sinkBehaviour = () => undefined;
});
afterEach(async () => {
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

/**
 * On one tab: buffer → sink, Complete and Catch (scoped to the sink) → buffer; the buffer's
 * outputs 2-4 to helper nodes dead, control and refused.
 */
function flow(props: Record<string, unknown> = {}, extra: FlowNode[] = []): FlowNode[] {
  // The helper loads a core node once per node of its type: an extra Complete or Catch node
  // replaces the acknowledgement wiring of the sink.
  const acks = extra.some((n) => n.type === 'complete' || n.type === 'catch')
    ? []
    : [
        { id: 'ok', type: 'complete', scope: ['sink'], uncaught: false, wires: [['buf']] },
        { id: 'failed', type: 'catch', scope: ['sink'], uncaught: false, wires: [['buf']] },
      ];
  return [
    { id: 'tab', type: 'tab', label: 'buffer' },
    ...[
      { id: 'buf', type: 'iot-buffer', name: 'under test', fsyncWindow: '2', wires: [['sink'], ['dead'], ['control'], ['refused']], ...props },
      { id: 'sink', type: 'test-sink', wires: [] },
      ...acks,
      { id: 'dead', type: 'helper' },
      { id: 'control', type: 'helper' },
      { id: 'refused', type: 'helper' },
      ...extra,
    ].map((n) => ({ ...n, z: 'tab' })),
  ];
}

function collect(...ids: string[]): Record<string, NodeMessage[]> {
  const seen: Record<string, NodeMessage[]> = {};
  for (const id of ids) {
    seen[id] = [];
    helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
  }
  return seen;
}

const buffer = () => helper.getNode('buf') as Node & { receive(msg: NodeMessage): void };
type StatusSpy = { getCalls(): Array<{ thisValue: unknown; args: [{ fill?: string; shape?: string; text?: string }] }> };
/** The buffer's latest status (node.status is a spy shared by every node of the runtime). */
const lastStatus = () => {
  const node = buffer();
  const calls = (node.status as unknown as StatusSpy).getCalls().filter((c) => c.thisValue === node);
  return calls[calls.length - 1]?.args[0];
};
/** Waits until the status shows this colour, and returns it. */
const statusIn = (fill: string, text: RegExp) =>
  eventually(`a ${fill} status matching ${text}`, () => {
    const status = lastStatus();
    return status?.fill === fill && text.test(status.text ?? '') ? status : undefined;
  });
const payloads = (msgs: NodeMessage[]) => msgs.map((m) => m.payload);

async function stats(): Promise<Record<string, number | boolean | string>> {
  const control = helper.getNode('control');
  const reply = new Promise<NodeMessage>((resolve) => control.once('input', resolve));
  buffer().receive({ control: 'status' });
  return (await reply).payload as Record<string, number | boolean | string>;
}

async function load(props: Record<string, unknown> = {}, extra: FlowNode[] = []): Promise<void> {
  await helper.load([iotBuffer, testSink, testSource], flow(props, extra));
  await eventually('the store open', async () => ((await stats()).depth !== undefined ? true : undefined));
}

describe('iot-buffer node', () => {
  it('delivers in order with a delivery token, and lets go of what the Complete node acknowledges', async () => {
    await load({ maxInFlight: '1' });
    for (let i = 1; i <= 5; i++) buffer().receive({ payload: i, topic: 'pump-1' });
    await eventually('five deliveries', () => (received.length === 5 ? true : undefined));
    expect(payloads(received)).toEqual([1, 2, 3, 4, 5]);
    expect(received[0]._delivery).toMatchObject({ source: 'buf', id: expect.any(String) });
    expect(received[0].redelivered).toBeUndefined();
    expect(received[0].topic).toBe('pump-1');
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
    expect(await stats()).toMatchObject({ accepted: 5, delivered: 5, acknowledged: 5, redelivered: 0, inFlight: 0 });
  });

  it('says it accepted a message (done, for Complete nodes) only once it is stored on disk', async () => {
    const seenOnDisk: boolean[] = [];
    await load({ fsyncWindow: '50' }, [{ id: 'accepted', type: 'complete', scope: ['buf'], uncaught: false, wires: [['acceptedOut']] }, { id: 'acceptedOut', type: 'helper' }]);
    const dir = join(userDir, 'iot-buffer', 'buf');
    helper.getNode('acceptedOut').on('input', (msg: NodeMessage) => {
      if (typeof msg.payload !== 'string' || !msg.payload.startsWith('durable-')) return;
      const text = readdirSync(dir)
        .filter((f) => f.endsWith('.seg'))
        .map((f) => readFileSync(join(dir, f)).toString('latin1'))
        .join('');
      seenOnDisk.push(text.includes(String(msg.payload)));
    });
    buffer().receive({ payload: 'durable-before-done-1' });
    buffer().receive({ payload: 'durable-before-done-2' });
    await eventually('two acceptances', () => (seenOnDisk.length === 2 ? true : undefined));
    expect(seenOnDisk).toEqual([true, true]);
  });

  it('delivers again what a Catch node reports failed, counting in msg.redelivered, then dead-letters it with the reason', async () => {
    await load({ maxAttempts: '3', retryDelay: '0.02', retryDelayMax: '0.05' });
    const out = collect('dead');
    sinkBehaviour = (msg) => (msg.payload === 'poison' ? new Error('database said no') : undefined);
    buffer().receive({ payload: 'good' });
    buffer().receive({ payload: 'poison' });
    await eventually('a dead letter', () => (out.dead.length === 1 ? true : undefined));
    const poison = received.filter((m) => m.payload === 'poison');
    expect(poison.map((m) => m.redelivered)).toEqual([undefined, 1, 2]);
    expect(out.dead[0].payload).toBe('poison');
    expect(out.dead[0].deadLetter).toMatchObject({ attempts: 3, buffer: 'buf', reason: 'test-sink: database said no (after 3 attempts)' });
    expect(out.dead[0]._delivery).toBeUndefined();
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
    expect(await stats()).toMatchObject({ deadLettered: 1, acknowledged: 1 });
  });

  it('sends a failure flagged msg.retry = false straight to the dead letters', async () => {
    await load();
    const out = collect('dead');
    sinkBehaviour = (msg) => {
      msg.retry = false;
      return new Error('invalid record');
    };
    buffer().receive({ payload: 'never' });
    await eventually('a dead letter', () => (out.dead.length === 1 ? true : undefined));
    expect(received).toHaveLength(1);
    expect(out.dead[0].deadLetter).toMatchObject({ attempts: 1, reason: 'failed for good: test-sink: invalid record' });
  });

  it('delivers again what is not acknowledged in time', async () => {
    await load({ ackTimeout: '0.2' });
    let calls = 0;
    sinkBehaviour = () => (++calls === 1 ? 'silent' : undefined);
    buffer().receive({ payload: 'slow' });
    await eventually('a redelivery', () => (received.length === 2 ? true : undefined));
    expect(received[1].redelivered).toBe(1);
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
  });

  it('keeps order per key: a failing device does not hold up the others', async () => {
    await load({ order: 'key', maxInFlight: '10', retryDelay: '0.2', maxAttempts: '0' });
    let failures = 0;
    sinkBehaviour = (msg) => (msg.topic === 'slow' && failures++ < 2 ? new Error('busy') : undefined);
    for (const [topic, payload] of [['slow', 1], ['slow', 2], ['fast', 1], ['fast', 2], ['fast', 3], ['slow', 3]] as const) buffer().receive({ topic, payload });
    await eventually('every message delivered', () => (received.filter((m) => m.topic === 'slow').length === 5 ? true : undefined));
    const order = received.map((m) => `${m.topic}${m.payload}`);
    expect(order.filter((t) => t.startsWith('fast'))).toEqual(['fast1', 'fast2', 'fast3']);
    expect(order.filter((t) => t.startsWith('slow'))).toEqual(['slow1', 'slow1', 'slow1', 'slow2', 'slow3']);
    // The fast device was done while the slow one was still retrying its first message.
    expect(order.indexOf('fast3')).toBeLessThan(order.lastIndexOf('slow1'));
  });

  it('refuses a message when full, on the last output with queue_full, and to Catch nodes when asked', async () => {
    await load({ maxMessages: '2', catchErrors: true }, [{ id: 'caught', type: 'catch', scope: ['buf'], uncaught: false, wires: [['caughtOut']] }, { id: 'caughtOut', type: 'helper' }]);
    const out = collect('refused', 'caughtOut');
    buffer().receive({ control: 'pause' });
    for (const payload of ['a', 'b', 'c']) buffer().receive({ payload });
    await eventually('a refusal', () => (out.refused.length === 1 ? true : undefined));
    expect(out.refused[0].payload).toBe('c');
    expect(out.refused[0].error).toMatchObject({ code: 'queue_full', node: 'buf', message: 'the queue is full (2 of 2 messages)' });
    await eventually('the Catch node told', () => (out.caughtOut.length === 1 ? true : undefined));
    expect(await stats()).toMatchObject({ depth: 2, refused: 1 });
  });

  it('drops the oldest waiting message in drop-oldest mode, and counts it', async () => {
    await load({ maxMessages: '3', whenFull: 'drop-oldest' });
    const out = collect('refused');
    buffer().receive({ control: 'pause' });
    for (const payload of ['a', 'b', 'c', 'd', 'e']) buffer().receive({ payload });
    await eventually('five accepted', async () => ((await stats()).accepted === 5 ? true : undefined));
    expect(await stats()).toMatchObject({ depth: 3, dropped: 2 });
    expect(out.refused).toEqual([]);
    buffer().receive({ control: 'resume' });
    await eventually('three deliveries', () => (received.length === 3 ? true : undefined));
    expect(payloads(received)).toEqual(['c', 'd', 'e']);
  });

  it('pauses, resumes, purges and reports its status by message', async () => {
    await load();
    const out = collect('control', 'refused');
    buffer().receive({ control: 'pause' });
    for (const payload of [1, 2, 3]) buffer().receive({ payload });
    await eventually('three accepted', async () => ((await stats()).accepted === 3 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received).toEqual([]);
    expect(await stats()).toMatchObject({ paused: true, depth: 3, backend: 'local' });
    expect((await stats()).oldestAgeMs).toBeGreaterThanOrEqual(100);
    buffer().receive({ control: 'resume' });
    await eventually('three deliveries', () => (received.length === 3 ? true : undefined));
    buffer().receive({ control: 'pause' });
    for (const payload of [4, 5]) buffer().receive({ payload });
    const replies = out.control.length;
    buffer().receive({ control: 'purge' });
    await eventually('the purge reply', () => (out.control.length > replies + 1 ? true : undefined));
    expect(out.control[out.control.length - 1].payload).toMatchObject({ removed: 2, depth: 0, purged: 2 });
    // What comes after a purge is delivered.
    buffer().receive({ control: 'resume' });
    for (const payload of [6, 7]) buffer().receive({ payload });
    await eventually('the messages after the purge delivered', () => (received.length === 5 ? true : undefined));
    expect(payloads(received)).toEqual([1, 2, 3, 6, 7]);
    buffer().receive({ control: 'explode' });
    await eventually('a refusal', () => (out.refused.length === 1 ? true : undefined));
    expect(out.refused[0].error).toMatchObject({ code: 'bad_control' });
  });

  it('gathers batches: one delivery, payloads in msg.payload, whole messages in msg.messages', async () => {
    await load({ batchSize: '3', batchWait: '50' });
    for (const payload of [1, 2, 3, 4]) buffer().receive({ payload, topic: `t${payload}` });
    await eventually('two batches', () => (received.length === 2 ? true : undefined));
    expect(payloads(received)).toEqual([[1, 2, 3], [4]]);
    expect((received[0].messages as NodeMessage[]).map((m) => m.topic)).toEqual(['t1', 't2', 't3']);
    expect((received[0].messages as NodeMessage[])[0]._delivery).toBeUndefined();
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
    expect(await stats()).toMatchObject({ acknowledged: 4 });
  });

  it('is settled by the pack sinks through settleDelivery(), the first settlement counting', async () => {
    await load({ maxAttempts: '1' });
    sinkBehaviour = () => 'silent';
    buffer().receive({ payload: 'x' });
    buffer().receive({ payload: 'y' });
    await eventually('two deliveries', () => (received.length === 2 ? true : undefined));
    const RED = { nodes: { getNode: (id: string) => helper.getNode(id) } } as unknown as NodeAPI;
    expect(settleDelivery(RED, received[0], { ok: true })).toBe(true);
    settleDelivery(RED, received[0], { ok: false, reason: 'late', retry: false });
    settleDelivery(RED, received[1], { ok: false, reason: 'rejected by Salesforce', retry: false });
    const out = collect('dead');
    await eventually('a dead letter', () => (out.dead.length === 1 ? true : undefined));
    expect(out.dead[0]).toMatchObject({ payload: 'y', deadLetter: { reason: 'failed for good: rejected by Salesforce' } });
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
    expect(await stats()).toMatchObject({ acknowledged: 1, deadLettered: 1 });
  });

  it('fans a delivery out to the nodes wired to its output: the first settlement counts, and a pack node refusing it for good dead-letters it', async () => {
    /** A node of the pack's kind beside the sink: refuses for good a reading it cannot use, as iot-threshold does. */
    function testChecker(RED: NodeAPI): void {
      RED.nodes.registerType('test-checker', function (this: Node, def: NodeDef) {
        RED.nodes.createNode(this, def);
        this.on('input', (msg: NodeMessage, send: (m: Array<NodeMessage | null>) => void, done: (err?: Error) => void) => {
          if (msg.payload === 'no value') reject(this, msg, 'missing_value', 'no temperature in the reading', send, done, { outputs: 2, catchErrors: false, RED });
          else done();
        });
      });
    }
    await helper.load([iotBuffer, testSink, testSource, testChecker], flow({}, [{ id: 'checker', type: 'test-checker', wires: [[], []] }]).map((n) => (n.id === 'buf' ? { ...n, wires: [['sink', 'checker'], ['dead'], ['control'], ['refused']] } : n)));
    await eventually('the store open', async () => ((await stats()).depth !== undefined ? true : undefined));
    const out = collect('dead');
    buffer().receive({ payload: 'no value' });
    buffer().receive({ payload: 'a value' });
    await eventually('a dead letter and an empty queue', async () => (out.dead.length === 1 && (await stats()).depth === 0 ? true : undefined));
    // The sink got and wrote both; the checker's refusal came first for the one it could not use.
    expect(payloads(received).sort()).toEqual(['a value', 'no value']);
    expect(out.dead[0]).toMatchObject({ payload: 'no value', deadLetter: { reason: expect.stringContaining('missing_value') } });
    expect(await stats()).toMatchObject({ acknowledged: 1, deadLettered: 1 });
  });

  it('keeps Buffers, nested objects and the device identity; leaves out HTTP objects', async () => {
    await load();
    const device = { id: 'gw-7', method: 'jwt', gateway: 'gw', meta: { site: 'Lyon' } };
    buffer().receive({ payload: Buffer.from([0, 1, 254, 255]), device, timestamp: 1_795_000_000_000 });
    buffer().receive({ payload: { a: [1, { b: null }] }, req: { socket: {} }, res: { _res: {} } });
    await eventually('two deliveries', () => (received.length === 2 ? true : undefined));
    expect(Buffer.isBuffer(received[0].payload)).toBe(true);
    expect([...(received[0].payload as Buffer)]).toEqual([0, 1, 254, 255]);
    expect(received[0].device).toEqual(device);
    expect(received[0].timestamp).toBe(1_795_000_000_000);
    expect(received[1].payload).toEqual({ a: [1, { b: null }] });
    expect(received[1].req).toBeUndefined();
    expect(received[1].res).toBeUndefined();
  });

  it('acknowledges to an upstream buffer once it stored the message (Double Buffered)', async () => {
    await helper.load([iotBuffer, testSink, testSource], [
      ...flow(),
      { id: 'first', type: 'iot-buffer', z: 'tab', fsyncWindow: '2', wires: [['buf'], [], ['firstControl'], []] },
      { id: 'firstControl', type: 'helper', z: 'tab' },
    ]);
    // The sink never answers: the first buffer lets go only because the second one stored them.
    sinkBehaviour = () => 'silent';
    const first = helper.getNode('first') as Node & { receive(msg: NodeMessage): void };
    const firstDepth = async () => {
      const reply = new Promise<NodeMessage>((resolve) => helper.getNode('firstControl').once('input', resolve));
      first.receive({ control: 'status' });
      return ((await reply).payload as { depth?: number }).depth;
    };
    await eventually('the first buffer open', async () => ((await firstDepth()) !== undefined ? true : undefined));
    await eventually('the second buffer open', async () => ((await stats()).depth !== undefined ? true : undefined));
    for (const payload of [1, 2, 3]) first.receive({ payload });
    await eventually('three at the sink', () => (received.length === 3 ? true : undefined));
    expect(received.every((m) => (m._delivery as { source: string }).source === 'buf')).toBe(true);
    await eventually('the first buffer empty', async () => ((await firstDepth()) === 0 ? true : undefined));
    expect(await stats()).toMatchObject({ depth: 3, inFlight: 3 });
  });

  it('delivers after a restart what was waiting, and again what was in flight', async () => {
    await load({ maxInFlight: '2' });
    sinkBehaviour = () => 'silent';
    for (const payload of [1, 2, 3, 4]) buffer().receive({ payload });
    await eventually('two in flight', () => (received.length === 2 ? true : undefined));
    await helper.unload();
    received.length = 0;
    sinkBehaviour = () => undefined;
    await load({ maxInFlight: '2' });
    await eventually('four deliveries', () => (received.length === 4 ? true : undefined));
    expect(payloads(received)).toEqual([1, 2, 3, 4]);
    await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
  });

  it('recovers from a damaged store file, warns what was lost, and goes on', async () => {
    const dir = join(userDir, 'iot-buffer', 'buf');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '0000000000000007.seg'), 'garbage that is no segment');
    await load();
    const warnings = (helper.getNode('buf') as unknown as { warn: { args: unknown[][] } }).warn.args.map((a) => String(a[0]));
    expect(warnings.join('\n')).toMatch(/store_corrupt: 0000000000000007\.seg is not a segment of this store/);
    buffer().receive({ payload: 'still works' });
    await eventually('a delivery', () => (received.length === 1 ? true : undefined));
  });

  it('rejects every message with invalid_config when the configuration is wrong', async () => {
    await helper.load([iotBuffer, testSink, testSource], flow({ maxInFlight: '0', batchSize: 'lots' }));
    const out = collect('refused');
    buffer().receive({ payload: 1 });
    await eventually('a refusal', () => (out.refused.length === 1 ? true : undefined));
    const { message } = out.refused[0].error as { message: string };
    expect(out.refused[0].error).toMatchObject({ code: 'invalid_config' });
    expect(message).toContain('maximum in flight must be a whole number from 1 to 1000000 (got "0")');
    expect(message).toContain('batch size must be a whole number from 1 to 100000 (got "lots")');
  });

  it('keeps the Redis password in the credentials: not in the URL, not in any log line or message', async () => {
    await helper.load([iotBuffer, testSink, testSource], flow({ backend: 'redis', redisUrl: 'redis://127.0.0.1:1' }), { buf: { redisPassword: 's3cret-pass' } });
    const out = collect('refused');
    buffer().receive({ payload: 1 });
    await eventually('a refusal', () => (out.refused.length === 1 ? true : undefined));
    expect(out.refused[0].error).toMatchObject({ code: 'backend_unavailable' });
    const node = helper.getNode('buf') as unknown as Record<'warn' | 'error' | 'log', { args: unknown[][] }>;
    const logged = JSON.stringify([node.warn.args, node.error.args, node.log.args, out.refused]);
    expect(logged).not.toContain('s3cret-pass');
    await helper.unload();
    await helper.load([iotBuffer, testSink, testSource], flow({ backend: 'redis', redisUrl: 'redis://:s3cret@127.0.0.1:6379' }));
    const again = collect('refused');
    buffer().receive({ payload: 1 });
    await eventually('a refusal', () => (again.refused.length === 1 ? true : undefined));
    expect(again.refused[0].error).toMatchObject({ code: 'invalid_config', message: expect.stringContaining('password field') });
    expect(JSON.stringify(again.refused[0].error)).not.toContain('s3cret');
  });

  it("stamps msg.timestamp with the time it accepted a message that has none, on both outputs and every redelivery; keeps a message's own time", async () => {
    await helper.load([iotBuffer, testSink], flow({ acceptedOutput: true, maxAttempts: '2', retryDelay: '0.02', retryDelayMax: '0.05' }, [{ id: 'accepted', type: 'helper' }]).map((n) =>
      n.id === 'buf' ? { ...n, wires: [['sink'], ['accepted'], ['dead'], ['control'], ['refused']] } : n,
    ));
    await eventually('the store open', async () => ((await stats()).depth !== undefined ? true : undefined));
    const out = collect('accepted');
    sinkBehaviour = (msg) => (msg.payload === 'no time' && msg.redelivered === undefined ? new Error('once more') : undefined);
    const before = Date.now();
    buffer().receive({ payload: 'no time' });
    buffer().receive({ payload: 'null time', timestamp: null });
    buffer().receive({ payload: 'own ms', timestamp: 1_700_000_000_000 });
    buffer().receive({ payload: 'own text', timestamp: '2026-12-01T10:00:00Z' });
    await eventually('four delivered, one of them twice', () => (received.length === 5 ? true : undefined));
    const after = Date.now();
    await eventually('four passed on', () => (out.accepted.length === 4 ? true : undefined));
    const times = (messages: NodeMessage[]) => Object.fromEntries(messages.map((m) => [`${String(m.payload)}${m.redelivered ? ' again' : ''}`, m.timestamp]));
    const stamped = times(received)['no time'] as number;
    expect(stamped).toBeGreaterThanOrEqual(before);
    expect(stamped).toBeLessThanOrEqual(after);
    const nullStamped = times(received)['null time'] as number;
    expect(nullStamped).toBeGreaterThanOrEqual(before);
    expect(times(received)).toEqual({ 'no time': stamped, 'no time again': stamped, 'null time': nullStamped, 'own ms': 1_700_000_000_000, 'own text': '2026-12-01T10:00:00Z' });
    expect(times(out.accepted)).toEqual({ 'no time': stamped, 'null time': nullStamped, 'own ms': 1_700_000_000_000, 'own text': '2026-12-01T10:00:00Z' });
  });

  it('stamps a message stored without msg.timestamp (by an older version) with the time it was accepted, when it delivers it', async () => {
    const dir = join(userDir, 'iot-buffer', 'buf');
    mkdirSync(dir, { recursive: true });
    const store = new LocalStore({ dir, fsyncWindowMs: 1, segmentBytes: 1024 * 1024 });
    await store.open();
    const acceptedAt = Date.now() - 3_600_000;
    await new Promise<void>((resolve, reject) => store.append('k', encodeMessage({ _msgid: 'old', payload: 'stored before' }), acceptedAt, (err) => (err ? reject(err) : resolve())));
    await store.close();
    await load();
    await eventually('the old message delivered', () => (received.length === 1 ? true : undefined));
    expect(received[0]).toMatchObject({ payload: 'stored before', timestamp: acceptedAt });
  });

  describe('status', () => {
    it('is green while it works, yellow while paused, red while the queue is full and refusing', async () => {
      await load({ maxMessages: '2' });
      buffer().receive({ payload: 1 });
      await eventually('a delivery', () => (received.length === 1 ? true : undefined));
      await statusIn('green', /^0 queued · 0 in flight$/);
      buffer().receive({ control: 'pause' });
      await statusIn('yellow', /paused/);
      for (const payload of [2, 3, 4]) buffer().receive({ payload });
      await statusIn('red', /queue_full/);
      buffer().receive({ control: 'resume' });
      await eventually('two more deliveries', () => (received.length === 3 ? true : undefined));
    });

    it('is yellow while deliveries fail and go again, saying when the next goes', async () => {
      await load({ retryDelay: '60' });
      sinkBehaviour = () => new Error('database said no');
      buffer().receive({ payload: 'x' });
      const status = await statusIn('yellow', /1 retrying \(next at \d\d:\d\d:\d\d\)/);
      expect(status.text).toMatch(/^1 queued · 1 in flight · /);
    });

    it('is yellow while a sink holds its deliveries with a Retry-After, saying until when', async () => {
      await load();
      sinkBehaviour = (msg) => {
        msg.retryAfter = 120_000;
        return new Error('429 Too Many Requests');
      };
      const before = Date.now();
      buffer().receive({ payload: 'x' });
      const status = await statusIn('yellow', /1 held by the sink until \d\d:\d\d:\d\d/);
      const until = /until (\d\d:\d\d:\d\d)/.exec(status.text ?? '')?.[1];
      expect(until).toBe(new Date(before + 120_000).toTimeString().slice(0, 8));
    });

    it('is yellow while the oldest message has waited more than a minute', async () => {
      const dir = join(userDir, 'iot-buffer', 'buf');
      const store = new LocalStore({ dir, fsyncWindowMs: 0, segmentBytes: 1024 * 1024 });
      await store.open();
      await new Promise<void>((resolve, reject) => store.append('k', JSON.stringify({ payload: 'old' }), Date.now() - 5 * 60_000, (err) => (err ? reject(err) : resolve())));
      await store.close();
      sinkBehaviour = () => 'silent';
      await load();
      await statusIn('yellow', /^1 queued · 1 in flight · oldest 5 min( \d+ s)?$/);
    });

    it('is red while the store cannot open, saying why', async () => {
      writeFileSync(join(userDir, 'not-a-folder'), 'x');
      await helper.load([iotBuffer, testSink, testSource], flow({ dataDir: 'not-a-folder/queue' }));
      await statusIn('red', /^io_error · /);
    });
  });

  describe('messages that cannot be routed', () => {
    /** Unhandled rejections and uncaught exceptions while the test runs. */
    let escaped: string[] = [];
    const onRejection = (reason: unknown) => escaped.push(`unhandled rejection: ${String(reason)}`);
    const onException = (err: unknown) => escaped.push(`uncaught exception: ${String(err)}`);
    beforeEach(() => {
      escaped = [];
      process.on('unhandledRejection', onRejection);
      process.on('uncaughtException', onException);
    });
    afterEach(() => {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    });

    const nested = (levels: number) => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = { a: value };
      return value;
    };

    /** Stores messages in the buffer's folder as an older version did, before the node starts. */
    async function storedBefore(bodies: Array<string | Buffer>): Promise<void> {
      const store = new LocalStore({ dir: join(userDir, 'iot-buffer', 'buf'), fsyncWindowMs: 0, segmentBytes: 1024 * 1024 });
      await store.open();
      for (const body of bodies) await new Promise<void>((resolve, reject) => store.append('k', body, Date.now(), (err) => (err ? reject(err) : resolve())));
      await store.close();
    }

    it('refuses a message nested too deep or holding too many keys, for good, storing nothing; Complete and Catch nodes see it without that part, and nothing escapes', async () => {
      await load({ catchErrors: true }, [
        { id: 'stored', type: 'complete', scope: ['buf'], uncaught: false, wires: [['storedOut']] },
        { id: 'caught', type: 'catch', scope: ['buf'], uncaught: false, wires: [['caughtOut']] },
        { id: 'upstream', type: 'test-source', wires: [] },
        { id: 'storedOut', type: 'helper' },
        { id: 'caughtOut', type: 'helper' },
      ]);
      const out = collect('refused', 'storedOut', 'caughtOut');
      buffer().receive({ payload: nested(3_000), topic: 'deep', _delivery: { source: 'upstream', id: 'u1' } });
      buffer().receive({ payload: Array.from({ length: 20_000 }, (_, i) => i), topic: 'huge', _delivery: { source: 'upstream', id: 'u2' } });
      buffer().receive({ payload: { temperature: 21 }, topic: 'fine' });
      await eventually('two refusals and one acceptance', () => (out.refused.length === 2 && out.caughtOut.length === 2 && out.storedOut.some((m) => m.topic === 'fine') ? true : undefined));
      expect(out.refused.map((m) => [m.topic, (m.error as { code: string }).code, m.payload])).toEqual([
        ['deep', 'too_deep', undefined],
        ['huge', 'too_many_keys', undefined],
      ]);
      expect((out.refused[0].error as { message: string }).message).toBe(
        'msg.payload: the value nests more than 32 levels deep: nothing of it is stored, and the part too deep or too large is left out of this message',
      );
      expect(out.caughtOut.map((m) => m.topic)).toEqual(['deep', 'huge']);
      expect(out.storedOut.filter((m) => m.topic !== undefined).map((m) => m.topic)).toEqual(['fine']);
      expect(settledUpstream).toEqual([
        ['u1', { ok: false, retry: false, code: 'too_deep', reason: expect.stringMatching(/^too_deep: msg.payload/) }],
        ['u2', { ok: false, retry: false, code: 'too_many_keys', reason: expect.stringMatching(/^too_many_keys: msg.payload/) }],
      ]);
      await eventually('one delivery', () => (received.length === 1 ? true : undefined));
      expect(payloads(received)).toEqual([{ temperature: 21 }]);
      expect(await stats()).toMatchObject({ accepted: 1 });
      expect(escaped).toEqual([]);
    });

    it('takes the limits from its settings', async () => {
      await load({ maxDepth: '3', maxKeys: '5' });
      const out = collect('refused');
      buffer().receive({ payload: { a: { b: { c: 1 } } } });
      buffer().receive({ payload: { a: { b: { c: { d: 1 } } } } });
      buffer().receive({ payload: [1, 2, 3, 4, 5, 6] });
      await eventually('two refusals', () => (out.refused.length === 2 ? true : undefined));
      expect(out.refused.map((m) => (m.error as { code: string }).code)).toEqual(['too_deep', 'too_many_keys']);
      await eventually('one delivery', () => (received.length === 1 ? true : undefined));
    });

    it('sends a stored message it cannot route or read to the dead letters, with its content as stored, and delivers the others', async () => {
      const deep = JSON.stringify({ payload: nested(3_000), topic: 'deep' });
      await storedBefore([JSON.stringify({ payload: 1 }), deep, '{"payload": torn', Buffer.from([0x00, 0x01]), JSON.stringify({ payload: 2 })]);
      await helper.load([iotBuffer, testSink, testSource], flow({}, [{ id: 'second', type: 'helper' }]).map((n) => (n.id === 'buf' ? { ...n, wires: [['sink', 'second'], ['dead'], ['control'], ['refused']] } : n)));
      const out = collect('dead');
      await eventually('three dead letters and two deliveries', () => (out.dead.length === 3 && received.length === 2 ? true : undefined));
      expect(payloads(received)).toEqual([1, 2]);
      expect(out.dead.map((m) => (m.deadLetter as { reason: string }).reason)).toEqual([
        'too_deep: msg.payload: the value nests more than 32 levels deep: it cannot be routed',
        expect.stringMatching(/^unreadable: the stored message cannot be read: .*JSON/),
        'unreadable: the stored message cannot be read: unknown message format 0x0',
      ]);
      expect(out.dead.map((m) => m.payload)).toEqual([deep, '{"payload": torn', Buffer.from([0x00, 0x01])]);
      expect(out.dead[0].deadLetter).toMatchObject({ attempts: 1, buffer: 'buf' });
      await eventually('an empty queue', async () => ((await stats()).depth === 0 ? true : undefined));
      expect(await stats()).toMatchObject({ deadLettered: 3, acknowledged: 2 });
      expect(escaped).toEqual([]);
    });

    it('sends a message whose routing throws to the dead letters, and the others flow on', async () => {
      await load();
      const out = collect('dead');
      const node = buffer() as Node & { send(msg: unknown): void };
      const send = node.send.bind(node);
      // What Node-RED's router does when cloning a message overflows the stack.
      node.send = (msgs: unknown) => {
        const delivered = (msgs as Array<NodeMessage | null>)[0];
        if (delivered?.payload === 'poison') throw new RangeError('Maximum call stack size exceeded');
        send(msgs);
      };
      for (const payload of ['before', 'poison', 'after']) buffer().receive({ payload });
      await eventually('a dead letter and two deliveries', () => (out.dead.length === 1 && received.length === 2 ? true : undefined));
      expect(payloads(received)).toEqual(['before', 'after']);
      expect(out.dead[0]).toMatchObject({ payload: 'poison', deadLetter: { reason: 'Node-RED could not pass it on (Maximum call stack size exceeded)' } });
      expect(escaped).toEqual([]);
    });
  });

  describe('the accepted output', () => {
    /** The flow with the accepted output on: outputs [delivered, accepted, dead, control, refused]. */
    const withAccepted = (props: Record<string, unknown> = {}) =>
      flow({ acceptedOutput: true, ...props }, [{ id: 'accepted', type: 'helper' }]).map((n) =>
        n.id === 'buf' ? { ...n, wires: [['sink'], ['accepted'], ['dead'], ['control'], ['refused']] } : n,
      );

    it('passes each message on once it is stored, as it came in but for the settled token, untracked, in order; the other outputs move down one', async () => {
      await helper.load([iotBuffer, testSink, testSource], [...withAccepted({ maxMessages: '4', fsyncWindow: '50' }), { id: 'upstream', type: 'test-source', z: 'tab' }]);
      await eventually('the store open', async () => ((await stats()).depth !== undefined ? true : undefined));
      const out = collect('accepted', 'dead', 'control', 'refused');
      const dir = join(userDir, 'iot-buffer', 'buf');
      const onDisk: boolean[] = [];
      helper.getNode('accepted').on('input', (msg: NodeMessage) => {
        const text = readdirSync(dir)
          .filter((f) => f.endsWith('.seg'))
          .map((f) => readFileSync(join(dir, f)).toString('latin1'))
          .join('');
        onDisk.push(text.includes(`"reading-${String(msg.payload)}"`));
      });
      const req = { socket: 'live' };
      const res = { answer: 'later' };
      buffer().receive({ control: 'pause' });
      buffer().receive({ payload: 1, topic: 'reading-1', req, res, _delivery: { source: 'upstream', id: 'u1' } });
      for (const payload of [2, 3, 4, 5]) buffer().receive({ payload, topic: `reading-${payload}` });
      await eventually('four passed on and one refused', () => (out.accepted.length === 4 && out.refused.length === 1 ? true : undefined));
      expect(out.accepted.map((m) => m.payload)).toEqual([1, 2, 3, 4]);
      expect(onDisk).toEqual([true, true, true, true]);
      expect(out.accepted[0].req).toBe(req);
      expect(out.accepted[0].res).toBe(res);
      expect(out.accepted.map((m) => m._delivery)).toEqual([undefined, undefined, undefined, undefined]);
      expect(settledUpstream).toEqual([['u1', { ok: true }]]);
      // Refusals on the fifth output, control replies on the fourth.
      expect(out.refused[0]).toMatchObject({ payload: 5, error: { code: 'queue_full' } });
      expect(out.control.length).toBeGreaterThan(0);
      // Delivered as before, with this buffer's own token; dead letters on the third output.
      sinkBehaviour = (msg) => {
        if (msg.payload !== 2) return undefined;
        msg.retry = false;
        return new Error('never');
      };
      buffer().receive({ control: 'resume' });
      await eventually('four delivered and one dead letter', () => (received.length === 4 && out.dead.length === 1 ? true : undefined));
      expect((received[0]._delivery as { source: string }).source).toBe('buf');
      expect(out.dead[0].payload).toBe(2);
    });

    it('is off in a flow saved before it existed: four outputs, as before', async () => {
      await load();
      const out = collect('dead', 'control', 'refused');
      sinkBehaviour = (msg) => {
        msg.retry = false;
        return new Error('never');
      };
      buffer().receive({ payload: 'x' });
      await eventually('a dead letter on the second output', () => (out.dead.length === 1 ? true : undefined));
      expect(out.dead[0].deadLetter).toMatchObject({ reason: 'failed for good: test-sink: never' });
    });
  });
});
