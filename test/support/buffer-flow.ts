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
import { eventually } from './wait';

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
