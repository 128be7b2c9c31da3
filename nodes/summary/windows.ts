/**
 * Per-key windows over readings: for each device (key) and window, the count, sum, min, max,
 * first and last of every numeric reading. Time windows are aligned to the clock (every 15
 * minutes means :00, :15, :30, :45), so all keys close together and one timer serves them all;
 * count windows close after N readings of their key. No Node-RED in here: callers pass the time.
 */

export interface WindowConfig {
  mode: 'time' | 'count';
  /** time mode: the window length in ms. */
  windowMs: number;
  /** count mode: readings per window. */
  count: number;
  /** Only these readings (empty: every numeric field of the payload). */
  fields: readonly string[];
  /** The name of a bare-number payload. */
  readingName: string;
  /** time mode, event time: how long after its end a window still takes late readings. */
  graceMs: number;
}

export interface ReadingStats {
  count: number;
  sum: number;
  min: number;
  max: number;
  mean: number;
  first: number;
  last: number;
}

export interface Summary {
  /** Stable per key and window: key@start (ISO time). Upsert on it. */
  id: string;
  key: string;
  /** Window start and end (ms); count windows: time of the first and last reading. */
  start: number;
  end: number;
  /** Readings (messages) in the window. */
  count: number;
  readings: Record<string, ReadingStats>;
}

export type SummaryErrorCode = 'no_numeric_reading' | 'late_reading' | 'not_finite';

export interface SummaryError {
  code: SummaryErrorCode;
  message: string;
}

interface Stats {
  count: number;
  sum: number;
  min: number;
  max: number;
  first: number;
  last: number;
}

/** One key's open window. */
interface OpenWindow {
  start: number;
  /** time mode: the window's end; count mode: the time of the last reading. */
  end: number;
  count: number;
  stats: Map<string, Stats>;
}

/** Persisted form: open windows, and the last closed window start per key (to refuse late data). */
export interface WindowsSnapshot {
  version: 1;
  config: string;
  windows: Array<[key: string, start: number, end: number, count: number, stats: Array<[string, number, number, number, number, number, number]>]>;
  closed: Array<[key: string, start: number]>;
}

/** A change to replay after a crash: a reading added, or a window closed. */
export type WindowsJournalEntry = { k: string; v: Record<string, number>; t: number } | { k: string; c: number };

export class WindowAggregator {
  private readonly open = new Map<string, OpenWindow>();
  /** time mode: the start of the last window closed per key; earlier readings are late. */
  private readonly closedUpTo = new Map<string, number>();
  private readonly fieldSet: ReadonlySet<string> | undefined;

  constructor(readonly config: WindowConfig) {
    if (config.mode === 'time' && !(config.windowMs > 0)) throw new Error('the window must be longer than zero');
    if (config.mode === 'count' && !(Number.isInteger(config.count) && config.count >= 1)) throw new Error('a count window needs 1 or more readings');
    this.fieldSet = config.fields.length > 0 ? new Set(config.fields) : undefined;
  }

  get keyCount(): number {
    return this.open.size;
  }

  /** Readings in the windows now open. */
  get pendingReadings(): number {
    let n = 0;
    for (const w of this.open.values()) n += w.count;
    return n;
  }

  /** The numeric readings of a payload, by name; an error when there are none. */
  valuesOf(payload: unknown): Record<string, number> | SummaryError {
    const values: Record<string, number> = {};
    if (typeof payload === 'number' || (typeof payload === 'string' && payload.trim() !== '' && !Number.isNaN(Number(payload)))) {
      const n = Number(payload);
      if (!Number.isFinite(n)) return { code: 'not_finite', message: `${String(payload)} is not a finite number` };
      if (this.fieldSet && !this.fieldSet.has(this.config.readingName)) return noReading(this.config.fields);
      values[this.config.readingName] = n;
      return values;
    }
    if (payload !== null && typeof payload === 'object' && !Array.isArray(payload)) {
      for (const [name, value] of Object.entries(payload)) {
        if (this.fieldSet && !this.fieldSet.has(name)) continue;
        if (typeof value === 'number' && Number.isFinite(value)) values[name] = value;
      }
      if (Object.keys(values).length > 0) return values;
    }
    return noReading(this.config.fields);
  }

  /**
   * Adds one message's readings to its key's window. Returns the summaries this closes (a count
   * window that filled up, or a time window a newer reading moved past), or an error (a reading
   * for a window already closed).
   */
  add(key: string, values: Record<string, number>, at: number): Summary[] | SummaryError {
    const closed: Summary[] = [];
    let window = this.open.get(key);
    if (this.config.mode === 'time') {
      const start = this.windowStart(at);
      const closedStart = this.closedUpTo.get(key);
      if (closedStart !== undefined && start <= closedStart) {
        return { code: 'late_reading', message: `reading at ${new Date(at).toISOString()} is for a window already summarised` };
      }
      if (window && start > window.start) {
        closed.push(this.close(key, window));
        window = undefined;
      } else if (window && start < window.start) {
        return { code: 'late_reading', message: `reading at ${new Date(at).toISOString()} is older than the open window` };
      }
      if (!window) {
        window = { start, end: start + this.config.windowMs, count: 0, stats: new Map() };
        this.open.set(key, window);
      }
    } else if (!window) {
      window = { start: at, end: at, count: 0, stats: new Map() };
      this.open.set(key, window);
    }
    accumulate(window, values, at, this.config.mode === 'count');
    if (this.config.mode === 'count' && window.count >= this.config.count) closed.push(this.close(key, window));
    return closed;
  }

  /** time mode: every window whose end (plus grace) has passed by now, closed. */
  closeDue(now: number): Summary[] {
    if (this.config.mode !== 'time') return [];
    const due: Summary[] = [];
    for (const [key, window] of this.open) {
      if (window.end + this.config.graceMs <= now) due.push(this.close(key, window));
    }
    return due;
  }

  /** When closeDue() next has work (Infinity: no open time window). */
  nextClose(): number {
    if (this.config.mode !== 'time') return Infinity;
    let next = Infinity;
    for (const window of this.open.values()) next = Math.min(next, window.end + this.config.graceMs);
    return next;
  }

  /** Closes every open window now (count mode, or flushing on demand). */
  closeAll(): Summary[] {
    return [...this.open].map(([key, window]) => this.close(key, window));
  }

  /** Closes one key's window; the journal replays this with closeKey(). */
  closeKey(key: string, start: number): Summary | undefined {
    const window = this.open.get(key);
    return window && window.start === start ? this.close(key, window) : undefined;
  }

  snapshot(): WindowsSnapshot {
    return {
      version: 1,
      config: this.fingerprint(),
      windows: [...this.open].map(([key, w]) => [key, w.start, w.end, w.count, [...w.stats].map(([name, s]) => [name, s.count, s.sum, s.min, s.max, s.first, s.last])]),
      closed: [...this.closedUpTo],
    };
  }

  /**
   * Takes back a snapshot and the journal written after it (a snapshot of other windows is
   * ignored). Returns the summaries that replaying the journal closed: they may not have left
   * before the crash, so the caller sends them again (their ids make that harmless).
   */
  restore(snapshot: WindowsSnapshot | undefined, journal: readonly WindowsJournalEntry[]): Summary[] {
    if (snapshot && snapshot.config === this.fingerprint()) {
      for (const [key, start, end, count, stats] of snapshot.windows) {
        const map = new Map<string, Stats>();
        for (const [name, n, sum, min, max, first, last] of stats) map.set(name, { count: n, sum, min, max, first, last });
        this.open.set(key, { start, end, count, stats: map });
      }
      for (const [key, start] of snapshot.closed) this.closedUpTo.set(key, start);
    }
    const replayed: Summary[] = [];
    for (const entry of journal) {
      if ('c' in entry) {
        const summary = this.closeKey(entry.k, entry.c);
        if (summary) replayed.push(summary);
      } else {
        const closed = this.add(entry.k, entry.v, entry.t);
        if (Array.isArray(closed)) replayed.push(...closed);
      }
    }
    return replayed;
  }

  private windowStart(at: number): number {
    return Math.floor(at / this.config.windowMs) * this.config.windowMs;
  }

  private close(key: string, window: OpenWindow): Summary {
    this.open.delete(key);
    if (this.config.mode === 'time') this.closedUpTo.set(key, window.start);
    const readings: Record<string, ReadingStats> = {};
    for (const [name, s] of window.stats) {
      readings[name] = { count: s.count, sum: s.sum, min: s.min, max: s.max, mean: s.sum / s.count, first: s.first, last: s.last };
    }
    return { id: `${key}@${new Date(window.start).toISOString()}`, key, start: window.start, end: window.end, count: window.count, readings };
  }

  private fingerprint(): string {
    const { mode, windowMs, count } = this.config;
    return mode === 'time' ? `time/${windowMs}` : `count/${count}`;
  }
}

function accumulate(window: OpenWindow, values: Record<string, number>, at: number, trackEnd: boolean): void {
  window.count++;
  if (trackEnd) window.end = Math.max(window.end, at);
  for (const [name, value] of Object.entries(values)) {
    const s = window.stats.get(name);
    if (!s) {
      window.stats.set(name, { count: 1, sum: value, min: value, max: value, first: value, last: value });
      continue;
    }
    s.count++;
    s.sum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
    s.last = value;
  }
}

function noReading(fields: readonly string[]): SummaryError {
  const which = fields.length > 0 ? `none of ${fields.join(', ')}` : 'no numeric reading';
  return { code: 'no_numeric_reading', message: `the payload has ${which}` };
}
