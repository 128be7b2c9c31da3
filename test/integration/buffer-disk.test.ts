/**
 * iot-buffer on real file systems that fail: a 3 MB tmpfs that fills up (ENOSPC) and a
 * read-only one (no permission to write the data folder). Every message is either accepted or
 * refused on the error output with a code, the node never crashes, it says what is wrong in its
 * status, and it recovers by itself once the disk has room or the folder can be written.
 */
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import bufferNode from '../../nodes/buffer/buffer';
import { LocalStore, type LocalMessage } from '../../nodes/buffer/local-store';
import type { StoreError } from '../../nodes/buffer/store';
import type { FlowNode } from '../support/buffer-flow';
import { helper } from '../support/node-red';
import { mountTmpfs, type Mounted } from '../support/small-disk';
import { eventually } from '../support/wait';

const mounts: Mounted[] = [];
beforeAll(async () => {
  helper.settings({ userDir: tmpdir() });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterEach(async () => {
  await helper.unload();
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  for (const mount of mounts) mount.dispose();
});

/** A buffer on `dataDir`, at its defaults unless `settings` says otherwise. */
function flow(dataDir: string, settings: Record<string, string> = { fsyncWindow: '2', maxMessages: '0', maxSize: '0' }): FlowNode[] {
  return [
    { id: 'tab', type: 'tab' },
    { id: 'buf', type: 'iot-buffer', z: 'tab', dataDir, ...settings, wires: [['delivered'], [], ['control'], ['refused']] },
    { id: 'stored', type: 'complete', z: 'tab', scope: ['buf'], uncaught: false, wires: [['accepted']] },
    ...['delivered', 'control', 'refused', 'accepted'].map((id) => ({ id, type: 'helper', z: 'tab' })),
  ];
}

type BufferNode = Node & { receive(msg: NodeMessage): void; status: { args: Array<[{ text?: string; fill?: string }]> } };
const buffer = () => helper.getNode('buf') as unknown as BufferNode;
const lastStatus = () => buffer().status.args[buffer().status.args.length - 1]?.[0] ?? {};

/** Messages with a payload that reach a helper node. */
function collect(id: string): NodeMessage[] {
  const seen: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => {
    if (msg.payload !== undefined && msg.control === undefined) seen.push(msg);
  });
  return seen;
}

/** Messages sent one at a time, each until it is accepted (done: Complete) or refused. */
async function feed(count: number, size: number, from: number, accepted: NodeMessage[], refused: NodeMessage[]): Promise<{ acceptedIds: number[]; refusedIds: number[] }> {
  const acceptedIds: number[] = [];
  const refusedIds: number[] = [];
  for (let id = from; id < from + count; id++) {
    const [a, r] = [accepted.length, refused.length];
    buffer().receive({ payload: { id, fill: 'x'.repeat(size) } });
    await eventually(`message ${id} accepted or refused`, () => (accepted.length > a || refused.length > r ? true : undefined), 5_000, 2);
    (refused.length > r ? refusedIds : acceptedIds).push(id);
  }
  return { acceptedIds, refusedIds };
}

async function status(): Promise<Record<string, unknown>> {
  const reply = new Promise<NodeMessage>((resolve) => helper.getNode('control').once('input', resolve));
  buffer().receive({ control: 'status' });
  return (await reply).payload as Record<string, unknown>;
}

/** Appends `body`; resolves with the refusal's code, or null once stored. */
function append(store: LocalStore, body: string): Promise<string | null> {
  return new Promise((resolve) => store.append('k', Buffer.from(body), Date.now(), (err) => resolve(err ? err.code : null)));
}

/** Fills what is left of the disk under `dir` with a file (removed by the caller to make room). */
function fillDisk(file: string): void {
  const chunk = Buffer.alloc(4096, 1);
  for (;;) {
    try {
      writeFileSync(file, chunk, { flag: 'a' });
    } catch {
      return;
    }
  }
}

describe('the local store on a disk that fills up', () => {
  // The node's segment size at its defaults (1 GB most): one segment far larger than this disk.
  const SEGMENT = 64 * 1024 * 1024;
  const opened: LocalStore[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });
  async function openOn(dir: string): Promise<{ store: LocalStore; problems: StoreError[] }> {
    const store = new LocalStore({ dir, fsyncWindowMs: 2, segmentBytes: SEGMENT });
    opened.push(store);
    const problems: StoreError[] = [];
    store.onProblem = (err) => problems.push(err);
    await store.open();
    return { store, problems };
  }

  it('a 1 MB disk filled by the queue is free again once the queue drained: later messages are stored and handed out', async () => {
    const disk = mountTmpfs(1024 * 1024);
    mounts.push(disk);
    const { store } = await openOn(join(disk.path, 'queue'));
    const body = (n: number) => `m${n}`.padEnd(2_000, '.');
    let stored = 0;
    for (let n = 0; ; n++) {
      const code = await append(store, body(n));
      if (code !== null) {
        expect(code).toBe('disk_full');
        break;
      }
      stored++;
    }
    expect(stored).toBeGreaterThan(100);
    const drained: LocalMessage[] = [];
    for (let taken = store.take(1000); taken.length > 0; taken = store.take(1000)) drained.push(...taken);
    expect(drained.length).toBe(stored);
    await new Promise<void>((resolve, reject) => store.settle(drained, (err) => (err ? reject(err) : resolve())));
    expect(store.messages).toBe(0);

    const refusedAfterDrain: string[] = [];
    for (let n = 0; n < 100; n++) {
      const code = await append(store, body(10_000 + n));
      if (code !== null) refusedAfterDrain.push(`${n}: ${code}`);
    }
    expect(refusedAfterDrain).toEqual([]);
    expect(store.take(1000).map((m) => m.body.toString().slice(0, 6))).toEqual(Array.from({ length: 100 }, (_, n) => `m${10_000 + n}`));
  });

  it('a first append refused disk_full on a fresh store: what is stored after it is handed out', async () => {
    const disk = mountTmpfs(1024 * 1024);
    mounts.push(disk);
    const { store } = await openOn(join(disk.path, 'queue'));
    const filler = join(disk.path, 'filler');
    fillDisk(filler);
    expect(await append(store, 'first'.padEnd(10_000, '.'))).toBe('disk_full');
    rmSync(filler);
    expect(await append(store, 'second')).toBe(null);
    expect(await append(store, 'third')).toBe(null);
    expect(store.take(10).map((m) => m.body.toString())).toEqual(['second', 'third']);
  });
});

describe('iot-buffer on failing disks', () => {
  it('refuses with disk_full when the disk is full, keeps what it accepted, and recovers once the queue drained', async () => {
    const disk = mountTmpfs(3 * 1024 * 1024);
    mounts.push(disk);
    await helper.load(bufferNode, flow(join(disk.path, 'queue')));
    const [refused, delivered, accepted] = ['refused', 'delivered', 'accepted'].map(collect);
    await eventually('the store open', async () => ((await status()).depth !== undefined ? true : undefined));
    buffer().receive({ control: 'pause' });
    const first = await feed(100, 50_000, 0, accepted, refused);
    expect(first.acceptedIds.length).toBeGreaterThan(10);
    expect(first.refusedIds.length).toBeGreaterThan(10);
    expect(first.acceptedIds.length + first.refusedIds.length).toBe(100);
    expect(refused.every((m) => (m.error as { code: string }).code === 'disk_full')).toBe(true);
    expect((refused[0].error as { message: string }).message).toMatch(/the disk is full/);
    await eventually('the status says so', () => (lastStatus().text?.includes('disk_full') ? true : undefined), 5_000);
    expect(lastStatus().fill).toBe('red');
    expect(await status()).toMatchObject({ depth: first.acceptedIds.length, refused: first.refusedIds.length });

    // Deliver and acknowledge everything: the drained queue gives its space back.
    helper.getNode('delivered').on('input', (msg: NodeMessage) => buffer().receive({ _delivery: msg._delivery }));
    buffer().receive({ control: 'resume' });
    await eventually('all accepted delivered', () => (delivered.length === first.acceptedIds.length ? true : undefined), 10_000);
    expect(delivered.map((m) => (m.payload as { id: number }).id)).toEqual(first.acceptedIds);
    await eventually('an empty queue', async () => ((await status()).depth === 0 ? true : undefined), 10_000);
    const later = await feed(10, 50_000, 1_000, accepted, refused);
    expect(later.refusedIds).toEqual([]);
  });

  it('at its defaults on a 1 MB disk: once the queue that filled the disk drained, later messages are accepted and delivered', async () => {
    const disk = mountTmpfs(1024 * 1024);
    mounts.push(disk);
    await helper.load(bufferNode, flow(join(disk.path, 'queue'), {}));
    const [refused, delivered, accepted] = ['refused', 'delivered', 'accepted'].map(collect);
    await eventually('the store open', async () => ((await status()).depth !== undefined ? true : undefined));
    buffer().receive({ control: 'pause' });
    const first = await feed(600, 2_000, 0, accepted, refused);
    expect(first.refusedIds.length).toBeGreaterThan(10);
    expect(refused.map((m) => (m.error as { code: string }).code)).toEqual(first.refusedIds.map(() => 'disk_full'));

    helper.getNode('delivered').on('input', (msg: NodeMessage) => buffer().receive({ _delivery: msg._delivery }));
    buffer().receive({ control: 'resume' });
    await eventually('all accepted delivered', () => (delivered.length === first.acceptedIds.length ? true : undefined), 10_000);
    await eventually('an empty queue', async () => ((await status()).depth === 0 ? true : undefined), 10_000);
    const later = await feed(20, 2_000, 1_000, accepted, refused);
    expect(later.refusedIds).toEqual([]);
    await eventually('the later messages delivered', () => (delivered.length === first.acceptedIds.length + 20 ? true : undefined), 10_000);
    expect(delivered.slice(first.acceptedIds.length).map((m) => (m.payload as { id: number }).id)).toEqual(later.acceptedIds);
    await eventually('the status green again', () => (lastStatus().fill === 'green' ? true : undefined), 5_000).catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(lastStatus())}`); });
  });

  it('a fresh buffer whose first message was refused disk_full delivers the messages it stores after it', async () => {
    const disk = mountTmpfs(1024 * 1024);
    mounts.push(disk);
    await helper.load(bufferNode, flow(join(disk.path, 'queue'), {}));
    const [refused, delivered] = ['refused', 'delivered'].map(collect);
    await eventually('the store open', async () => ((await status()).depth !== undefined ? true : undefined));
    const filler = join(disk.path, 'filler');
    fillDisk(filler);
    buffer().receive({ payload: { id: 0, fill: 'x'.repeat(10_000) } });
    await eventually('the first message refused', () => (refused.length === 1 ? true : undefined));
    expect((refused[0].error as { code: string }).code).toBe('disk_full');
    rmSync(filler);
    buffer().receive({ payload: { id: 1 } });
    buffer().receive({ payload: { id: 2 } });
    await eventually('both delivered', () => (delivered.length === 2 ? true : undefined), 5_000).catch((err) => {
      throw new Error(`${err.message}: delivered ${JSON.stringify(delivered.map((m) => m.payload))}, refused ${refused.length}, status ${JSON.stringify(lastStatus())}`);
    });
    expect(delivered.map((m) => (m.payload as { id: number }).id)).toEqual([1, 2]);
  });

  it('a buffer that could not open on a full disk delivers what it stores once it opened', async () => {
    const disk = mountTmpfs(1024 * 1024);
    mounts.push(disk);
    const filler = join(disk.path, 'filler');
    fillDisk(filler);
    await helper.load(bufferNode, flow(join(disk.path, 'queue'), {}));
    const [refused, delivered] = ['refused', 'delivered'].map(collect);
    await eventually('the status says so', () => (lastStatus().text?.startsWith('disk_full') ? true : undefined), 5_000);
    buffer().receive({ payload: { id: 0 } });
    await eventually('the first message refused', () => (refused.length === 1 ? true : undefined));
    expect((refused[0].error as { code: string }).code).toBe('disk_full');
    rmSync(filler);
    await eventually('the store open by itself', async () => ((await status()).depth === 0 ? true : undefined), 20_000, 250);
    buffer().receive({ payload: { id: 1 } });
    buffer().receive({ payload: { id: 2 } });
    await eventually('both delivered', () => (delivered.length === 2 ? true : undefined), 5_000);
    expect(delivered.map((m) => (m.payload as { id: number }).id)).toEqual([1, 2]);
  });

  it('refuses with no_permission while the data folder cannot be written, and opens once it can', async () => {
    const disk = mountTmpfs(1024 * 1024, { readOnly: true });
    mounts.push(disk);
    await helper.load(bufferNode, flow(disk.path));
    const refused = collect('refused');
    await eventually('the status says so', () => (lastStatus().text?.startsWith('no_permission') ? true : undefined), 5_000);
    buffer().receive({ payload: 'not stored' });
    await eventually('a refusal', () => (refused.length === 1 ? true : undefined));
    expect(refused[0].error).toMatchObject({ code: 'no_permission', message: expect.stringContaining(disk.path) });
    expect((refused[0].error as { message: string }).message).toMatch(/no permission/);

    const remount = spawnSync(process.getuid?.() === 0 ? 'mount' : 'sudo', [...(process.getuid?.() === 0 ? [] : ['-n', 'mount']), '-o', 'remount,rw', disk.path]);
    expect(remount.status).toBe(0);
    await eventually('the store open by itself', async () => ((await status()).depth === 0 ? true : undefined), 20_000, 250);
    buffer().receive({ payload: 'stored now' });
    await eventually('a delivery', async () => ((await status()).delivered === 1 ? true : undefined));
  });
});
