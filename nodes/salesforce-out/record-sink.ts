/**
 * Where the output node's records go: batched (Batcher), written through the shared session
 * (writeRecords), and each record's outcome handled by the error policy. Records refused as
 * wrong go back at once; transient failures are retried with backoff up to `retries` times; a
 * whole call refused as wrong is split in halves until the wrong records are found, so one bad
 * record never sinks the others. While the org's API limit holds, nothing is sent (one call goes
 * through as a probe when the hold time is over); records a buffer upstream keeps are let go
 * unacknowledged, the others wait.
 *
 * No Node-RED here: the node passes callbacks that turn outcomes into messages.
 */
import type { LimitHold, SalesforceClient } from '../shared/salesforce-client';
import { Batcher, type Batch, type Entry } from './batcher';
import { backoffMs } from '../shared/backoff';
import { classifyCallError, duplicateOf, type Verdict } from './error-policy';
import type { Trouble } from './status';
import { writeRecords, type CallSpec, type Outcome } from './writer';

export type Written = Extract<Outcome, { ok: true }>;

export interface SinkCallbacks<T> {
  written(item: T, outcome: Written): void;
  /** `gaveUp`: retried `retries` times without success; else Salesforce refused the record. */
  failed(item: T, verdict: Verdict, gaveUp: boolean): void;
  /** Let go while the limit holds: its buffer keeps it and delivers it again once the hold is over. */
  released(item: T, hold: LimitHold): void;
  /** Counts or the session's state changed (for the status line). */
  changed(): void;
}

export interface SinkOptions<T> {
  spec: CallSpec;
  batchSize: number;
  batchDelayMs: number;
  parallel: number;
  retries: number;
  timeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Records that may wait; add() refuses more. */
  maxWaiting: number;
  /** Whether a buffer upstream keeps this item until it is acknowledged. */
  buffered(item: T): boolean;
}

const GROUP = 'records';
/** The least wait before trying again after a limit refusal. */
const MIN_HOLD_RETRY_MS = 1000;

type EntryResult<T> = [Entry<T>, Outcome];

export class RecordSink<T> {
  /** Records written, refused by Salesforce as wrong, failed after their retries, let go to a buffer during a hold. */
  readonly counts = { written: 0, refused: 0, failed: 0, released: 0 };
  /** What the latest calls met, until a record is written again. */
  trouble: Trouble | undefined;
  private readonly batcher: Batcher<T>;
  private readonly running = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closing = false;
  private releasedForHold = false;

  constructor(
    private readonly client: SalesforceClient,
    private readonly options: SinkOptions<T>,
    private readonly callbacks: SinkCallbacks<T>,
  ) {
    this.batcher = new Batcher<T>({ maxSize: options.batchSize, delayMs: options.batchDelayMs, maxInFlight: options.parallel });
  }

  /** Records waiting (held, batching or waiting for a retry). */
  get waiting(): number {
    return this.batcher.waiting;
  }

  /** Takes a record; false when too many wait already (the caller refuses the message). */
  add(key: string | undefined, record: Record<string, unknown>, item: T): boolean {
    if (this.batcher.waiting >= this.options.maxWaiting) return false;
    const hold = this.client.state().hold;
    // Once the hold time is over, a buffered record may be the probe: it is kept.
    if (hold && longHold(hold) && Date.now() < hold.until && this.options.buffered(item)) {
      this.counts.released++;
      this.callbacks.released(item, hold);
      this.callbacks.changed();
      return true;
    }
    this.batcher.add(GROUP, key, record, item, Date.now());
    this.pump(false);
    return true;
  }

  /** Sends what waits as soon as a call may be made, without waiting for the batch delay. */
  expedite(): void {
    this.batcher.expedite(Date.now());
    this.pump();
  }

  /** Sends what waits without waiting for the batch delay, waits for calls under way (at most graceMs), and returns the items left. */
  async close(graceMs: number): Promise<T[]> {
    this.closing = true;
    this.pump();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.running]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    if (this.timer) clearTimeout(this.timer);
    return this.batcher.remove(() => false).flatMap((e) => e.items);
  }

  /**
   * Sends what is due and sets the timer for what comes next. After an add, the next thing due is
   * that record's batch (`full` false spares a look at every waiting record on every message).
   */
  private pump(full = true): void {
    const now = Date.now();
    const hold = this.client.state().hold;
    let maxCalls = this.options.parallel;
    if (hold) {
      // Buffered records let go once when a long hold starts; those arriving later, in add().
      if (!this.releasedForHold && longHold(hold)) {
        this.release(hold);
        this.releasedForHold = true;
      }
      // While the limit holds, no call; once the hold time is over, one call: the probe.
      if (now < hold.until || this.batcher.calls > 0) {
        if (!this.closing) this.arm(Math.max(hold.until, now + MIN_HOLD_RETRY_MS));
        return;
      }
      maxCalls = 1;
    } else {
      this.releasedForHold = false;
    }
    for (const batch of this.batcher.take(now, this.closing, maxCalls)) {
      const run = this.write(batch).finally(() => this.running.delete(run));
      this.running.add(run);
    }
    if (this.closing) return;
    const wake = full ? this.batcher.nextWakeAt(now) : now + this.options.batchDelayMs;
    if (wake !== undefined) this.arm(wake);
  }

  private arm(at: number): void {
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.pump();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Lets go of waiting records a buffer keeps: handed back to it until the hold is over. */
  private release(hold: LimitHold): void {
    this.batcher.remove((entry) => {
      entry.items = this.keepUnbuffered(entry.items, hold);
      return entry.items.length > 0;
    });
  }

  /** The items no buffer keeps; the others are released (kept through a short hold). */
  private keepUnbuffered(items: T[], hold: LimitHold): T[] {
    if (!longHold(hold)) return items;
    return items.filter((item) => {
      if (!this.options.buffered(item)) return true;
      this.counts.released++;
      this.callbacks.released(item, hold);
      return false;
    });
  }

  private async write(batch: Batch<T>): Promise<void> {
    const results = await this.writeEntries(batch.entries);
    const retry: Array<{ entry: Entry<T>; readyAt: number }> = [];
    const now = Date.now();
    // One wait for everything of this call that failed for a passing reason, so that it goes
    // again as one call, not one call per record as separately drawn waits would send it.
    let again: number | undefined;
    let wrote = false;
    for (const [entry, outcome] of results) {
      if (outcome.ok) {
        wrote = true;
        this.counts.written += entry.items.length;
        for (const item of entry.items) this.callbacks.written(item, outcome);
        continue;
      }
      const { verdict } = outcome;
      const duplicate = entry.answerLost && this.options.spec.operation === 'create' ? duplicateOf(verdict) : undefined;
      if (verdict.kind === 'transient' && verdict.answerLost) entry.answerLost = true;
      if (duplicate !== undefined) {
        // A create whose answer was lost made its record: the retry met it. Written.
        const written: Written = { ok: true, created: true, ...(duplicate ? { id: duplicate } : {}) };
        wrote = true;
        this.counts.written += entry.items.length;
        for (const item of entry.items) this.callbacks.written(item, written);
      } else if (verdict.kind === 'invalid') {
        this.fail(entry, verdict, false);
      } else if (verdict.kind === 'limit') {
        const hold = this.client.state().hold ?? { reason: 'exceeded', until: now };
        entry.items = this.keepUnbuffered(entry.items, hold);
        if (entry.items.length > 0) retry.push({ entry, readyAt: Math.max(hold.until, now + MIN_HOLD_RETRY_MS) });
      } else if (++entry.attempts > this.options.retries) {
        this.fail(entry, verdict, true);
      } else {
        again ??= now + backoffMs(entry.attempts, this.options.backoffBaseMs, this.options.backoffMaxMs);
        // No call can be made before the session may log in again: retries are not spent meanwhile.
        const loginAt = verdict.kind === 'auth' ? (this.client.state().retryAt ?? 0) : 0;
        retry.push({ entry, readyAt: Math.max(again, loginAt) });
      }
    }
    this.batcher.finish(batch, retry);
    this.noteTrouble(wrote, results, again);
    this.callbacks.changed();
    this.pump();
  }

  /** A written record ends any trouble; else a retry to come, or records given up, is the news. */
  private noteTrouble(wrote: boolean, results: Array<EntryResult<T>>, again: number | undefined): void {
    if (wrote) {
      this.trouble = undefined;
      return;
    }
    let problem: Verdict | undefined;
    for (const [, outcome] of results) if (!outcome.ok && (outcome.verdict.kind === 'transient' || outcome.verdict.kind === 'auth')) problem ??= outcome.verdict;
    if (!problem) return;
    this.trouble = again !== undefined ? { kind: 'retrying', errorCode: problem.errorCode, at: again } : { kind: 'failing', errorCode: problem.errorCode };
  }

  private fail(entry: Entry<T>, verdict: Verdict, gaveUp: boolean): void {
    if (gaveUp) this.counts.failed += entry.items.length;
    else this.counts.refused += entry.items.length;
    for (const item of entry.items) this.callbacks.failed(item, verdict, gaveUp);
  }

  /** One call for the entries; a call refused as a whole is split until the wrong records show. */
  private async writeEntries(entries: Array<Entry<T>>): Promise<Array<EntryResult<T>>> {
    try {
      const outcomes = await this.client.call((conn) => writeRecords(conn, this.options.spec, entries.map((e) => e.record), this.options.timeoutMs));
      return entries.map((entry, i) => [entry, outcomes[i]]);
    } catch (err) {
      const verdict = classifyCallError(err);
      if (verdict.kind === 'invalid' && entries.length > 1) {
        const half = Math.ceil(entries.length / 2);
        return [...(await this.writeEntries(entries.slice(0, half))), ...(await this.writeEntries(entries.slice(half)))];
      }
      return entries.map((entry) => [entry, { ok: false, verdict }]);
    }
  }
}

/**
 * A hold for the daily allowance or its guard share lasts minutes or hours: records a buffer keeps
 * go back to it meanwhile. A hold for concurrent long requests lasts seconds: they wait here.
 */
function longHold(hold: LimitHold): boolean {
  return hold.reason !== 'concurrent';
}
