/**
 * Points in, batches out: a batch is sent when it holds `batchSize` points, when its input has
 * been quiet for `lingerMs` (the source has nothing more right now: a buffer waiting for
 * acknowledgements, a fleet between reports), when the caller asks (`flush`: a buffer said its
 * delivery was the last for now), or at the latest when its first point has waited
 * `flushIntervalMs`; with at most `maxInFlight` requests at a time. While every request slot is
 * taken the batch goes on filling, as a producer's does, and goes as soon as a slot is free. Every point carries
 * its owner (the message it came from) so that the caller learns, point by point, what was written
 * and what failed for good. Nothing is dropped: points past `maxPending` are refused at the door,
 * and every accepted point ends as written or failed.
 *
 * Failures follow write-outcome.ts: a retryable failure pauses all sending (one backoff for the
 * writer, not one per batch) and puts the batch back at the head; a 413 cuts the batch in two; a
 * 400 isolates the bad points by cutting the batch in two until each stands alone (the good ones
 * are written, points with the same series and time overwrite, so writing one twice is harmless).
 */
import { decide, describeError, type Failure, type RetryOptions } from './write-outcome';

export interface BatcherOptions {
  batchSize: number;
  /** Quiet input for this long sends what waits. */
  lingerMs: number;
  /** The longest the first point of a batch waits, however busy the input. */
  flushIntervalMs: number;
  maxInFlight: number;
  maxPending: number;
  retry: RetryOptions;
  /** For jitter; tests make it predictable. */
  random?: () => number;
}

/** Sends one request body (lines joined by newlines); rejects with the client library's errors. */
export type SendBody = (body: string, signal: AbortSignal) => Promise<void>;

export interface BatcherListener<O> {
  /** These points were written (one owner per point, repeated for several points of one owner). */
  written(owners: readonly O[]): void;
  /** These points failed for good. */
  failed(owners: readonly O[], lines: readonly string[], failure: Failure): void;
  /** A write failed and the batcher waits delayMs before the next attempt. */
  retrying(reason: string, delayMs: number): void;
}

/**
 * The most characters a request body holds: a batch is sent at this size whatever its count (a
 * string in V8 is at most 2^29 characters, and InfluxDB refuses bodies over 25 MB by default).
 */
export const MAX_BODY_LENGTH = 8 * 1_048_576;

/** The batch being filled. */
interface Filling<O> {
  lines: string[];
  owners: O[];
  /** Characters of its body so far. */
  length: number;
}

/**
 * A batch ready to be sent. Its lines are held as the request body alone: one large string costs
 * the garbage collector nothing while the request is under way (it is never copied), where
 * thousands of small ones would be copied again and again. The lines are cut back out of the body
 * only when the batch must be split or its points reported as failed.
 */
interface Batch<O> {
  /** The lines joined by newlines. */
  body: string;
  /** Where each line ends in the body (a string field may itself hold a newline). */
  ends: number[];
  owners: O[];
  /** When it was ready to be sent: giving up counts from here. */
  readyAt: number;
}

export class Batcher<O> {
  private current: Filling<O> = { lines: [], owners: [], length: 0 };
  /** When the first point of the batch being filled came. */
  private firstAt = 0;
  /** Whether the batch being filled is due: it goes as soon as a request slot is free. */
  private ripe = false;
  /** Messages taken, ever, and when the quiet check was armed: unchanged means quiet. */
  private added = 0;
  private addedAtCheck = 0;
  private readonly queue: Array<Batch<O>> = [];
  private readonly inFlight = new Set<AbortController>();
  private dueTimer: NodeJS.Timeout | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;
  private pausedUntil = 0;
  private failures = 0;
  private pendingPoints = 0;
  private closing = false;
  private idle: (() => void) | undefined;
  private readonly random: () => number;

  constructor(
    private readonly options: BatcherOptions,
    private readonly send: SendBody,
    private readonly listener: BatcherListener<O>,
  ) {
    this.random = options.random ?? Math.random;
  }

  /** Points accepted and not yet written or failed. */
  get pending(): number {
    return this.pendingPoints;
  }

  /** When the next attempt may start, while writes fail (0 otherwise). */
  get retryAt(): number {
    return this.pausedUntil > Date.now() ? this.pausedUntil : 0;
  }

  /**
   * Takes the points of one owner, all or none: false when they would pass the pending bound
   * (or the batcher is closing), so that the caller can say so.
   */
  add(lines: readonly string[], owner: O): boolean {
    if (this.closing || this.pendingPoints + lines.length > this.options.maxPending) return false;
    this.pendingPoints += lines.length;
    this.added++;
    for (const line of lines) {
      if (this.current.length + line.length >= MAX_BODY_LENGTH && this.current.lines.length > 0) this.seal();
      const batch = this.current;
      if (batch.lines.length === 0) this.firstAt = Date.now();
      batch.lines.push(line);
      batch.owners.push(owner);
      batch.length += line.length + 1;
      if (batch.lines.length >= this.options.batchSize) this.seal();
    }
    this.pump();
    return true;
  }

  /** Sends what is waiting as soon as a request slot is free, without waiting for more. */
  flush(): void {
    if (this.current.lines.length > 0) this.ripe = true;
    this.pump();
  }

  /**
   * Stops taking points and writes what it holds, for at most `deadlineMs`; what is still
   * unwritten then (or at once, while the database is failing) fails as not_written.
   */
  async close(deadlineMs: number): Promise<void> {
    this.closing = true;
    if (this.current.lines.length > 0) this.seal();
    if (this.pausedUntil > Date.now()) this.abandon('the node stopped while the database was failing: not written');
    else this.pump();
    await this.drained(deadlineMs);
    this.abandon('the node stopped before the database answered: not written');
    // Aborted requests fail as not_written a moment later.
    for (const request of this.inFlight) request.abort();
    await this.drained(1000);
    clearTimeout(this.dueTimer);
    clearTimeout(this.resumeTimer);
  }

  private async drained(timeoutMs: number): Promise<void> {
    if (this.pendingPoints === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((resolve) => (this.idle = resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private seal(): void {
    const filled = this.current;
    this.current = { lines: [], owners: [], length: 0 };
    this.ripe = false;
    this.queue.push(sealed(filled.lines, filled.owners, Date.now()));
  }

  private pump(): void {
    while (this.inFlight.size < this.options.maxInFlight && (this.queue.length > 0 || (this.ripe && this.current.lines.length > 0))) {
      const wait = this.pausedUntil - Date.now();
      if (wait > 0) {
        // A due batch waits in the queue, where giving up counts its time.
        if (this.ripe && this.current.lines.length > 0) this.seal();
        clearTimeout(this.resumeTimer);
        this.resumeTimer = setTimeout(() => this.pump(), wait);
        return;
      }
      if (this.queue.length === 0) this.seal();
      this.write(this.queue.shift() as Batch<O>);
    }
    this.armDueCheck();
  }

  /** Looks again after the linger (or when the first point has waited long enough). */
  private armDueCheck(): void {
    if (this.dueTimer || this.ripe || this.current.lines.length === 0) return;
    this.addedAtCheck = this.added;
    const wait = Math.min(this.options.lingerMs, this.firstAt + this.options.flushIntervalMs - Date.now());
    this.dueTimer = setTimeout(() => this.checkDue(), Math.max(0, wait));
  }

  private checkDue(): void {
    this.dueTimer = undefined;
    if (this.current.lines.length === 0) return;
    const quiet = this.added === this.addedAtCheck;
    if (quiet || Date.now() - this.firstAt >= this.options.flushIntervalMs) this.ripe = true;
    this.pump();
  }

  private write(batch: Batch<O>): void {
    const request = new AbortController();
    this.inFlight.add(request);
    this.send(batch.body, request.signal).then(
      () => {
        this.inFlight.delete(request);
        this.failures = 0;
        this.settle(batch.owners.length);
        this.listener.written(batch.owners);
        this.pump();
      },
      (error: unknown) => {
        this.inFlight.delete(request);
        this.handleFailure(batch, error);
        this.pump();
      },
    );
  }

  private handleFailure(batch: Batch<O>, error: unknown): void {
    if (this.closing) {
      this.fail(batch, { code: 'not_written', message: `the node stopped: ${describeError(error)}`, retry: true });
      return;
    }
    const decision = decide(error, this.failures + 1, this.options.retry, this.random);
    switch (decision.action) {
      case 'retry':
        this.retry(batch, decision.delayMs, decision.reason);
        return;
      case 'split':
        if (batch.owners.length === 1) this.fail(batch, { code: 'too_large', message: `the point is too large for the database: ${decision.reason}`, retry: false });
        else this.queue.unshift(...halves(batch));
        return;
      case 'isolate':
        this.isolate(batch, decision.reason, decision.lines);
        return;
      case 'fail':
        this.fail(batch, decision.failure);
        return;
    }
  }

  private retry(batch: Batch<O>, delayMs: number, reason: string): void {
    const now = Date.now();
    const giveUp = this.options.retry.giveUpAfterMs;
    if (giveUp > 0) {
      // Everything that has waited too long goes now, not one batch per give-up period.
      const failure: Failure = { code: 'write_failed', message: `not written after ${Math.round(giveUp / 1000)} s of retrying: ${reason}`, retry: true };
      for (let i = this.queue.length - 1; i >= 0; i--) {
        if (now - this.queue[i].readyAt >= giveUp) this.fail(this.queue.splice(i, 1)[0], failure);
      }
      if (now - batch.readyAt >= giveUp) {
        this.fail(batch, failure);
        return;
      }
    }
    this.queue.unshift(batch);
    // Requests in flight together fail together: one failure more, one pause, not one per request.
    if (this.pausedUntil <= now) {
      this.failures++;
      this.pausedUntil = now + delayMs;
      this.listener.retrying(reason, delayMs);
    }
  }

  private isolate(batch: Batch<O>, reason: string, named: Map<number, string> | undefined): void {
    if (named && named.size > 0) {
      const good: string[] = [];
      const owners: O[] = [];
      linesOf(batch).forEach((line, i) => {
        const message = named.get(i);
        if (message === undefined) {
          good.push(line);
          owners.push(batch.owners[i]);
        } else {
          this.fail(sealed([line], [batch.owners[i]], batch.readyAt), { code: 'point_rejected', message, retry: false });
        }
      });
      if (good.length > 0) this.queue.unshift(sealed(good, owners, batch.readyAt));
      return;
    }
    if (batch.owners.length === 1) this.fail(batch, { code: 'point_rejected', message: reason, retry: false });
    else this.queue.unshift(...halves(batch));
  }

  private fail(batch: Batch<O>, failure: Failure): void {
    this.settle(batch.owners.length);
    // The lines reported go out with their messages: copies, so that none keeps a whole body alive.
    this.listener.failed(batch.owners, linesOf(batch).map(detached), failure);
  }

  /** Fails everything not yet sent. */
  private abandon(message: string): void {
    const failure: Failure = { code: 'not_written', message, retry: true };
    for (const batch of this.queue.splice(0)) this.fail(batch, failure);
  }

  private settle(points: number): void {
    this.pendingPoints -= points;
    if (this.pendingPoints === 0 && this.idle) {
      this.idle();
      this.idle = undefined;
    }
  }
}

/** A batch ready to be sent: its lines joined into the body. */
function sealed<O>(lines: readonly string[], owners: O[], readyAt: number): Batch<O> {
  const ends = new Array<number>(lines.length);
  let end = -1;
  for (let i = 0; i < lines.length; i++) {
    end += lines[i].length + 1;
    ends[i] = end;
  }
  return { body: lines.join('\n'), ends, owners, readyAt };
}

/** The lines of a sealed batch, cut back out of its body. */
function linesOf<O>(batch: Batch<O>): string[] {
  const lines = new Array<string>(batch.ends.length);
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    lines[i] = batch.body.slice(start, batch.ends[i]);
    start = batch.ends[i] + 1;
  }
  return lines;
}

/** A copy of a line that holds no reference to the body it was cut from. */
function detached(line: string): string {
  return Buffer.from(line, 'utf8').toString('utf8');
}

function halves<O>(batch: Batch<O>): [Batch<O>, Batch<O>] {
  const lines = linesOf(batch);
  const middle = Math.ceil(lines.length / 2);
  return [sealed(lines.slice(0, middle), batch.owners.slice(0, middle), batch.readyAt), sealed(lines.slice(middle), batch.owners.slice(middle), batch.readyAt)];
}
