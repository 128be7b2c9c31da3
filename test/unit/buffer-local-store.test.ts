/**
 * The local backend (nodes/buffer/local-store.ts) on real files: acceptance only after fsync,
 * order, settlement, segments rolled and deleted, recovery from summaries and from scans, torn
 * and corrupt records, attempts kept, purge, pinned segments copied away, the folder lock.
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalStore, type LocalMessage } from '../../nodes/buffer/local-store';
import { SEGMENT_HEADER_BYTES } from '../../nodes/buffer/records';
import type { StoreError } from '../../nodes/buffer/store';

const dirs: string[] = [];
const stores: LocalStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'iot-buffer-store-'));
  dirs.push(dir);
  return dir;
}

async function opened(dir: string, options: { segmentBytes?: number; fsyncWindowMs?: number; pendingLimitBytes?: number } = {}) {
  const store = new LocalStore({ dir, fsyncWindowMs: options.fsyncWindowMs ?? 2, segmentBytes: options.segmentBytes ?? 1024 * 1024, pendingLimitBytes: options.pendingLimitBytes });
  stores.push(store);
  const problems: StoreError[] = [];
  store.onProblem = (err) => problems.push(err);
  const report = await store.open();
  return { store, report, problems };
}

async function reopen(store: LocalStore, dir: string, options?: { segmentBytes?: number }) {
  await store.close();
  stores.splice(stores.indexOf(store), 1);
  return opened(dir, options);
}

function append(store: LocalStore, key: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => store.append(key, Buffer.from(text), Date.now(), (err) => (err ? reject(err) : resolve())));
}

async function appendAll(store: LocalStore, texts: string[], key = 'k'): Promise<void> {
  await Promise.all(texts.map((t) => append(store, key, t)));
}

function settle(store: LocalStore, messages: LocalMessage[]): Promise<void> {
  return new Promise((resolve, reject) => store.settle(messages, (err) => (err ? reject(err) : resolve())));
}

const bodies = (messages: LocalMessage[]) => messages.map((m) => m.body.toString());
const numbered = (from: number, to: number, pad = 0) => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`.padEnd(pad, '.'));

describe('the local store', () => {
  it('accepts a message only once its batch is written and synced', async () => {
    const dir = folder();
    const { store } = await opened(dir, { fsyncWindowMs: 60_000 });
    let accepted = false;
    store.append('k', Buffer.from('one'), Date.now(), () => (accepted = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(accepted).toBe(false);
    expect(store.take(10)).toEqual([]);
    store.flush();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(accepted).toBe(true);
    expect(bodies(store.take(10))).toEqual(['one']);
  });

  it('refuses with overloaded while more than its limit waits to be written, and accepts again once written', async () => {
    const dir = folder();
    const { store } = await opened(dir, { fsyncWindowMs: 60_000, pendingLimitBytes: 2_000 });
    const outcome = (text: string) => append(store, 'k', text).then(() => 'ok', (err: StoreError) => err.code);
    const pending = numbered(1, 10, 500).map(outcome);
    store.flush();
    // 529-byte records: four fit under 2,000 bytes waiting, the rest are refused.
    expect(await Promise.all(pending)).toEqual([...Array(4).fill('ok'), ...Array(6).fill('overloaded')]);
    const after = outcome('after the write');
    store.flush();
    expect(await after).toBe('ok');
  });

  it('hands messages out once, in order, with key, time and size, and keeps what is not settled', async () => {
    const dir = folder();
    const { store } = await opened(dir);
    const before = Date.now();
    await appendAll(store, numbered(1, 5));
    expect(store.messages).toBe(5);
    const first = store.take(2);
    expect(bodies(first)).toEqual(['m1', 'm2']);
    expect(first[0]).toMatchObject({ key: 'k', attempts: 0 });
    expect(first[0].acceptedAt).toBeGreaterThanOrEqual(before);
    expect(first[0].size).toBe(store.sizeOf('k', Buffer.from('m1')));
    expect(bodies(store.take(10))).toEqual(['m3', 'm4', 'm5']);
    await settle(store, [first[0]]);
    expect(store.messages).toBe(4);
    const again = await reopen(store, dir);
    expect(again.report).toMatchObject({ messages: 4, problems: [] });
    expect(bodies(again.store.take(10))).toEqual(['m2', 'm3', 'm4', 'm5']);
  });

  it('settling twice counts once, and settling after a restart works on the new handle', async () => {
    const dir = folder();
    const { store } = await opened(dir);
    await appendAll(store, ['a', 'b']);
    const [a] = store.take(1);
    await settle(store, [a]);
    await settle(store, [a]);
    expect(store.messages).toBe(1);
  });

  it('rolls segments and deletes each one once nothing in it waits', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 2048 });
    for (let i = 0; i < 10; i++) await appendAll(store, numbered(i * 10 + 1, i * 10 + 10, 100));
    expect(store.segmentCount).toBeGreaterThan(5);
    const all = store.take(1000);
    expect(all).toHaveLength(100);
    await settle(store, all.slice(0, 95));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(store.segmentCount).toBeLessThanOrEqual(2);
    expect(readdirSync(dir).filter((f) => f.endsWith('.seg')).length).toBe(store.segmentCount);
    const again = await reopen(store, dir, { segmentBytes: 2048 });
    expect(bodies(again.store.take(100)).map((b) => b.replace(/\.+$/, ''))).toEqual(numbered(96, 100));
  });

  it('restarts from segment summaries, and scans a segment whose summary is missing or wrong', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 4096 });
    for (let i = 0; i < 20; i++) await appendAll(store, numbered(i * 10 + 1, i * 10 + 10, 200));
    const taken = store.take(1000);
    await settle(store, taken.filter((_, i) => i % 3 === 0));
    store.noteAttempt(Object.assign(taken[1], { attempts: 2 }));
    await (await reopen(store, dir, { segmentBytes: 4096 })).store.close();
    stores.splice(0);
    const summaries = readdirSync(dir).filter((f) => f.endsWith('.sum'));
    expect(summaries.length).toBeGreaterThan(3);
    rmSync(join(dir, summaries[0]));
    writeFileSync(join(dir, summaries[1]), '123\n{"id":1}');
    const { store: restarted, report } = await opened(dir, { segmentBytes: 4096 });
    expect(report.problems).toEqual([]);
    const expected = taken.filter((_, i) => i % 3 !== 0);
    expect(report.messages).toBe(expected.length);
    const left = restarted.take(1000);
    expect(bodies(left)).toEqual(bodies(expected));
    expect(left[0].attempts).toBe(2);
    expect(left[1].attempts).toBe(0);
  });

  it('cuts a torn write at the end of the newest segment and keeps everything before it', async () => {
    const dir = folder();
    const { store } = await opened(dir);
    await appendAll(store, numbered(1, 50, 300));
    await store.close();
    stores.splice(0);
    const segment = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg')) as string);
    const size = statSync(segment).size;
    truncateSync(segment, size - 100);
    appendFileSync(segment, Buffer.alloc(37, 0xab));
    const { store: again, report } = await opened(dir);
    expect(report.messages).toBe(49);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(/unfinished write at the end/);
    expect(bodies(again.take(100)).map((b) => b.replace(/\.+$/, ''))).toEqual(numbered(1, 49));
    await appendAll(again, ['after']);
    const third = await reopen(again, dir);
    expect(third.report.problems).toEqual([]);
    expect(third.report.messages).toBe(50);
  });

  it('skips a corrupt record in the middle, keeps the records after it, and says what was lost', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 8192 });
    for (let i = 0; i < 10; i++) await appendAll(store, numbered(i * 10 + 1, i * 10 + 10, 200));
    await store.close();
    stores.splice(0);
    const segments = readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
    expect(segments.length).toBeGreaterThan(2);
    // A sealed segment with its summary intact: the damage is found when the record is read.
    const sealed = join(dir, segments[0]);
    const bytes = readFileSync(sealed);
    bytes[SEGMENT_HEADER_BYTES + 250] ^= 0xff;
    writeFileSync(sealed, bytes);
    // The newest segment is scanned at start-up: the damage is found then.
    const newest = join(dir, segments[segments.length - 1]);
    const newestBytes = readFileSync(newest);
    newestBytes[SEGMENT_HEADER_BYTES + 40] ^= 0xff;
    writeFileSync(newest, newestBytes);

    const { store: again, report, problems } = await opened(dir, { segmentBytes: 8192 });
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(/damaged byte\(s\) at 16 .*skipped/);
    const left = bodies(again.take(1000)).map((b) => b.replace(/\.+$/, ''));
    expect(left).toHaveLength(98);
    expect(left).not.toContain('m2');
    expect(left.slice(0, 3)).toEqual(['m1', 'm3', 'm4']);
    expect(problems.map((p) => p.code)).toContain('store_corrupt');
    expect(problems.map((p) => p.message).join('\n')).toMatch(/1 message\(s\) of .* could not be read back/);
    expect(again.messages).toBe(98);
  });

  it('moves aside a file that is no segment of this store', async () => {
    const dir = folder();
    const { store } = await opened(dir);
    await appendAll(store, ['kept']);
    await store.close();
    stores.splice(0);
    writeFileSync(join(dir, '0000000000000000.seg'), 'not a segment at all');
    const { store: again, report } = await opened(dir);
    expect(report.problems.join()).toMatch(/0000000000000000\.seg is not a segment of this store.*moved aside/);
    expect(existsSync(join(dir, '0000000000000000.seg.corrupt'))).toBe(true);
    expect(bodies(again.take(10))).toEqual(['kept']);
  });

  it('quietly removes a newest segment that a dying process created but never wrote', async () => {
    const dir = folder();
    const { store } = await opened(dir);
    await appendAll(store, ['kept']);
    await store.close();
    stores.splice(0);
    writeFileSync(join(dir, '0000000000000009.seg'), '');
    writeFileSync(join(dir, '0000000000000001.sum.tmp'), '{"half');
    const { store: again, report } = await opened(dir);
    expect(report.problems).toEqual([]);
    expect(existsSync(join(dir, '0000000000000009.seg'))).toBe(false);
    expect(existsSync(join(dir, '0000000000000001.sum.tmp'))).toBe(false);
    expect(bodies(again.take(10))).toEqual(['kept']);
  });

  it('purges everything, durably, and keeps what is appended after the purge', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 4096 });
    await appendAll(store, numbered(1, 60, 100));
    const handed = store.take(5);
    const removed = await new Promise<number>((resolve, reject) => store.purge((err, n) => (err ? reject(err) : resolve(n))));
    expect(removed).toBe(60);
    expect(store.messages).toBe(0);
    expect(store.take(10)).toEqual([]);
    await settle(store, handed);
    expect(store.messages).toBe(0);
    await appendAll(store, ['after-1', 'after-2']);
    const again = await reopen(store, dir, { segmentBytes: 4096 });
    expect(again.report.messages).toBe(2);
    expect(bodies(again.store.take(10))).toEqual(['after-1', 'after-2']);
    expect(again.store.segmentCount).toBeLessThanOrEqual(2);
  });

  it('hands out what is appended after a purge without a restart (the cursor leaves the purged segment for the next)', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 4096 });
    await appendAll(store, numbered(1, 60, 100));
    const handed = store.take(60);
    await new Promise<number>((resolve, reject) => store.purge((err, n) => (err ? reject(err) : resolve(n))));
    await settle(store, handed);
    await appendAll(store, ['after-1', 'after-2']);
    expect(bodies(store.take(10))).toEqual(['after-1', 'after-2']);
    await appendAll(store, ['after-3']);
    expect(bodies(store.take(10))).toEqual(['after-3']);
  });

  it('copies the few messages that pin an old segment to the head, so the segment can go', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 4096 });
    await appendAll(store, numbered(1, 10, 200));
    const [pinned] = store.take(1);
    const body = pinned.body.toString();
    // Delivered: its body is read again from the file when wanted (here by the copy).
    pinned.dropBody();
    for (let round = 0; round < 8; round++) {
      await appendAll(store, numbered(100 + round * 10, 109 + round * 10, 200));
      await settle(store, store.take(100));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(store.segmentCount).toBeLessThanOrEqual(3);
    expect(store.messages).toBe(1);
    expect(pinned.body.toString()).toBe(body);
    const again = await reopen(store, dir, { segmentBytes: 4096 });
    expect(again.report).toMatchObject({ messages: 1, problems: [] });
    expect(bodies(again.store.take(10))).toEqual([body]);
  });

  it('gives the disk space back once the queue is drained', async () => {
    const dir = folder();
    const { store } = await opened(dir, { segmentBytes: 8 * 1024 * 1024 });
    await appendAll(store, numbered(1, 300, 5000));
    const segment = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg')) as string);
    expect(statSync(segment).size).toBeGreaterThan(1024 * 1024);
    await settle(store, store.take(1000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(statSync(segment).size).toBe(SEGMENT_HEADER_BYTES);
    await appendAll(store, ['after']);
    const again = await reopen(store, dir, { segmentBytes: 8 * 1024 * 1024 });
    expect(again.report).toMatchObject({ messages: 1, problems: [] });
    expect(bodies(again.store.take(10))).toEqual(['after']);
  });

  it('refuses a second store on the same folder', async () => {
    const dir = folder();
    await opened(dir);
    await expect(opened(dir)).rejects.toMatchObject({ code: 'store_locked' });
  });

  it('reports a data folder it cannot create with a coded error', async () => {
    const dir = folder();
    writeFileSync(join(dir, 'file'), 'x');
    await expect(opened(join(dir, 'file', 'queue'))).rejects.toMatchObject({ code: 'io_error', message: expect.stringContaining('cannot create the data folder') });
  });

  it('refuses appends after close', async () => {
    const dir = folder();
    const { store } = await opened(dir);
    await store.close();
    await expect(append(store, 'k', 'late')).rejects.toMatchObject({ code: 'closed' });
  });
});
