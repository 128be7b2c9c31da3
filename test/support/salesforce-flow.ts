/**
 * A tab an integrator would build to send alerts to Salesforce, for end-to-end tests in a whole
 * Node-RED: one iot-salesforce-connection and one or more iot-salesforce-out nodes, each as the
 * editor drops it (its defaults) with only what the test sets, optionally behind an iot-buffer
 * at its defaults. Endpoints on the tab:
 *
 *   POST /alerts/<out>   an array of { alert, device }: one message each, sent in one burst
 *   GET  /results        what came out: { written, failed, dead, refused }, each entry with the
 *                        out node's name, the alert id and the time it came out
 *   GET  /buffer/<out>   the control reply of the buffer in front of that out node
 */
import { asDropped } from './editor-defaults';
import type { NodeRedProcess } from './node-red-process';
import { eventually } from './wait';

type FlowNode = { id: string; type: string; z?: string; [property: string]: unknown };

export interface OutSpec {
  name: string;
  /** What the integrator sets on the out node beyond its defaults. */
  set?: Record<string, unknown>;
  /** An iot-buffer at its editor defaults in front of the out node. */
  buffered?: boolean;
}

export function salesforceTab(prefix: string, connection: Record<string, unknown>, outs: OutSpec[]): FlowNode[] {
  const z = `${prefix}.tab`;
  const answer = `${prefix}.answer`;
  const results = '{ written: [], failed: [], dead: [], refused: [] }';
  const record = (list: string, name: string, fields: string) =>
    `const r = global.get("results") || ${results};\nr.${list}.push({ out: ${JSON.stringify(name)}, alertId: msg.alert && msg.alert.id, at: Date.now(), ${fields} });\nglobal.set("results", r);\nreturn null;`;
  const nodes: FlowNode[] = [
    { id: z, type: 'tab', label: `salesforce ${prefix}` },
    { id: `${prefix}.conn`, ...asDropped('iot-salesforce-connection', connection) } as FlowNode,
    { id: answer, type: 'http response', z, wires: [] },
    { id: `${prefix}.results.in`, type: 'http in', z, url: '/results', method: 'get', upload: false, wires: [[`${prefix}.results`]] },
    { id: `${prefix}.results`, type: 'function', z, func: `msg.payload = global.get("results") || ${results};\nreturn msg;`, outputs: 1, wires: [[answer]] },
  ];
  for (const out of outs) {
    const outId = `${prefix}.out.${out.name}`;
    const bufferId = `${prefix}.buffer.${out.name}`;
    const first = out.buffered ? bufferId : outId;
    nodes.push(
      { id: `${prefix}.in.${out.name}`, type: 'http in', z, url: `/alerts/${out.name}`, method: 'post', upload: false, wires: [[`${prefix}.fan.${out.name}`]] },
      {
        id: `${prefix}.fan.${out.name}`,
        type: 'function',
        z,
        func: 'const sent = msg.payload.map((m) => ({ alert: m.alert, device: m.device, topic: m.alert && m.alert.key }));\nnode.send([sent, null]);\nreturn [null, { req: msg.req, res: msg.res, statusCode: 202, payload: { sent: sent.length } }];',
        outputs: 2,
        wires: [[first], [answer]],
      },
      { ...asDropped('iot-salesforce-out', { connection: `${prefix}.conn`, ...out.set }), id: outId, z, name: out.name, wires: [[`${prefix}.ok.${out.name}`], [`${prefix}.failed.${out.name}`]] },
      { id: `${prefix}.ok.${out.name}`, type: 'function', z, func: record('written', out.name, 'salesforce: msg.salesforce'), outputs: 1, wires: [] },
      { id: `${prefix}.failed.${out.name}`, type: 'function', z, func: record('failed', out.name, 'error: msg.error'), outputs: 1, wires: [] },
    );
    if (out.buffered) {
      nodes.push(
        { ...asDropped('iot-buffer', {}), id: bufferId, z, name: `to ${out.name}`, wires: [[outId], [`${prefix}.dead.${out.name}`], [answer], [`${prefix}.refused.${out.name}`]] },
        { id: `${prefix}.dead.${out.name}`, type: 'function', z, func: record('dead', out.name, 'deadLetter: msg.deadLetter'), outputs: 1, wires: [] },
        { id: `${prefix}.refused.${out.name}`, type: 'function', z, func: record('refused', out.name, 'error: msg.error'), outputs: 1, wires: [] },
        { id: `${prefix}.bufstat.in.${out.name}`, type: 'http in', z, url: `/buffer/${out.name}`, method: 'get', upload: false, wires: [[`${prefix}.bufstat.${out.name}`]] },
        { id: `${prefix}.bufstat.${out.name}`, type: 'change', z, rules: [{ t: 'set', p: 'control', pt: 'msg', to: 'status', tot: 'str' }], wires: [[bufferId]] },
      );
    }
  }
  return nodes;
}

export interface Alerting {
  alert: Record<string, unknown> & { id: string };
  device: Record<string, unknown>;
}

/** An alert as iot-threshold raises it, for a device with the metadata a Lead needs. */
export function alertOf(id: string, device = 'pump-17'): Alerting {
  const at = Date.now();
  return {
    alert: { id, key: device, reading: 'temperature', rule: 'above', severity: 'major', state: 'raised', change: 'raised', value: 93.5, threshold: 90, since: at, at, text: `temperature above 90 on ${device} (93.5)` },
    device: { id: device, meta: { company: 'Acme Pumps', contactName: 'Ada Ng', contactEmail: 'ada.ng@example.com' } },
  };
}

export interface ResultEntry {
  out: string;
  alertId: string;
  at: number;
  salesforce?: { success: boolean; id?: string; created?: boolean };
  error?: { code: string; errorCode?: string; message: string };
  deadLetter?: { reason: string };
}

export interface Results {
  written: ResultEntry[];
  failed: ResultEntry[];
  dead: ResultEntry[];
  refused: ResultEntry[];
}

export async function sendAlerts(node: NodeRedProcess, out: string, alerts: Alerting[]): Promise<void> {
  const response = await fetch(`${node.editorUrl}/alerts/${out}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(alerts) });
  if (response.status !== 202) throw new Error(`POST /alerts/${out}: ${response.status} ${await response.text()}`);
}

export async function results(node: NodeRedProcess): Promise<Results> {
  const response = await fetch(`${node.editorUrl}/results`);
  if (!response.ok) throw new Error(`GET /results: ${response.status}`);
  return (await response.json()) as Results;
}

/** Waits until every alert id has come out of the out node, written or failed. */
export async function outcomesOf(node: NodeRedProcess, ids: string[], timeoutMs = 30_000): Promise<Results> {
  const wanted = new Set(ids);
  try {
    return await eventually(`an outcome for each of ${ids.length} alert(s)`, async () => {
      const seen = await results(node);
      const done = new Set([...seen.written, ...seen.failed].map((r) => r.alertId).filter((id) => wanted.has(id)));
      return done.size === wanted.size ? seen : undefined;
    }, timeoutMs, 100);
  } catch (err) {
    const seen = await results(node).catch(() => undefined);
    throw new Error(`${(err as Error).message}; so far: ${JSON.stringify(seen && { written: seen.written.length, failed: seen.failed.slice(0, 3) })}`);
  }
}

/** Deploys the tab and waits until its endpoints answer. */
export async function deploySalesforceTab(node: NodeRedProcess, flows: FlowNode[]): Promise<void> {
  await node.deploy(flows);
  await eventually('the deployed tab answering /results', async () => ((await fetch(`${node.editorUrl}/results`)).status === 200 ? true : undefined), 30_000);
}
