/**
 * Gathers records into calls: those that arrive within `delayMs` of the first, up to `maxSize`
 * (Salesforce takes 200 per collection call), go together, with at most `maxInFlight` calls at a
 * time. Records that name the same Salesforce record (the same external id or Id) keep their
 * order: a later one waiting while an earlier one is in flight is never sent beside or before it,
 * and two waiting ones are merged into one record (the later fields win), so a collection never
 * carries one external id twice. Retried records go back to the front of the queue.
 *
 * Pure: time is passed in; the caller sends what take() returns and calls finish().
 */

export interface Entry<T> {
  /** Which call the record belongs in: operation, object and external id field. */
  group: string;
  /** The Salesforce record it names (external id or Id, case-folded), if any. */
  key: string | undefined;
  record: Record<string, unknown>;
  /** What the record came from (messages): each gets the record's result. */
  items: T[];
  /** Failed tries so far. */
  attempts: number;
  /** A try failed without an answer: the record may exist already. */
  answerLost?: boolean;
  /** Not to be sent before this time (a backoff). */
  readyAt: number;
  enqueuedAt: number;
}

export interface Batch<T> {
  group: string;
  entries: Array<Entry<T>>;
}

export interface BatcherOptions {
  maxSize: number;
  delayMs: number;
  maxInFlight: number;
}

export class Batcher<T> {
  private readonly queues = new Map<string, Array<Entry<T>>>();
  /** The newest waiting entry of each record, for merging. */
  private readonly waitingByKey = new Map<string, Entry<T>>();
  private readonly inFlightKeys = new Set<string>();
  private inFlight = 0;
  private waitingCount = 0;

  constructor(private readonly options: BatcherOptions) {}

  /** Records waiting to be sent. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** Calls under way. */
  get calls(): number {
    return this.inFlight;
  }

  add(group: string, key: string | undefined, record: Record<string, unknown>, item: T, now: number): void {
    const id = key === undefined ? undefined : `${group}\u0000${key}`;
    const waiting = id === undefined ? undefined : this.waitingByKey.get(id);
    if (waiting) {
      Object.assign(waiting.record, record);
      waiting.items.push(item);
      return;
    }
    const entry: Entry<T> = { group, key, record, items: [item], attempts: 0, readyAt: now, enqueuedAt: now };
    this.queue(group).push(entry);
    if (id !== undefined) this.waitingByKey.set(id, entry);
    this.waitingCount++;
  }

  /**
   * The calls to make now (marked in flight), so that at most maxCalls are under way. With
   * `flush`, waiting records go without waiting for the delay (at stop). A group sends when it
   * has maxSize records ready, or when its oldest ready record has waited delayMs.
   */
  take(now: number, flush = false, maxCalls = this.options.maxInFlight): Array<Batch<T>> {
    const batches: Array<Batch<T>> = [];
    const limit = Math.min(this.options.maxInFlight, maxCalls);
    let progress = true;
    while (progress && this.inFlight < limit) {
      progress = false;
      for (const [group, queue] of this.queues) {
        if (this.inFlight >= limit) break;
        const picked = this.pick(queue, now);
        if (picked.length === 0) continue;
        const oldest = Math.min(...picked.map((i) => queue[i].enqueuedAt));
        if (!flush && picked.length < this.options.maxSize && oldest + this.options.delayMs > now) continue;
        const taken = new Set(picked);
        this.queues.set(
          group,
          queue.filter((_, i) => !taken.has(i)),
        );
        const entries = picked.map((i) => queue[i]);
        for (const entry of entries) {
          if (entry.key === undefined) continue;
          const id = `${group}\u0000${entry.key}`;
          this.inFlightKeys.add(id);
          if (this.waitingByKey.get(id) === entry) this.waitingByKey.delete(id);
        }
        this.waitingCount -= entries.length;
        this.inFlight++;
        batches.push({ group, entries });
        progress = true;
      }
    }
    return batches;
  }

  /** When take() may next have something to send, if anything waits and a call slot is free. */
  nextWakeAt(now: number): number | undefined {
    if (this.inFlight >= this.options.maxInFlight) return undefined;
    let wake: number | undefined;
    for (const queue of this.queues.values()) {
      const seen = new Set<string>();
      for (const entry of queue) {
        if (entry.key !== undefined) {
          const blocked = seen.has(entry.key) || this.inFlightKeys.has(`${entry.group}\u0000${entry.key}`);
          seen.add(entry.key);
          if (blocked) continue;
        }
        const at = Math.max(entry.readyAt, entry.enqueuedAt + this.options.delayMs, now);
        if (wake === undefined || at < wake) wake = at;
      }
    }
    return wake;
  }

  /**
   * A call ended. `retry` holds the entries to send again and when; every other entry of the
   * batch is done.
   */
  finish(batch: Batch<T>, retry: Array<{ entry: Entry<T>; readyAt: number }> = []): void {
    this.inFlight--;
    for (const entry of batch.entries) if (entry.key !== undefined) this.inFlightKeys.delete(`${batch.group}\u0000${entry.key}`);
    if (retry.length === 0) return;
    const queue = this.queue(batch.group);
    for (const { entry, readyAt } of retry) {
      entry.readyAt = readyAt;
      if (entry.key !== undefined) {
        const id = `${batch.group}\u0000${entry.key}`;
        if (!this.waitingByKey.has(id)) this.waitingByKey.set(id, entry);
      }
    }
    queue.unshift(...retry.map((r) => r.entry));
    this.waitingCount += retry.length;
  }

  /** Makes every waiting record due now, without waiting out the delay (the source has nothing more). */
  expedite(now: number): void {
    for (const queue of this.queues.values()) for (const entry of queue) entry.enqueuedAt = Math.min(entry.enqueuedAt, now - this.options.delayMs);
  }

  /** Takes out every waiting entry that keep() refuses (at a hold, entries a buffer keeps). */
  remove(keep: (entry: Entry<T>) => boolean): Array<Entry<T>> {
    const removed: Array<Entry<T>> = [];
    for (const [group, queue] of this.queues) {
      const kept: Array<Entry<T>> = [];
      for (const entry of queue) (keep(entry) ? kept : removed).push(entry);
      this.queues.set(group, kept);
    }
    for (const entry of removed) {
      if (entry.key !== undefined && this.waitingByKey.get(`${entry.group}\u0000${entry.key}`) === entry) this.waitingByKey.delete(`${entry.group}\u0000${entry.key}`);
    }
    this.waitingCount -= removed.length;
    return removed;
  }

  /** Entries ready to go now, in order, at most maxSize, one per record. */
  private pick(queue: Array<Entry<T>>, now: number): number[] {
    const picked: number[] = [];
    const keys = new Set<string>();
    for (let i = 0; i < queue.length && picked.length < this.options.maxSize; i++) {
      const entry = queue[i];
      if (entry.key !== undefined) {
        // An earlier entry of the same record (in flight, waiting for a retry, or taken just now)
        // goes first.
        const blocked = keys.has(entry.key) || this.inFlightKeys.has(`${entry.group}\u0000${entry.key}`);
        keys.add(entry.key);
        if (blocked) continue;
      }
      if (entry.readyAt <= now) picked.push(i);
    }
    return picked;
  }

  private queue(group: string): Array<Entry<T>> {
    let queue = this.queues.get(group);
    if (!queue) this.queues.set(group, (queue = []));
    return queue;
  }
}
