/**
 * A poison message in a real Node-RED: a reading nested 3,000 levels deep (6 KB) sits in an
 * iot-buffer's queue, stored there by a version that accepted it, between two good readings. The
 * buffer's delivered output is wired to two nodes (as the pattern flows wire the store and the
 * thresholds), so Node-RED clones every delivered message, and cloning this one overflows the
 * stack. Before the fix, Node-RED died at every start, and only deleting the queue ended it.
 *
 * What must hold: Node-RED starts and stays up, the good readings are delivered, and the poison
 * one leaves the queue as a dead letter that carries its content (as the stored text, which can
 * be routed where the object cannot) and says why.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../../nodes/buffer/local-store';
import { bufferedTab, bufferStats, fileSink, type FlowNode } from '../support/buffer-flow';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually, sleep } from '../support/wait';

const work = mkdtempSync(join(tmpdir(), 'iot-buffer-poison-'));
const deliveredFile = join(work, 'delivered.txt');
const running: NodeRedProcess[] = [];
afterAll(async () => {
  for (const node of running) await node.dispose();
  rmSync(work, { recursive: true, force: true });
});

function nested(levels: number): unknown {
  let value: unknown = { temperature: 21.5 };
  for (let i = 0; i < levels; i++) value = { inner: value };
  return value;
}

const tab = bufferedTab('poison', 'poison', ['poison.line', 'poison.thresholds'], { fsyncWindow: '5' });
const buffer = tab.find((n) => n.id === 'poison.buffer') as FlowNode & { wires: string[][] };
buffer.wires[1] = ['poison.dead', 'poison.letters'];
const flow: FlowNode[] = [
  ...tab,
  ...fileSink('poison', 'poison.buffer', 'JSON.stringify(msg.payload.id)'),
  // The second node on the delivered output (the pattern flows' thresholds): what makes Node-RED clone.
  { id: 'poison.thresholds', type: 'function', z: 'poison.tab', func: 'return null;', outputs: 1, wires: [] },
  {
    id: 'poison.letters',
    type: 'function',
    z: 'poison.tab',
    func: 'const letters = flow.get("letters") || [];\nletters.push({ reason: msg.deadLetter.reason, head: String(msg.payload).slice(0, 40), length: String(msg.payload).length });\nflow.set("letters", letters);\nreturn null;',
    outputs: 1,
    wires: [],
  },
  { id: 'poison.lettersIn', type: 'http in', z: 'poison.tab', url: '/letters', method: 'get', upload: false, wires: [['poison.lettersOut']] },
  { id: 'poison.lettersOut', type: 'function', z: 'poison.tab', func: 'msg.payload = flow.get("letters") || [];\nreturn msg;', outputs: 1, wires: [['poison.answer']] },
];

/** Stores readings in the buffer's folder the way an older version did: as they came. */
async function queueBeforeStart(dataDir: string, bodies: unknown[]): Promise<void> {
  const dir = join(dataDir, 'node-red', 'iot-buffer', 'poison.buffer');
  mkdirSync(dir, { recursive: true });
  const store = new LocalStore({ dir, fsyncWindowMs: 0, segmentBytes: 1024 * 1024 });
  await store.open();
  for (const body of bodies) {
    await new Promise<void>((resolve, reject) => store.append('', JSON.stringify({ _msgid: 'old', payload: body }), Date.now(), (err) => (err ? reject(err) : resolve())));
  }
  await store.close();
}

function deliveredIds(): string[] {
  return existsSync(deliveredFile) ? readFileSync(deliveredFile, 'utf8').split('\n').filter((l) => l !== '') : [];
}

describe('iot-buffer with a poison message in its queue', () => {
  it('starts, delivers the others, and sets the poison message aside as a dead letter with its content', async () => {
    const dataDir = join(work, 'data');
    await queueBeforeStart(dataDir, [{ id: 'before', temperature: 20 }, { id: 'poison', deep: nested(3_000) }, { id: 'after', temperature: 22 }]);
    const node = await NodeRedProcess.start({ dataDir, flows: flow, env: { DELIVERED_FILE: deliveredFile } });
    running.push(node);
    const exited = new Promise<string>((resolve) => node.child.once('exit', (code, signal) => resolve(`Node-RED exited (${code ?? signal}):\n${node.output.slice(-3000)}`)));
    const alive = <T>(description: string, probe: () => Promise<T | undefined>) =>
      Promise.race([eventually(description, probe, 30_000), exited.then((why) => Promise.reject(new Error(why)))]);

    const letters = await alive('a dead letter', async () => {
      const response = await fetch(`${node.editorUrl}/letters`);
      const list = (await response.json()) as Array<{ reason: string; head: string; length: number }>;
      return list.length > 0 ? list : undefined;
    });
    expect(letters).toHaveLength(1);
    expect(letters[0].reason).toMatch(/too_deep/);
    expect(letters[0].head).toBe('{"_msgid":"old","payload":{"id":"poison"');
    expect(letters[0].length).toBeGreaterThan(3_000 * 10);
    await alive('the good readings delivered', async () => (deliveredIds().length === 2 ? true : undefined));
    expect(deliveredIds()).toEqual(['"before"', '"after"']);
    await alive('an empty queue', async () => ((await bufferStats(node)).depth === 0 ? true : undefined));
    // And it stays up.
    await sleep(2_000);
    expect(node.child.exitCode, node.output.slice(-3000)).toBeNull();
    expect(node.output).not.toMatch(/Maximum call stack|Uncaught Exception/);
  });
});
