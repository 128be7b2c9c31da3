/**
 * Crash-loop protection in a real Node-RED (nodes/buffer/crash-record.ts).
 *
 * A reading that kills the process in a later tick (a node downstream throws from a promise when
 * it sees it: an unhandled rejection ends `npm start`) sits among 200 queued readings, with 100 in
 * flight at a time. Before the protection Node-RED died at every start, for ever. Now: the
 * messages out at the first death are each delivered alone, the innocent ones go through, the
 * poison one dies alone twice more and is then set aside as a dead letter; every other reading
 * is delivered and Node-RED stays up.
 *
 * And kill -9 at random moments while 100 messages have been in flight for the whole run (a sink
 * that holds them, as during a long outage) never sets an innocent message aside: a kill leaves
 * no record, only a death by exception does.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../../nodes/buffer/local-store';
import { bufferEndpoints, bufferStats, failureRecorders, fileSink, reportedFailures, type FlowNode } from '../support/buffer-flow';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually, sleep } from '../support/wait';

const work = mkdtempSync(join(tmpdir(), 'iot-buffer-crash-loop-'));
const running: NodeRedProcess[] = [];
afterAll(async () => {
  for (const node of running) await node.dispose();
  rmSync(work, { recursive: true, force: true });
});

const READINGS = 200;
const POISON = 60;

/** A tab whose buffer (100 in flight) delivers through `gate` to a file sink. */
function tab(prefix: string, gate: string): FlowNode[] {
  const z = `${prefix}.tab`;
  return [
    { id: z, type: 'tab', label: prefix },
    ...bufferEndpoints(prefix, `${prefix}.buffer`),
    ...failureRecorders(prefix),
    {
      id: `${prefix}.buffer`,
      type: 'iot-buffer',
      z,
      backend: 'local',
      order: 'fifo',
      maxInFlight: '100',
      ackTimeout: '330',
      maxAttempts: '0',
      maxMessages: '0',
      maxSize: '0',
      wires: [[`${prefix}.gate`], [`${prefix}.dead`], [`${prefix}.answer`], [`${prefix}.refused`]],
    },
    { id: `${prefix}.gate`, type: 'function', z, func: gate, outputs: 1, wires: [[`${prefix}.line`]] },
    ...fileSink(prefix, `${prefix}.buffer`, 'JSON.stringify(msg.payload.id)'),
  ];
}

/** Queues readings 0..count-1 in the buffer's folder before Node-RED starts. */
async function queueBeforeStart(dataDir: string, prefix: string, count: number): Promise<void> {
  const dir = join(dataDir, 'node-red', 'iot-buffer', `${prefix}.buffer`);
  mkdirSync(dir, { recursive: true });
  const store = new LocalStore({ dir, fsyncWindowMs: 0, segmentBytes: 4 * 1024 * 1024 });
  await store.open();
  await Promise.all(
    Array.from({ length: count }, (_, id) => new Promise<void>((resolve, reject) => store.append('', JSON.stringify({ payload: { id } }), Date.now(), (err) => (err ? reject(err) : resolve())))),
  );
  await store.close();
}

const idsIn = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map(Number) : []);
const missing = (file: string, except: number[] = []) => {
  const seen = new Set(idsIn(file));
  return Array.from({ length: READINGS }, (_, id) => id).filter((id) => !seen.has(id) && !except.includes(id));
};

describe('iot-buffer crash-loop protection', () => {
  it('sets aside a message that keeps killing Node-RED, after three deaths, and delivers every other one', async () => {
    const dataDir = join(work, 'poison');
    const delivered = join(work, 'poison.txt');
    await queueBeforeStart(dataDir, 'loop', READINGS);
    const gate = `if (msg.payload.id === ${POISON}) Promise.resolve().then(() => { throw new Error("poisoned reading"); });\nreturn msg;`;
    let node = await NodeRedProcess.start({ dataDir, flows: tab('loop', gate), env: { DELIVERED_FILE: delivered } });
    running.push(node);
    const exits: string[] = [];
    // Restart after every death, as a service manager does, until Node-RED keeps running.
    for (let start = 1; start <= 6; start++) {
      const exited = new Promise<number | null>((resolve) => node.child.once('exit', (code) => resolve(code)));
      const outcome = await Promise.race([exited.then((code) => `exit ${code}`), sleep(15_000).then(() => 'running')]);
      if (outcome === 'running') break;
      exits.push(outcome);
      node = await NodeRedProcess.start({ dataDir, env: { DELIVERED_FILE: delivered } });
      running.push(node);
    }
    expect(exits, node.output.slice(-2000)).toEqual(['exit 1', 'exit 1', 'exit 1']);
    await eventually('every reading but the poison one delivered', () => (missing(delivered, [POISON]).length === 0 ? true : undefined), 60_000);
    await eventually('the poison reading a dead letter', async () => ((await reportedFailures(node)).dead === 1 ? true : undefined), 30_000);
    expect(idsIn(delivered)).not.toContain(POISON);
    await eventually('an empty queue', async () => ((await bufferStats(node)).depth === 0 ? true : undefined), 30_000);
    expect(node.child.exitCode).toBeNull();
  });

  it('never sets a message aside for kill -9s, however long it has been in flight', async () => {
    const dataDir = join(work, 'kills');
    const delivered = join(work, 'kills.txt');
    await queueBeforeStart(dataDir, 'kills', READINGS);
    // The sink is down: it holds what it gets (in flight for the whole run) until /sink-up.
    const gate = 'if (!global.get("sinkUp")) { const held = context.get("held") || []; held.push(msg); context.set("held", held); return null; }\nreturn msg;';
    const up: FlowNode[] = [
      { id: 'kills.up', type: 'http in', z: 'kills.tab', url: '/sink-up', method: 'post', upload: false, wires: [['kills.release']] },
      {
        id: 'kills.release',
        type: 'function',
        z: 'kills.tab',
        func: 'global.set("sinkUp", true);\nconst held = flow.get("held") || [];\nreturn [[msg], held];',
        outputs: 2,
        wires: [['kills.answer'], ['kills.line']],
      },
    ];
    // The gate keeps what it holds where the release node finds it.
    const flow = [...tab('kills', gate.replace(/context\./g, 'flow.')), ...up];
    const kills: string[] = [];
    let node = await NodeRedProcess.start({ dataDir, flows: flow, env: { DELIVERED_FILE: delivered } });
    running.push(node);
    for (let k = 0; k < 5; k++) {
      // Some kills right after the start (while the in-flight messages are handed on again),
      // some once they have been in flight a while.
      const wait = k % 2 === 0 ? Math.random() * 300 : 1_000 + Math.random() * 2_000;
      await sleep(wait);
      kills.push(`${Math.round(wait)} ms after the start`);
      await node.crash();
      node = await NodeRedProcess.start({ dataDir, env: { DELIVERED_FILE: delivered } });
      running.push(node);
    }
    await eventually('100 in flight', async () => ((await bufferStats(node)).inFlight === 100 ? true : undefined), 30_000);
    const response = await fetch(`${node.editorUrl}/sink-up`, { method: 'POST' });
    expect(response.status).toBe(200);
    await eventually('every reading delivered', () => (missing(delivered).length === 0 ? true : undefined), 60_000);
    await eventually('an empty queue', async () => ((await bufferStats(node)).depth === 0 ? true : undefined), 30_000);
    expect((await reportedFailures(node)).dead, `kills: ${kills.join(', ')}`).toBe(0);
    expect(existsSync(join(dataDir, 'node-red', 'iot-buffer', 'kills.buffer', 'crashes.json'))).toBe(false);
  });
});
