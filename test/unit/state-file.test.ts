/**
 * The state file nodes keep across restarts: a snapshot plus a journal of the changes since.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeState } from '../../nodes/shared/node-state';
import { StateFile } from '../../nodes/shared/state-file';

describe('StateFile', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const fresh = () => {
    const dir = mkdtempSync(join(tmpdir(), 'state-file-'));
    dirs.push(dir);
    return dir;
  };

  it('gives back the snapshot and the journal written after it, in order', async () => {
    const dir = fresh();
    const file = new StateFile<{ n: number }, { e: number }>(dir, 'thing');
    file.append({ e: 1 });
    await file.save({ n: 1 });
    file.append({ e: 2 });
    file.append({ e: 3 });
    const loaded = new StateFile<{ n: number }, { e: number }>(dir, 'thing').load();
    expect(loaded).toEqual({ snapshot: { n: 1 }, entries: [{ e: 2 }, { e: 3 }], problems: [] });
    await file.close();
  });

  it('keeps entries written while a save is under way', async () => {
    const dir = fresh();
    const file = new StateFile<{ n: number }, { e: number }>(dir, 'thing');
    file.append({ e: 1 });
    const saving = file.save({ n: 1 });
    file.append({ e: 2 });
    await saving;
    expect(new StateFile(dir, 'thing').load().entries).toEqual([{ e: 2 }]);
    await file.close();
  });

  it('after a crash in the middle of a save, replays both journals over the old snapshot', async () => {
    const dir = fresh();
    const file = new StateFile<{ n: number }, { e: number }>(dir, 'thing');
    await file.save({ n: 1 });
    file.append({ e: 1 });
    await file.close();
    // What a crash between moving the journal aside and writing the new snapshot leaves behind.
    writeFileSync(join(dir, 'thing.journal.prev'), readFileSync(join(dir, 'thing.journal')));
    writeFileSync(join(dir, 'thing.journal'), '{"e":2}\n');
    writeFileSync(join(dir, 'thing.json.tmp'), '{"n":');
    const loaded = new StateFile<{ n: number }, { e: number }>(dir, 'thing').load();
    expect(loaded.snapshot).toEqual({ n: 1 });
    expect(loaded.entries).toEqual([{ e: 1 }, { e: 2 }]);
  });

  it('skips a torn last line and an unreadable snapshot, and says so', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'thing.json'), '{"n": 1');
    writeFileSync(join(dir, 'thing.journal'), '{"e":1}\n{"e":2}\n{"e":');
    const loaded = new StateFile<{ n: number }, { e: number }>(dir, 'thing').load();
    expect(loaded.snapshot).toBeUndefined();
    expect(loaded.entries).toEqual([{ e: 1 }, { e: 2 }]);
    expect(loaded.problems).toHaveLength(2);
    expect(loaded.problems.join(' ')).toMatch(/unreadable/);
  });

  it('a second save after a failed one keeps the older journal too', async () => {
    const dir = fresh();
    const file = new StateFile<{ n: number }, { e: number }>(dir, 'thing');
    file.append({ e: 1 });
    // A save that could not finish leaves journal.prev behind.
    writeFileSync(join(dir, 'thing.journal.prev'), '{"e":0}\n');
    file.append({ e: 2 });
    file.saveSync({ n: 2 });
    expect(existsSync(join(dir, 'thing.journal.prev'))).toBe(false);
    appendFileSync(join(dir, 'thing.journal'), '{"e":3}\n');
    expect(new StateFile(dir, 'thing').load()).toMatchObject({ snapshot: { n: 2 }, entries: [{ e: 3 }] });
  });

  it('writes several entries at once, in order', () => {
    const dir = fresh();
    const file = new StateFile<{ n: number }, { e: number }>(dir, 'thing');
    file.appendAll([{ e: 1 }, { e: 2 }]);
    file.appendAll([]);
    file.append({ e: 3 });
    expect(new StateFile(dir, 'thing').load().entries).toEqual([{ e: 1 }, { e: 2 }, { e: 3 }]);
  });

  it('removes all its files', async () => {
    const dir = fresh();
    const file = new StateFile<{ n: number }, { e: number }>(dir, 'thing');
    file.append({ e: 1 });
    file.saveSync({ n: 1 });
    file.append({ e: 2 });
    await file.remove();
    expect(new StateFile(dir, 'thing').load()).toEqual({ snapshot: undefined, entries: [], problems: [] });
  });
});

describe('NodeState', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('journals at once, snapshots what changed, and says once when writing fails', async () => {
    const userDir = mkdtempSync(join(tmpdir(), 'node-state-'));
    dirs.push(userDir);
    const failures: string[] = [];
    let value = 1;
    const { state, saved } = NodeState.open<{ n: number }, { e: number }>(userDir, { name: 'n1', current: () => ({ n: value }), onFailure: (m) => failures.push(m), snapshotEveryMs: 20 });
    expect(saved).toEqual({ snapshot: undefined, entries: [], problems: [] });
    state.journal({ e: 1 });
    expect(NodeState.open(userDir, { name: 'n1', current: () => 0, onFailure: () => undefined }).saved.entries).toEqual([{ e: 1 }]);
    value = 2;
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(readFileSync(join(userDir, 'iot-state', 'n1.json'), 'utf8')).toBe('{"n":2}');
    rmSync(join(userDir, 'iot-state'), { recursive: true });
    writeFileSync(join(userDir, 'iot-state'), 'a file where the folder was');
    state.journal({ e: 2 });
    state.journal({ e: 3 });
    expect(failures).toHaveLength(1);
    expect(state.problem).toBeDefined();
    await state.close(false);
  });

  it('deletes its files when the node is removed', async () => {
    const userDir = mkdtempSync(join(tmpdir(), 'node-state-'));
    dirs.push(userDir);
    const { state } = NodeState.open<{ n: number }, { e: number }>(userDir, { name: 'n2', current: () => ({ n: 1 }), onFailure: () => undefined });
    state.journal({ e: 1 });
    await state.close(true);
    expect(existsSync(join(userDir, 'iot-state', 'n2.journal'))).toBe(false);
    expect(existsSync(join(userDir, 'iot-state', 'n2.json'))).toBe(false);
  });
});
