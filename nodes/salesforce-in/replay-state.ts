/**
 * Where a subscription stands, kept across restarts: the replay id up to which every event was
 * processed (the watermark a resubscription replays from), the events handed to the flow and not
 * yet settled, and the keys of events handled within the retention window (so that an event the
 * bus sends again, or one settled past the watermark before a restart, is not handled twice).
 *
 * Events of one channel arrive in replay-id order, but the flow may settle them in any order: the
 * watermark moves only over events that are all settled, so a restart replays every event not
 * settled and nothing before it. Pure: the time is an argument.
 */

/** A settled event, as journalled: its key, its replay id, when it was handled, the watermark after it. */
export interface HandledEntry {
  k: string;
  r: number;
  t: number;
  w?: number;
}

export interface ReplaySnapshot {
  watermark?: number;
  handled: Array<[key: string, replayId: number, at: number]>;
}

export interface ReplayStateOptions {
  /** How long a handled event's key is remembered (the org's retention window: 72 hours). */
  rememberMs: number;
  /** The most keys remembered, oldest forgotten first. */
  maxRemembered: number;
}

/** What became of an event that arrived. */
export type Arrival = 'new' | 'handled' | 'in-flight';

export class ReplayState {
  private mark: number | undefined;
  /** Key -> replay id and time handled, in the order handled. */
  private readonly handled = new Map<string, { replayId: number; at: number }>();
  /** Events handed on and not yet past the watermark, in arrival (replay id) order. */
  private readonly pending: Array<{ key: string; replayId: number; settled: boolean }> = [];
  private readonly pendingByKey = new Map<string, { key: string; replayId: number; settled: boolean }>();

  constructor(private readonly options: ReplayStateOptions) {}

  /** The replay id every event up to which was processed, if any was. */
  get watermark(): number | undefined {
    return this.mark;
  }

  /** Events handed on and not settled yet. */
  get unsettled(): number {
    let n = 0;
    for (const entry of this.pending) if (!entry.settled) n++;
    return n;
  }

  get remembered(): number {
    return this.handled.size;
  }

  /** What to subscribe with: after the watermark, or the initial option (-1 new only, -2 all retained) without one. */
  replayFrom(initial: -1 | -2): number {
    return this.mark ?? initial;
  }

  /** Takes what was saved: a snapshot, then the journal written after it. */
  restore(snapshot: ReplaySnapshot | undefined, entries: readonly HandledEntry[]): void {
    this.mark = snapshot?.watermark;
    for (const [key, replayId, at] of snapshot?.handled ?? []) this.handled.set(key, { replayId, at });
    for (const entry of entries) {
      this.handled.delete(entry.k);
      this.handled.set(entry.k, { replayId: entry.r, at: entry.t });
      if (entry.w !== undefined) this.mark = Math.max(this.mark ?? entry.w, entry.w);
    }
  }

  /** An event came: new (hand it on), handled already, or handed on and not settled yet. */
  arrive(key: string, replayId: number): Arrival {
    if (this.handled.has(key)) return 'handled';
    if (this.pendingByKey.has(key)) return 'in-flight';
    const entry = { key, replayId, settled: false };
    this.pending.push(entry);
    this.pendingByKey.set(key, entry);
    return 'new';
  }

  /**
   * The flow settled an event (processed, or refused for good): remembered, and the watermark
   * moved past every settled event at the front. Returns the entry to journal, or undefined when
   * the key was not in flight (settled twice).
   */
  settle(key: string, now: number): HandledEntry | undefined {
    const entry = this.pendingByKey.get(key);
    if (!entry || entry.settled) return undefined;
    entry.settled = true;
    this.handled.set(key, { replayId: entry.replayId, at: now });
    let moved: number | undefined;
    while (this.pending.length > 0 && this.pending[0].settled) {
      const done = this.pending.shift() as (typeof this.pending)[number];
      this.pendingByKey.delete(done.key);
      moved = done.replayId;
    }
    if (moved !== undefined) this.mark = moved;
    this.forgetOld(now);
    return moved === undefined ? { k: key, r: entry.replayId, t: now } : { k: key, r: entry.replayId, t: now, w: moved };
  }

  /** Forgets what is in flight (the subscription starts again from the watermark). */
  dropInFlight(): void {
    this.pending.length = 0;
    this.pendingByKey.clear();
  }

  /** Starts over from nothing: the replay option decides where the next subscription begins. */
  resetWatermark(): void {
    this.mark = undefined;
    this.dropInFlight();
  }

  snapshot(now: number): ReplaySnapshot {
    this.forgetOld(now);
    return { watermark: this.mark, handled: [...this.handled].map(([key, v]) => [key, v.replayId, v.at]) };
  }

  private forgetOld(now: number): void {
    const before = now - this.options.rememberMs;
    for (const [key, value] of this.handled) {
      if (value.at >= before && this.handled.size <= this.options.maxRemembered) break;
      this.handled.delete(key);
    }
  }
}
