/**
 * Flow pieces and calls for end-to-end tests of iot-buffer in a whole Node-RED.
 *
 * `bufferEndpoints(prefix, buffer)` gives, on tab `${prefix}.tab`:
 *   POST /push   an array of readings, one message each, answered 202 once the buffer stored all
 *                of them (a Complete node watches the buffer), 503 with the error if it refused;
 *                readings are numbered in `arrival` in the order the buffer receives them;
 *   GET /status  the buffer's control reply to msg.control = "status".
 * Wire the buffer's third output to `${prefix}.answer` and its fourth to `${prefix}.refused`.
 */
import type { NodeRedProcess } from './node-red-process';
import { eventually, sleep } from './wait';

export type FlowNode = { id: string; type: string; z?: string; [property: string]: unknown };

export function bufferEndpoints(prefix: string, buffer: string): FlowNode[] {
  const z = `${prefix}.tab`;
  return [
    { id: `${prefix}.push`, type: 'http in', z, url: '/push', method: 'post', upload: false, wires: [[`${prefix}.split`]] },
    {
      id: `${prefix}.split`,
      type: 'function',
      z,
      func: [
        'let arrival = context.get("arrival") || 0;',
        'const msgs = msg.payload.map((p) => ({ payload: { ...p, arrival: arrival++ }, topic: "reading" }));',
        'context.set("arrival", arrival);',
        '// The last message carries the HTTP response: answered once it, and so all before it, is stored.',
        'Object.assign(msgs[msgs.length - 1], { req: msg.req, res: msg.res, lastOfBatch: true });',
        'return [msgs];',
      ].join('\n'),
      outputs: 1,
      wires: [[buffer]],
    },
    { id: `${prefix}.stored`, type: 'complete', z, scope: [buffer], uncaught: false, wires: [[`${prefix}.accepted`]] },
    { id: `${prefix}.accepted`, type: 'function', z, func: 'if (!msg.lastOfBatch) return null;\nmsg.statusCode = 202;\nmsg.payload = "stored";\nreturn msg;', outputs: 1, wires: [[`${prefix}.answer`]] },
    { id: `${prefix}.refused`, type: 'function', z, func: 'if (!msg.res) return null;\nmsg.statusCode = 503;\nmsg.payload = msg.error;\nreturn msg;', outputs: 1, wires: [[`${prefix}.answer`]] },
    { id: `${prefix}.status`, type: 'http in', z, url: '/status', method: 'get', upload: false, wires: [[`${prefix}.ask`]] },
    { id: `${prefix}.ask`, type: 'change', z, rules: [{ t: 'set', p: 'control', pt: 'msg', to: 'status', tot: 'str' }], wires: [[buffer]] },
    { id: `${prefix}.answer`, type: 'http response', z, wires: [] },
  ];
}

/**
 * A sink that appends one line per delivered message to the file named by the environment
 * variable DELIVERED_FILE (the core file node: done once the line is written), acknowledged the
 * way users wire it: Complete and Catch nodes scoped to it, back into the buffer. Wire the
 * buffer's first output to `${prefix}.line`; `line` is the JavaScript expression of the line.
 */
export function fileSink(prefix: string, buffer: string, line: string): FlowNode[] {
  const z = `${prefix}.tab`;
  return [
    { id: `${prefix}.line`, type: 'function', z, func: `msg.payload = ${line} + "\\n";\nreturn msg;`, outputs: 1, wires: [[`${prefix}.file`]] },
    { id: `${prefix}.file`, type: 'file', z, filename: 'DELIVERED_FILE', filenameType: 'env', appendNewline: false, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] },
    { id: `${prefix}.written`, type: 'complete', z, scope: [`${prefix}.file`], uncaught: false, wires: [[buffer]] },
    { id: `${prefix}.failed`, type: 'catch', z, scope: [`${prefix}.file`], uncaught: false, wires: [[buffer]] },
  ];
}

/**
 * What went wrong downstream of a buffer, kept in flow context and answered on GET /reported:
 * wire a sink's error output to `${prefix}.failed` (each message kept as { payload, code,
 * message }) and the buffer's dead-letter output to `${prefix}.dead` (counted). Needs
 * bufferEndpoints on the same prefix (its HTTP response node).
 */
export function failureRecorders(prefix: string): FlowNode[] {
  const z = `${prefix}.tab`;
  return [
    {
      id: `${prefix}.failed`,
      type: 'function',
      z,
      func: 'const failed = flow.get("failed") || [];\nfailed.push({ payload: msg.payload, code: msg.error && msg.error.code, message: msg.error && msg.error.message });\nflow.set("failed", failed);\nreturn null;',
      outputs: 1,
      wires: [],
    },
    { id: `${prefix}.dead`, type: 'function', z, func: 'flow.set("dead", (flow.get("dead") || 0) + 1);\nreturn null;', outputs: 1, wires: [] },
    { id: `${prefix}.reported`, type: 'http in', z, url: '/reported', method: 'get', upload: false, wires: [[`${prefix}.report`]] },
    { id: `${prefix}.report`, type: 'function', z, func: 'msg.payload = { failed: flow.get("failed") || [], dead: flow.get("dead") || 0 };\nreturn msg;', outputs: 1, wires: [[`${prefix}.answer`]] },
  ];
}

export interface Reported {
  failed: Array<{ payload: unknown; code: string; message: string }>;
  dead: number;
}

/** GET /reported: the failures failureRecorders kept. */
export async function reportedFailures(node: NodeRedProcess): Promise<Reported> {
  const response = await fetch(`${node.editorUrl}/reported`);
  if (!response.ok) throw new Error(`GET /reported: ${response.status}`);
  return (await response.json()) as Reported;
}

/**
 * `${prefix}.buffer`: an iot-buffer on the local store, FIFO, acknowledged by settlement, without
 * capacity limits unless `settings` say otherwise, delivering to `deliver`, its dead letters to
 * failureRecorders, its replies and refusals to bufferEndpoints.
 */
export function bufferNode(prefix: string, deliver: string[], settings: Record<string, string>): FlowNode {
  return {
    id: `${prefix}.buffer`,
    type: 'iot-buffer',
    z: `${prefix}.tab`,
    backend: 'local',
    order: 'fifo',
    batchSize: '1',
    ackMode: 'settle',
    maxMessages: '0',
    maxSize: '0',
    ...settings,
    wires: [deliver, [`${prefix}.dead`], [`${prefix}.answer`], [`${prefix}.refused`]],
  };
}

/**
 * Readings POSTed to /push at a steady pace, `perTick` every `tickMs` (not waiting for earlier
 * posts: devices do not wait either), each made by `make` from its sequence number.
 */
export class ReadingStream {
  /** Readings sent so far (the next sequence number). */
  sent = 0;
  /** Posts not answered 202. */
  refused = 0;

  constructor(
    private readonly node: NodeRedProcess,
    private readonly make: (seq: number) => object,
    private readonly perTick: number,
    private readonly tickMs: number,
  ) {}

  /** Sends for `ms`, then waits for every answer; returns the buffer's deepest /status seen. */
  async pushFor(ms: number): Promise<BufferStats> {
    const pending: Array<Promise<void>> = [];
    let deepest = await bufferStats(this.node);
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const readings = Array.from({ length: this.perTick }, () => this.make(this.sent++));
      pending.push(pushReadings(this.node, readings).then((status) => void (status !== 202 && this.refused++)));
      const [stats] = await Promise.all([bufferStats(this.node), sleep(this.tickMs)]);
      if (stats.depth > deepest.depth) deepest = stats;
    }
    await Promise.all(pending);
    return deepest;
  }
}

/**
 * A tab `${prefix}.tab` with a buffer fed by /push (bufferEndpoints), its failures recorded
 * (failureRecorders: wire the sink's error output to `${prefix}.failed`), and the buffer itself
 * (bufferNode) delivering to `deliver`: add the sink after it.
 */
export function bufferedTab(prefix: string, label: string, deliver: string[], settings: Record<string, string>): FlowNode[] {
  return [{ id: `${prefix}.tab`, type: 'tab', label }, ...bufferEndpoints(prefix, `${prefix}.buffer`), ...failureRecorders(prefix), bufferNode(prefix, deliver, settings)];
}

/** POSTs readings to /push: the HTTP status (202 stored), or 0 when Node-RED did not answer. */
export function pushReadings(node: NodeRedProcess, readings: object[]): Promise<number> {
  return fetch(`${node.editorUrl}/push`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(readings) }).then(
    (r) => r.status,
    () => 0,
  );
}

export interface BufferStats {
  depth: number;
  inFlight: number;
  accepted?: number;
  acknowledged?: number;
  redelivered?: number;
  diskBytes?: number;
  connected?: boolean;
}

export async function bufferStats(node: NodeRedProcess): Promise<BufferStats> {
  const response = await fetch(`${node.editorUrl}/status`);
  if (!response.ok) throw new Error(`GET /status: ${response.status}`);
  return (await response.json()) as BufferStats;
}

/** Deploys a flow and waits until its buffer answers /status with an open store. */
export async function deployBufferFlow(node: NodeRedProcess, flow: FlowNode[]): Promise<void> {
  await node.deploy(flow);
  await eventually('the deployed buffer answering /status', async () => ((await bufferStats(node)).depth !== undefined ? true : undefined), 30_000);
}
