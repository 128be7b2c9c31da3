/**
 * Crash-loop protection: a message whose delivery kills the process would otherwise be delivered
 * again at every start, and kill it again, for ever.
 *
 * The rule. When the process dies of an uncaught exception or an unhandled rejection, the buffer
 * writes down, in that moment (synchronously, from Node's 'uncaughtExceptionMonitor', which
 * leaves the process's own handling of the exception as it is), which of its messages were out:
 * handed on and not yet settled. A kill -9, a power cut or the kernel's OOM killer run no code and
 * leave no record, so they count against no message, however long messages stay in flight. At the
 * next start every message written down counts one more death. A message with a death counted is
 * delivered alone: nothing else is handed on until its delivery is over (settled, failed, timed
 * out), so the next death by exception can only be its own. A delivery that is over without a
 * death clears its count ("in a row"). A message that reaches the limit (3 by default) is set
 * aside as a dead letter instead of being delivered again.
 *
 * The record lives in a small JSON file beside the queue: `{ suspects: { ref: { deaths, error } },
 * died?: { at, error, out: [ref...] } }`, where a ref names a message across restarts (the local
 * store's sequence number, the Redis entry id).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

interface Suspect {
  /** Deaths in a row while it was out. */
  deaths: number;
  /** What the process died of, the last time. */
  error: string;
}

interface RecordFile {
  suspects?: Record<string, Suspect>;
  died?: { at: number; error: string; out: string[] };
}

/** Records watching for a death, with what each had out: one process listener for all of them. */
const watching = new Map<CrashRecord, () => string[]>();

function onDeath(err: unknown): void {
  for (const [record, out] of watching) record.recordDeath(out(), err);
  // Still here on the next turn: something handled the exception and the process lives on.
  setImmediate(() => {
    for (const record of watching.keys()) record.retractDeath();
  });
}

export class CrashRecord {
  private suspects = new Map<string, Suspect>();
  /** Whether a death was written and the process may yet live on (someone handled the exception). */
  private deathWritten = false;

  /**
   * @param path the record file
   * @param limit deaths in a row after which a message is set aside (0: never)
   */
  constructor(
    readonly path: string,
    readonly limit: number,
  ) {}

  /** Whether any message has a death counted (checked per message only when there is). */
  get any(): boolean {
    return this.suspects.size > 0;
  }

  /**
   * Reads what the last run left: a death written there counts once for every message that was
   * out. Returns how many messages now have deaths counted, and a problem in words if the file
   * could not be read or written (the protection then starts afresh, it never stops delivery).
   */
  load(): { suspects: number; problem?: string } {
    let file: RecordFile = {};
    let problem: string | undefined;
    try {
      file = JSON.parse(readFileSync(this.path, 'utf8')) as RecordFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problem = `the crash record ${this.path} could not be read (${(err as Error).message}): counting starts afresh`;
    }
    this.suspects = new Map(Object.entries(file.suspects ?? {}));
    if (file.died) {
      for (const ref of file.died.out) {
        const known = this.suspects.get(ref);
        this.suspects.set(ref, { deaths: (known?.deaths ?? 0) + 1, error: file.died.error });
      }
    }
    try {
      this.save();
    } catch (err) {
      problem ??= `the crash record ${this.path} could not be written (${(err as Error).message})`;
    }
    return { suspects: this.suspects.size, problem };
  }

  /**
   * Writes, when the process dies of an uncaught exception or an unhandled rejection, what `out`
   * says was out then. Node's 'uncaughtExceptionMonitor' event leaves the process's own handling
   * of the exception (Node-RED's, or Node's default) exactly as it is.
   */
  watch(out: () => string[]): void {
    if (watching.size === 0) process.on('uncaughtExceptionMonitor', onDeath);
    watching.set(this, out);
  }

  unwatch(): void {
    if (!watching.delete(this)) return;
    if (watching.size === 0) process.off('uncaughtExceptionMonitor', onDeath);
  }

  /** Deaths in a row counted for a message. */
  deathsOf(ref: string): number {
    return this.suspects.get(ref)?.deaths ?? 0;
  }

  /** Why a message is set aside, in words. */
  reasonFor(ref: string): string {
    const suspect = this.suspects.get(ref);
    return `the process died ${suspect?.deaths ?? 0} times in a row while this message was being delivered (last: ${suspect?.error ?? 'unknown'})`;
  }

  /** A delivery of the message is over without a death: counting starts again. */
  survived(ref: string): void {
    if (!this.suspects.delete(ref)) return;
    try {
      this.save();
    } catch {
      // Kept in memory; the file says one death too many until the next write. Conservative.
    }
  }

  /** Written in the moment the process dies of an exception: the messages out at that moment. */
  recordDeath(out: string[], error: unknown): void {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    try {
      this.write({ suspects: Object.fromEntries(this.suspects), died: { at: Date.now(), error: text.slice(0, 200), out } });
      this.deathWritten = true;
    } catch {
      // Nothing more can be done while the process dies.
    }
  }

  /** The process lived on after the exception (a handler kept it): the death is taken back. */
  retractDeath(): void {
    if (!this.deathWritten) return;
    this.deathWritten = false;
    try {
      this.save();
    } catch {
      // As in survived().
    }
  }

  private save(): void {
    if (this.suspects.size === 0) rmSync(this.path, { force: true });
    else this.write({ suspects: Object.fromEntries(this.suspects) });
  }

  private write(file: RecordFile): void {
    writeFileSync(`${this.path}.tmp`, JSON.stringify(file));
    renameSync(`${this.path}.tmp`, this.path);
  }
}
