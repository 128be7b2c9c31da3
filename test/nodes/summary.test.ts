/**
 * iot-summary inside a Node-RED runtime: summaries per device and window, errors, flush, and
 * open windows that survive a redeploy and a crash.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import summaryModule from '../../nodes/summary/summary';
import { withMessages } from '../support/messages';
import { helper } from '../support/node-red';
import { eventually } from '../support/wait';

/** The node with its English messages, as an editor user reads them. */
const summaryNode = withMessages(summaryModule, 'summary');

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Summary = { id: string; key: string; start: number; end: number; count: number };

let userDir: string;
beforeAll(async () => new Promise<void>((resolve) => helper.startServer(resolve)));
afterAll(async () => new Promise<void>((resolve) => helper.stopServer(resolve)));
beforeEach(() => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-summary-'));
  helper.settings({ userDir });
});
afterEach(async () => {
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

function flow(props: Record<string, unknown>): Flow {
  return [
    { id: 'sum', type: 'iot-summary', wires: [['out'], ['errors']], ...props },
    { id: 'out', type: 'helper' },
    { id: 'errors', type: 'helper' },
  ];
}

function collect(): Record<'out' | 'errors', NodeMessage[]> {
  const seen = { out: [] as NodeMessage[], errors: [] as NodeMessage[] };
  helper.getNode('out').on('input', (msg: NodeMessage) => seen.out.push(msg));
  helper.getNode('errors').on('input', (msg: NodeMessage) => seen.errors.push(msg));
  return seen;
}

const node = () => helper.getNode('sum') as Node & { receive(msg: NodeMessage): void };
const lastStatus = () => (node().status as unknown as { lastCall?: { args: [{ fill: string; shape: string; text: string }] } }).lastCall?.args[0];
const settle = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));
async function send(...msgs: NodeMessage[]): Promise<void> {
  for (const msg of msgs) node().receive(msg);
  await settle();
}

describe('iot-summary node', () => {
  it('sends one summary per device when the window ends, with the device it came from', async () => {
    await helper.load(summaryNode, flow({ mode: 'time', windowValue: '1', windowUnit: 's' }));
    const seen = collect();
    const pump = { id: 'pump-1', meta: { assetId: 'A1' } };
    await send({ payload: { temperature: 20, battery: 3.6 }, device: pump }, { payload: { temperature: 26 }, device: pump }, { payload: 5, topic: 'tank-9' });
    await settle(1_100);
    const byKey = Object.fromEntries(seen.out.map((m) => [m.topic as string, m]));
    expect(Object.keys(byKey).sort()).toEqual(['pump-1', 'tank-9']);
    expect(byKey['pump-1'].payload).toMatchObject({ temperature: { count: 2, min: 20, max: 26, mean: 23, first: 20, last: 26 }, battery: { count: 1 } });
    expect(byKey['pump-1'].device).toEqual(pump);
    const summary = byKey['pump-1'].summary as Summary;
    expect(summary.id).toBe(`pump-1@${new Date(summary.start).toISOString()}`);
    expect(summary.end - summary.start).toBe(1_000);
    expect(summary.count).toBe(2);
    expect(byKey['tank-9'].payload).toEqual({ value: { count: 1, sum: 5, min: 5, max: 5, mean: 5, first: 5, last: 5 } });
  });

  it('closes count windows after N readings of a key', async () => {
    await helper.load(summaryNode, flow({ mode: 'count', count: '3' }));
    const seen = collect();
    await send(...[1, 2, 3, 4].map((v) => ({ payload: v, topic: 'k' })));
    expect(seen.out.map((m) => (m.payload as { value: { mean: number } }).value.mean)).toEqual([2]);
  });

  it('rejects what it cannot summarise, with a code', async () => {
    await helper.load(summaryNode, flow({ mode: 'time', windowValue: '1', windowUnit: 'h', timeSource: 'message' }));
    const seen = collect();
    await send({ payload: { door: 'open' }, topic: 'k' }, { payload: 'hot', topic: 'k' }, { payload: 3, topic: 'k', timestamp: 'yesterday-ish' }, { payload: 3, topic: 'k', timestamp: Date.now() });
    await send({ payload: 3, topic: 'k', timestamp: Date.now() - 2 * 3_600_000 });
    expect(seen.errors.map((m) => (m.error as { code: string }).code)).toEqual(['no_numeric_reading', 'no_numeric_reading', 'bad_timestamp', 'late_reading']);
    expect(seen.out).toEqual([]);
  });

  it('flushes every open window on msg.flush', async () => {
    await helper.load(summaryNode, flow({ mode: 'time', windowValue: '1', windowUnit: 'h' }));
    const seen = collect();
    await send({ payload: 1, topic: 'a' }, { payload: 2, topic: 'b' }, { flush: true });
    expect(seen.out.map((m) => m.topic)).toEqual(['a', 'b']);
  });

  it('keeps open windows across a redeploy', async () => {
    await helper.load(summaryNode, flow({ mode: 'count', count: '4' }));
    collect();
    await send({ payload: 1, topic: 'k' }, { payload: 2, topic: 'k' });
    await helper.unload();
    await helper.load(summaryNode, flow({ mode: 'count', count: '4' }));
    const seen = collect();
    await send({ payload: 3, topic: 'k' }, { payload: 10, topic: 'k' });
    expect(seen.out.map((m) => (m.payload as { value: object }).value)).toEqual([{ count: 4, sum: 16, min: 1, max: 10, mean: 4, first: 1, last: 10 }]);
  });

  it('keeps every reading through a crash: the journal alone restores the window', async () => {
    await helper.load(summaryNode, flow({ mode: 'count', count: '3' }));
    collect();
    await send({ payload: 1, topic: 'k' }, { payload: 2, topic: 'k' });
    // Keep only what a crash leaves: the journal, without the snapshot a clean stop writes.
    const crashed = join(userDir, 'crash-copy');
    cpSync(join(userDir, 'iot-state'), crashed, { recursive: true });
    await helper.unload();
    rmSync(join(userDir, 'iot-state'), { recursive: true });
    cpSync(crashed, join(userDir, 'iot-state'), { recursive: true });
    expect(readdirSync(join(userDir, 'iot-state'))).toEqual(['summary-sum.journal']);
    await helper.load(summaryNode, flow({ mode: 'count', count: '3' }));
    const seen = collect();
    await send({ payload: 6, topic: 'k' });
    expect(seen.out.map((m) => (m.payload as { value: { sum: number; count: number } }).value)).toMatchObject([{ count: 3, sum: 9 }]);
  });

  it('reports an invalid window in its status and rejects input', async () => {
    await helper.load(summaryNode, flow({ mode: 'time', windowValue: 'soon' }));
    const seen = collect();
    await send({ payload: 1 });
    expect((seen.errors[0].error as { code: string }).code).toBe('invalid_config');
    expect(lastStatus()).toEqual({ fill: 'red', shape: 'ring', text: 'invalid configuration' });
  });

  it('says what it counts: readings in open windows, and summaries sent', async () => {
    await helper.load(summaryNode, flow({ mode: 'count', count: '3' }));
    collect();
    await eventually('the first status', () => lastStatus());
    expect(lastStatus()).toEqual({ fill: 'grey', shape: 'ring', text: 'waiting for readings' });
    await send(...[1, 2, 3, 4].map((v) => ({ payload: v, topic: 'a' })), { payload: 5, topic: 'b' }, { payload: 6, topic: 'b' });
    await settle(600);
    expect(lastStatus()).toEqual({ fill: 'green', shape: 'dot', text: '3 readings in 2 open windows · 1 summary sent' });
  });

  it('turns yellow when its state cannot be saved, and says so', async () => {
    // A file where the state folder should be: the folder cannot be made.
    writeFileSync(join(userDir, 'iot-state'), 'not a folder');
    await helper.load(summaryNode, flow({ mode: 'count', count: '3' }));
    collect();
    await send({ payload: 1, topic: 'a' });
    await settle(600);
    expect(lastStatus()).toEqual({ fill: 'yellow', shape: 'ring', text: '1 reading in 1 open window · 0 summaries sent · state not saved' });
  });
});
