/**
 * A node's state on disk: a snapshot, written now and then, plus a journal of the changes made
 * since, appended as they happen. A crash (even kill -9) loses no journalled change: the
 * journal is written with a plain write() before the caller goes on, and the kernel keeps it.
 *
 * Files, for name N in dir D:
 *   D/N.json          the last complete snapshot (replaced atomically by rename)
 *   D/N.journal       changes since the snapshot being written or the last one
 *   D/N.journal.prev  changes from before the snapshot being written; gone once it is written
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface LoadedState<S, E> {
  snapshot: S | undefined;
  /** Journal entries in the order written: apply them after the snapshot. */
  entries: E[];
  /** Anything that could not be read back (a torn last line after a crash, a corrupt file). */
  problems: string[];
}

export class StateFile<S, E> {
  private readonly snapshotPath: string;
  private readonly journalPath: string;
  private readonly previousPath: string;
  private journalFd: number | undefined;
  private saving: Promise<void> | undefined;

  constructor(dir: string, name: string) {
    const safe = name.replace(/[^A-Za-z0-9._-]/g, '_');
    mkdirSync(dir, { recursive: true });
    this.snapshotPath = join(dir, `${safe}.json`);
    this.journalPath = join(dir, `${safe}.journal`);
    this.previousPath = `${this.journalPath}.prev`;
  }

  load(): LoadedState<S, E> {
    const problems: string[] = [];
    let snapshot: S | undefined;
    if (existsSync(this.snapshotPath)) {
      try {
        snapshot = JSON.parse(readFileSync(this.snapshotPath, 'utf8')) as S;
      } catch (err) {
        problems.push(`snapshot ${this.snapshotPath} is unreadable (${(err as Error).message}); journal changes since it are still applied`);
      }
    }
    const entries = [...this.readJournal(this.previousPath, problems), ...this.readJournal(this.journalPath, problems)];
    return { snapshot, entries, problems };
  }

  /** Records one change; it survives a crash of the process once this returns. */
  append(entry: E): void {
    this.appendAll([entry]);
  }

  /** Records several changes with one write. */
  appendAll(entries: readonly E[]): void {
    if (entries.length === 0) return;
    this.journalFd ??= openSync(this.journalPath, 'a');
    writeSync(this.journalFd, `${entries.map((entry) => JSON.stringify(entry)).join('\n')}\n`);
  }

  /**
   * Replaces the snapshot. Take `snapshot` right before calling: changes appended after this
   * call starts go to a fresh journal and are applied on top of it when loading.
   */
  save(snapshot: S): Promise<void> {
    if (this.saving) return this.saving;
    let text: string;
    try {
      text = JSON.stringify(snapshot);
    } catch (err) {
      // A snapshot that does not serialize is a failed save, never an uncaught throw from a timer.
      return Promise.reject(err as Error);
    }
    this.rotateJournal();
    this.saving = this.writeSnapshot(text).finally(() => {
      this.saving = undefined;
    });
    return this.saving;
  }

  /** The same as save(), finished before it returns: for shutdown. */
  saveSync(snapshot: S): void {
    this.rotateJournal();
    const tmp = `${this.snapshotPath}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify(snapshot));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.snapshotPath);
    rmSync(this.previousPath, { force: true });
  }

  /** Waits for a save under way, then closes the journal. */
  async close(): Promise<void> {
    await this.saving?.catch(() => undefined);
    if (this.journalFd !== undefined) closeSync(this.journalFd);
    this.journalFd = undefined;
  }

  /** Deletes every file of this state (the node was removed from the flow). */
  async remove(): Promise<void> {
    await this.close();
    for (const path of [this.snapshotPath, this.journalPath, this.previousPath, `${this.snapshotPath}.tmp`]) {
      await rm(path, { force: true });
    }
  }

  private async writeSnapshot(text: string): Promise<void> {
    const tmp = `${this.snapshotPath}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.snapshotPath);
    await rm(this.previousPath, { force: true });
  }

  /** Moves the current journal aside (appending to a .prev left by a failed save). */
  private rotateJournal(): void {
    if (this.journalFd !== undefined) closeSync(this.journalFd);
    this.journalFd = undefined;
    if (!existsSync(this.journalPath)) return;
    if (existsSync(this.previousPath)) {
      const fd = openSync(this.previousPath, 'a');
      try {
        writeSync(fd, readFileSync(this.journalPath));
      } finally {
        closeSync(fd);
      }
      rmSync(this.journalPath);
    } else {
      renameSync(this.journalPath, this.previousPath);
    }
  }

  private readJournal(path: string, problems: string[]): E[] {
    if (!existsSync(path)) return [];
    const lines = readFileSync(path, 'utf8').split('\n');
    const entries: E[] = [];
    let unreadable = 0;
    for (const line of lines) {
      if (line === '') continue;
      try {
        entries.push(JSON.parse(line) as E);
      } catch {
        unreadable++;
      }
    }
    if (unreadable > 0) problems.push(`${unreadable} unreadable line(s) in ${path} skipped`);
    return entries;
  }
}
