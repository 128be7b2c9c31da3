/**
 * The threshold state machine for many keys (devices). Each severity level of a rule is its own
 * small machine: it raises when its condition has held long enough (immediately, for a duration,
 * or for N readings in a row) and clears when its clear condition has held likewise. A key's
 * alert is the most severe active level; an episode runs from the first level raised to the last
 * level cleared and keeps one id throughout, so a downstream upsert on it never opens a second
 * record.
 *
 * Two rules learn from the readings before they compare: a forecast compares the lead time
 * until the key's trend (trend.ts) crosses a target, an anomaly compares how far a reading lies
 * from the key's usual (baseline.ts). Both then run the same level machines.
 *
 * State lives in typed-array columns indexed by a slot per key (a few dozen bytes a key), and
 * every key's timers share one deadline heap. Nothing here knows Node-RED or the clock: callers
 * pass the time, and call tick() when nextDeadline() comes.
 */
import { createHash } from 'node:crypto';
import { BaselineColumns, type Side } from './baseline';
import { resized } from './columns';
import { DeadlineQueue } from './deadline-queue';
import {
  readsNumbers,
  Thresholds,
  type AnomalyConfig,
  type Confirmation,
  type EqualityValue,
  type ForecastConfig,
  type RuleConfig,
  type Severity,
  type ThresholdValue,
} from './rules';
import { TrendColumns, type Direction } from './trend';

/** updated: a raised forecast whose predicted crossing moved (same severity, same id). */
export type AlertChange = 'raised' | 'escalated' | 'deescalated' | 'cleared' | 'updated';

/** What a forecast alert says about the trend, at the time of the event. */
export interface ForecastDetail {
  target: number;
  direction: Direction;
  /** When the trend line reaches the target (ms); null when it heads away from it. */
  crossingAt: number | null;
  /** From the event to the crossing (ms), 0 once past it; null without a crossing. */
  leadTime: number | null;
  /** The lead time of the level concerned: within it a level raises, beyond it (with the margin) it clears. */
  within: number;
  /** 1 - (standard error of the slope / slope): 0.9, the rate of change is known to ±10 %. */
  confidence: number;
  /** The effective number of readings behind the fit. */
  readings: number;
  /** The fitted value at the newest reading, and its change per hour. */
  level: number;
  perHour: number;
  /** The readings' spread around the line (null with too few readings). */
  residual: number | null;
}

/** What an anomaly alert says about the key's usual readings. */
export interface AnomalyDetail {
  usual: number;
  spread: number;
  /** Usual spreads between the reading and the usual value (on the watched side). */
  score: number;
  side: Side;
}

export interface AlertEvent {
  /** Stable for one episode, from the first raise to the final clear. */
  id: string;
  key: string;
  change: AlertChange;
  state: 'raised' | 'cleared';
  /** The alert's severity now; for a clear, the severity that cleared. */
  severity: Severity;
  previousSeverity?: Severity;
  /** When the episode was raised (ms). */
  since: number;
  /** When this change happened (ms): the reading's time, or the deadline that confirmed it. */
  at: number;
  /** The value that caused the change (a rate for rate rules, ms of silence for silence rules). */
  value: number | EqualityValue | undefined;
  /** The threshold that was crossed. */
  threshold: ThresholdValue | undefined;
  /** Set when the change came from a reset or a changed rule rather than from readings. */
  reason?: 'reset' | 'rule-changed';
  forecast?: ForecastDetail;
  anomaly?: AnomalyDetail;
}

export interface EngineListener {
  alert(event: AlertEvent): void;
  /** Every change of a key's active levels (also those that change no alert), for persistence. */
  stateChanged?(key: string, active: Severity[], since: number): void;
}

export type ReadingErrorCode = 'missing_value' | 'not_numeric' | 'not_finite' | 'wrong_type';

export interface ReadingError {
  code: ReadingErrorCode;
  message: string;
}

export interface KeyStatus {
  key: string;
  state: 'normal' | 'pending' | 'raised';
  severity?: Severity;
  id?: string;
  since?: number;
  forecast?: ForecastDetail;
  anomaly?: AnomalyDetail;
}

/** Persisted form of the engine; NaN is written as null. */
export interface EngineSnapshot {
  version: 1;
  rule: string;
  severities: Severity[];
  savedAt: number;
  keys: SnapshotKey[];
}

/**
 * [key, active severities, since, last measured, last value, last sample at, last seen at, runs
 * [count, start] per level, last raw value, what a forecast or anomaly rule learnt (absent in
 * files written before those rules)]
 */
export type SnapshotKey = [
  string,
  Severity[],
  number | null,
  number | null,
  number | null,
  number | null,
  number | null,
  Array<[number, number | null]>,
  EqualityValue | null,
  (number[] | null)?,
];

interface Need {
  /** Readings in a row that confirm (Infinity: not counted). */
  count: number;
  /** Time the condition must hold to confirm (Infinity: not timed). */
  ms: number;
}

function need(confirmation: Confirmation): Need {
  switch (confirmation.mode) {
    case 'immediate':
      return { count: 1, ms: Infinity };
    case 'count':
      return { count: confirmation.count, ms: Infinity };
    case 'duration':
      return { count: Infinity, ms: confirmation.ms };
  }
}

const INITIAL_CAPACITY = 1024;
/**
 * A raised forecast is announced again once its crossing moved by this share of the lead time
 * (or of the shortest level's lead time, near the end): a moved prediction, not every wobble.
 */
const UPDATE_SHARE = 0.2;
/**
 * A forecast raises only once its readings cover at least this share of its window: the first
 * hours' slope can look sure and still be far off.
 */
const SPAN_SHARE = 0.5;
const HOUR_MS = 3_600_000;

export class ThresholdEngine {
  readonly base: Thresholds;
  private readonly levelCount: number;
  private readonly silence: boolean;
  private readonly numeric: boolean;
  private readonly rate: boolean;
  private readonly rateUnitMs: number;
  private readonly raiseNeed: Need;
  private readonly clearNeed: Need;
  private readonly fingerprint: string;

  private readonly slots = new Map<string, number>();
  private keys: (string | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  private capacity = 0;
  /** Bit i set: level i is active. */
  private mask = new Uint8Array(0);
  private since = new Float64Array(0);
  /** The last value compared with thresholds (the rate, for rate rules). */
  private lastMeasured = new Float64Array(0);
  /** rate rules: the previous sample and its time. */
  private lastValue = new Float64Array(0);
  private lastSampleAt = new Float64Array(0);
  private lastSeenAt = new Float64Array(0);
  /** Time of this key's live entry in the deadline heap, NaN when it has none. */
  private timerAt = new Float64Array(0);
  /** Per (slot, level): when the current run towards toggling the level began, and its length. */
  private runStart = new Float64Array(0);
  private runCount = new Uint32Array(0);
  /** equals / notEquals rules: the last raw value, for alerts fired by a timer. */
  private readonly lastRaw: (EqualityValue | undefined)[] = [];
  /** Keys whose last reading came with its own thresholds (msg.threshold or device metadata). */
  private readonly overrides = new Map<number, Thresholds>();
  private readonly deadlines = new DeadlineQueue();
  /** Keys whose alert is at each level, for the status line. */
  private readonly activeByLevel: Int32Array;
  /** forecast rules: each key's trend, and the crossing time its alert last announced. */
  private readonly forecast: ForecastConfig | undefined;
  private readonly trend: TrendColumns | undefined;
  private announced = new Float64Array(0);
  /** forecast rules: the shortest lead time of any level, below which updates need not be finer. */
  private readonly shortestLead: number;
  /** anomaly rules: each key's usual value and spread. */
  private readonly baseline: BaselineColumns | undefined;
  private readonly localTimers: boolean;

  /**
   * @param options.localTimers false when the keys' deadlines are kept elsewhere (shared state
   *   in Redis): nothing is put in the local heap, and tickKey() fires one key's deadlines.
   */
  constructor(
    readonly config: RuleConfig,
    private readonly scope: string,
    private readonly listener: EngineListener,
    options: { localTimers?: boolean } = {},
  ) {
    this.localTimers = options.localTimers !== false;
    this.base = Thresholds.compile(config);
    this.levelCount = this.base.levelCount;
    this.silence = config.rule === 'silence';
    this.numeric = readsNumbers(config.rule);
    this.rate = config.measure === 'rate';
    this.rateUnitMs = config.rateUnitMs;
    this.raiseNeed = need(config.raise);
    this.clearNeed = need(config.clear);
    this.forecast = config.rule === 'forecast' ? config.forecast : undefined;
    this.trend = this.forecast && new TrendColumns(this.forecast.windowMs / 2);
    this.shortestLead = this.forecast ? Math.min(...config.levels.map((level) => level.value as number)) : NaN;
    const anomaly = config.rule === 'anomaly' ? config.anomaly : undefined;
    this.baseline = anomaly && new BaselineColumns(anomaly.history, anomaly.warmup, anomaly.side, anomaly.minDeviation);
    const variant = this.rate ? `/${config.rateUnitMs}` : this.forecast ? `/${this.forecast.direction}` : '';
    this.fingerprint = `${config.rule}/${config.measure}${variant}`;
    this.activeByLevel = new Int32Array(this.levelCount);
    this.grow(INITIAL_CAPACITY);
  }

  get keyCount(): number {
    return this.slots.size;
  }

  get severities(): readonly Severity[] {
    return this.base.severities;
  }

  /** How many keys have their alert at each severity (same order as severities). */
  activeCounts(): number[] {
    return Array.from(this.activeByLevel);
  }

  /**
   * One reading for a key. Bad input is returned as an error and leaves every state untouched.
   * @param sampleAt when the value was measured (rate rules use it); defaults to now.
   * @param thresholds this reading's own thresholds (see Thresholds.withOverride).
   */
  read(key: string, raw: unknown, now: number, sampleAt = now, thresholds?: Thresholds): ReadingError | undefined {
    let measured: number | EqualityValue = 0;
    if (this.numeric) {
      const parsed = numericReading(raw);
      if (typeof parsed !== 'number') return parsed;
      measured = parsed;
    } else if (!this.silence) {
      const error = equalityReadingError(raw);
      if (error) return error;
      measured = raw as EqualityValue;
    }
    const slot = this.slotFor(key);
    this.useThresholds(slot, thresholds);
    if (this.silence) {
      this.signOfLife(slot, now);
      return undefined;
    }
    this.lastSeenAt[slot] = now;
    if (this.rate) {
      const previousAt = this.lastSampleAt[slot];
      // An older or same-time sample has no rate to give; NaN (no previous sample) passes.
      if (sampleAt <= previousAt) return undefined;
      const previous = this.lastValue[slot];
      this.lastValue[slot] = measured as number;
      this.lastSampleAt[slot] = sampleAt;
      if (Number.isNaN(previousAt)) return undefined;
      measured = (((measured as number) - previous) / (sampleAt - previousAt)) * this.rateUnitMs;
    }
    const th = thresholds ?? this.base;
    if (this.trend) {
      this.readForecast(slot, measured as number, now, sampleAt, th);
      return undefined;
    }
    if (this.baseline) {
      // Compared with the usual before it joins it, so that it does not soften its own score.
      const score = this.baseline.score(slot, measured as number);
      this.lastValue[slot] = measured as number;
      this.lastMeasured[slot] = score;
      this.evaluate(slot, score, now, th, true, measured);
      this.baseline.learn(slot, measured as number);
      return undefined;
    }
    if (this.numeric) this.lastMeasured[slot] = measured as number;
    else this.lastRaw[slot] = measured;
    this.evaluate(slot, measured, now, th);
    return undefined;
  }

  /**
   * forecast rules: the reading joins the trend; the lead time to the crossing is compared.
   * Before the trend has its minimum readings it decides nothing (a restored alert is kept);
   * after, a trend heading away from the target clears whatever its confidence.
   */
  private readForecast(slot: number, value: number, now: number, sampleAt: number, th: Thresholds): void {
    const trend = this.trend as TrendColumns;
    trend.add(slot, sampleAt, value);
    this.lastValue[slot] = value;
    const crossing = this.crossingOf(slot, th);
    const known = trend.readings(slot) >= (this.forecast as ForecastConfig).minReadings;
    const lead = !known ? NaN : Number.isNaN(crossing) ? Infinity : Math.max(0, crossing - now);
    const confident = this.confident(slot);
    const announced = this.evaluate(slot, lead, now, th, confident, value);
    // Once the crossing is past, where exactly the line crossed is no news for anyone.
    if (!announced && this.mask[slot] !== 0 && crossing > now) {
      const last = this.announced[slot];
      // A restored alert has announced nothing in this run: what it said before stands.
      if (Number.isNaN(last)) this.announced[slot] = crossing;
      else if (Math.abs(crossing - last) >= UPDATE_SHARE * Math.max(lead, this.shortestLead)) this.announce(slot, now, value, th);
    }
    if (confident && !Number.isNaN(crossing)) this.schedule(slot, this.leadDeadline(slot, th, now, crossing));
  }

  private crossingOf(slot: number, th: Thresholds): number {
    return (this.trend as TrendColumns).crossingAt(slot, th.target, (this.forecast as ForecastConfig).direction);
  }

  /** forecast rules: enough readings behind the trend, and a good enough fit, to raise. */
  private confident(slot: number): boolean {
    const trend = this.trend as TrendColumns;
    const forecast = this.forecast as ForecastConfig;
    return trend.sure(slot, forecast.minReadings, forecast.windowMs * SPAN_SHARE, forecast.minConfidence);
  }

  /** forecast rules: a raised alert's crossing moved; the same episode says so. */
  private announce(slot: number, at: number, value: number, th: Thresholds): void {
    const key = this.keys[slot] as string;
    const top = topLevel(this.mask[slot]);
    const since = this.since[slot];
    const event: AlertEvent = {
      id: this.episodeId(key, since),
      key,
      change: 'updated',
      state: 'raised',
      severity: this.severities[top],
      since,
      at,
      value,
      threshold: th.raiseThreshold(top),
    };
    this.addDetail(event, slot, th);
    this.listener.alert(event);
  }

  /**
   * What a forecast or anomaly rule knows, for an event about to go out. A forecast's levels are
   * lead times; the threshold its alert names is the target they lead to.
   */
  private addDetail(event: AlertEvent, slot: number, th: Thresholds): void {
    if (this.trend) {
      const within = event.threshold as number;
      event.threshold = th.target;
      event.forecast = this.forecastDetail(slot, event.at, th, within);
      this.announced[slot] = event.state === 'raised' ? (event.forecast?.crossingAt ?? NaN) : NaN;
    } else if (this.baseline) {
      event.anomaly = this.anomalyDetail(slot);
    }
  }

  private forecastDetail(slot: number, at: number, th: Thresholds, within: number): ForecastDetail | undefined {
    const trend = this.trend as TrendColumns;
    if (Number.isNaN(trend.newestAt(slot))) return undefined;
    const crossing = this.crossingOf(slot, th);
    const slope = trend.slope(slot);
    return {
      target: th.target,
      direction: (this.forecast as ForecastConfig).direction,
      crossingAt: orNull(crossing),
      leadTime: Number.isNaN(crossing) ? null : Math.max(0, crossing - at),
      within,
      confidence: trend.confidence(slot),
      readings: trend.readings(slot),
      level: trend.level(slot),
      perHour: Number.isNaN(slope) ? 0 : slope * HOUR_MS,
      residual: orNull(trend.residual(slot)),
    };
  }

  private anomalyDetail(slot: number): AnomalyDetail | undefined {
    const baseline = this.baseline as BaselineColumns;
    const usual = baseline.usual(slot);
    if (Number.isNaN(usual)) return undefined;
    const score = this.lastMeasured[slot];
    return { usual, spread: baseline.spread(slot), score: Number.isNaN(score) ? 0 : score, side: (this.config.anomaly as AnomalyConfig).side };
  }

  /** Processes every deadline due by now (duration confirmations, silences). */
  tick(now: number): void {
    const queue = this.deadlines;
    while (queue.peekTime() <= now) {
      const at = queue.peekTime();
      const slot = queue.popSlot();
      // Stale entries: the key was rescheduled earlier, or freed.
      if (this.timerAt[slot] !== at || this.keys[slot] === undefined) continue;
      this.timerAt[slot] = NaN;
      this.fire(slot, at);
      this.schedule(slot, this.deadlineOf(slot, at));
    }
  }

  /** When tick() next has work to do (Infinity: never, until more readings come). */
  nextDeadline(): number {
    return this.deadlines.peekTime();
  }

  /**
   * Forgets a key (or every key): an active alert is cleared with reason 'reset' first, so
   * whoever opened a record for it hears that it ended.
   */
  reset(now: number, key?: string): void {
    const slots = key === undefined ? [...this.slots.values()] : [this.slots.get(key)].filter((s) => s !== undefined);
    for (const slot of slots) {
      const value = this.silence ? undefined : this.lastValueOf(slot);
      this.commit(slot, this.mask[slot], 0, now, value, this.thresholdsOf(slot), 'reset');
      this.free(slot);
    }
  }

  /**
   * silence rules: starts watching keys that have no state yet, as if each had reported now, so
   * a device that never reports is noticed.
   */
  expect(keys: readonly string[], now: number): void {
    if (!this.silence) return;
    for (const key of keys) {
      if (this.slots.has(key)) continue;
      const slot = this.slotFor(key);
      this.lastSeenAt[slot] = now;
      this.schedule(slot, this.deadlineOf(slot, now));
    }
  }

  /** A key's alert state, for annotating readings. */
  status(key: string): KeyStatus {
    const slot = this.slots.get(key);
    if (slot === undefined) return { key, state: 'normal' };
    const mask = this.mask[slot];
    let status: KeyStatus = { key, state: 'normal' };
    if (mask !== 0) {
      const since = this.since[slot];
      status = { key, state: 'raised', severity: this.severities[topLevel(mask)], id: this.episodeId(key, since), since };
    } else {
      const base = slot * this.levelCount;
      for (let i = 0; i < this.levelCount && status.state === 'normal'; i++) {
        if (this.runCount[base + i] > 0) status = { key, state: 'pending' };
      }
    }
    if (this.trend) {
      const th = this.thresholdsOf(slot);
      status.forecast = this.forecastDetail(slot, this.lastSeenAt[slot], th, th.leadWithin(mask === 0 ? 0 : topLevel(mask)));
    }
    if (this.baseline) status.anomaly = this.anomalyDetail(slot);
    return status;
  }

  snapshot(now: number): EngineSnapshot {
    const keys: SnapshotKey[] = [];
    for (const [key, slot] of this.slots) keys.push(this.rowOf(key, slot));
    return { version: 1, rule: this.fingerprint, severities: [...this.severities], savedAt: now, keys };
  }

  private rowOf(key: string, slot: number): SnapshotKey {
    const runs: Array<[number, number | null]> = [];
    for (let i = 0; i < this.levelCount; i++) {
      const r = slot * this.levelCount + i;
      runs.push([this.runCount[r], orNull(this.runStart[r])]);
    }
    return [
      key,
      this.severitiesOf(this.mask[slot]),
      orNull(this.since[slot]),
      orNull(this.lastMeasured[slot]),
      orNull(this.lastValue[slot]),
      orNull(this.lastSampleAt[slot]),
      orNull(this.lastSeenAt[slot]),
      runs,
      this.lastRaw[slot] ?? null,
      this.trend ? this.trend.save(slot) : this.baseline ? this.baseline.save(slot) : null,
    ];
  }

  /** One key's state as a snapshot row (plain JSON), or undefined when the engine has none. */
  exportKey(key: string): SnapshotKey | undefined {
    const slot = this.slots.get(key);
    return slot === undefined ? undefined : this.rowOf(key, slot);
  }

  /**
   * Sets one key's state to an exported row (undefined: no state), exactly as it was: nothing
   * is announced and its clocks are kept. For state shared between instances, where another
   * instance may have moved the key on.
   */
  importKey(key: string, row: SnapshotKey | undefined, now: number): void {
    const held = this.slots.get(key);
    if (held !== undefined) {
      const top = topLevel(this.mask[held]);
      if (top >= 0) this.activeByLevel[top]--;
      this.free(held);
    }
    if (row === undefined) return;
    const slot = this.slotFor(key);
    this.applyRow(slot, row, this.severities, row[6] ?? NaN, now);
  }

  /** When the key next needs its deadlines fired (Infinity: none until more readings come). */
  keyDeadline(key: string): number {
    const slot = this.slots.get(key);
    return slot === undefined ? Infinity : this.deadlineOf(slot, this.lastSeenAt[slot]);
  }

  /** Fires one key's deadlines that are due by `now`, in order (the local heap is not used). */
  tickKey(key: string, now: number): void {
    const slot = this.slots.get(key);
    if (slot === undefined) return;
    let at = this.deadlineOf(slot, this.lastSeenAt[slot]);
    // Each firing moves the key's deadlines on; the bound only guards against a rule that would not.
    for (let fired = 0; at <= now && fired <= 2 * this.levelCount + 2; fired++) {
      this.fire(slot, at);
      const next = this.deadlineOf(slot, at);
      if (next <= at) break;
      at = next;
    }
  }

  /**
   * Takes back a snapshot (after a redeploy or restart). Alerts stay raised, with their episode
   * ids, and are not announced again. Alerts whose rule or severity no longer exists are
   * cleared with reason 'rule-changed'. Silence clocks restart at `now`: the time Node-RED was
   * down says nothing about the devices.
   */
  restore(snapshot: EngineSnapshot, now: number): void {
    const sameRule = snapshot.rule === this.fingerprint;
    const levelOf = new Map(this.severities.map((s, i) => [s, i]));
    for (const [key, active, since, measured, value, sampleAt, seenAt, runs, raw, learnt] of snapshot.keys) {
      let mask = 0;
      if (sameRule) for (const severity of active) mask |= levelOf.has(severity) ? 1 << (levelOf.get(severity) as number) : 0;
      if (active.length > 0 && mask === 0) {
        const top = active[active.length - 1];
        this.listener.alert({
          id: this.episodeId(key, since ?? now),
          key,
          change: 'cleared',
          state: 'cleared',
          severity: top,
          since: since ?? now,
          at: now,
          value: undefined,
          threshold: undefined,
          reason: 'rule-changed',
        });
      }
      if (!sameRule) continue;
      this.applyRow(this.slotFor(key), [key, active, since, measured, value, sampleAt, seenAt, runs, raw, learnt], snapshot.severities, this.silence ? now : (seenAt ?? NaN), now);
    }
  }

  /** Puts a saved row into a fresh slot; `severities` are the levels the row's runs were saved for. */
  private applyRow(slot: number, row: SnapshotKey, severities: readonly Severity[], seenAt: number, now: number): void {
    const [, active, since, measured, value, sampleAt, , runs, raw, learnt] = row;
    const levelOf = new Map(this.severities.map((s, i) => [s, i]));
    let mask = 0;
    for (const severity of active) mask |= levelOf.has(severity) ? 1 << (levelOf.get(severity) as number) : 0;
    this.lastMeasured[slot] = measured ?? NaN;
    this.lastValue[slot] = value ?? NaN;
    this.lastSampleAt[slot] = sampleAt ?? NaN;
    this.lastSeenAt[slot] = seenAt;
    if (raw !== null) this.lastRaw[slot] = raw;
    this.trend?.restore(slot, learnt);
    this.baseline?.restore(slot, learnt);
    severities.forEach((severity, savedLevel) => {
      const level = levelOf.get(severity);
      const run = runs[savedLevel];
      if (level === undefined || !run) return;
      this.runCount[slot * this.levelCount + level] = run[0];
      this.runStart[slot * this.levelCount + level] = run[1] ?? NaN;
    });
    if (mask !== 0) {
      this.mask[slot] = mask;
      this.since[slot] = since ?? now;
      this.activeByLevel[topLevel(mask)]++;
    }
    this.schedule(slot, this.deadlineOf(slot, now));
  }

  /**
   * Runs each level's machine on the compared value. `mayRaise` false (a forecast not yet sure
   * enough) lets levels clear but not raise; `reported` is the value an alert tells (the
   * reading, where the compared value is derived from it). True when an alert event went out.
   */
  private evaluate(slot: number, value: number | EqualityValue, now: number, th: Thresholds, mayRaise = true, reported = value): boolean {
    const levels = this.levelCount;
    const base = slot * levels;
    const before = this.mask[slot];
    let after = before;
    let timed = false;
    for (let i = 0; i < levels; i++) {
      const bit = 1 << i;
      const active = (after & bit) !== 0;
      const r = base + i;
      if (!(active ? th.clears(i, value) : mayRaise && th.raises(i, value))) {
        this.runCount[r] = 0;
        this.runStart[r] = NaN;
        continue;
      }
      const needed = active ? this.clearNeed : this.raiseNeed;
      const count = ++this.runCount[r];
      if (count === 1) this.runStart[r] = now;
      if (count >= needed.count || now - this.runStart[r] >= needed.ms) {
        after ^= bit;
        this.runCount[r] = 0;
        this.runStart[r] = NaN;
      } else if (needed.ms !== Infinity) {
        timed = true;
      }
    }
    const announced = this.commit(slot, before, after, now, reported, th);
    if (timed) this.schedule(slot, this.deadlineOf(slot, now));
    return announced;
  }

  /** silence rules: a message arrived. Clears a silence alert (after N in a row if so set). */
  private signOfLife(slot: number, now: number): void {
    const silentFor = now - this.lastSeenAt[slot];
    this.lastSeenAt[slot] = now;
    const before = this.mask[slot];
    if (before !== 0) {
      const r = slot * this.levelCount;
      if (++this.runCount[r] >= this.clearNeed.count) {
        this.runCount[r] = 0;
        this.commit(slot, before, 0, now, silentFor, this.thresholdsOf(slot));
      }
    }
    // Usually later than the key's heap entry, so nothing is pushed: tick() reschedules then.
    this.schedule(slot, this.deadlineOf(slot, now));
  }

  /** A deadline of this key came due at `at`. */
  private fire(slot: number, at: number): void {
    const th = this.thresholdsOf(slot);
    const before = this.mask[slot];
    let after = before;
    if (this.silence) {
      const silentFor = at - this.lastSeenAt[slot];
      for (let i = 0; i < this.levelCount; i++) {
        if (silentFor >= th.silenceAfter(i)) after |= 1 << i;
      }
      // A new silence gap breaks a run of readings that was clearing the alert.
      if (before !== 0 && silentFor >= th.silenceAfter(0)) this.runCount[slot * this.levelCount] = 0;
      this.commit(slot, before, after, at, silentFor, th);
      return;
    }
    const base = slot * this.levelCount;
    if (this.trend) after |= this.leadsReached(slot, at, th);
    for (let i = 0; i < this.levelCount; i++) {
      const r = base + i;
      if (this.runCount[r] === 0) continue;
      const needed = (after & (1 << i)) !== 0 ? this.clearNeed : this.raiseNeed;
      if (at - this.runStart[r] >= needed.ms) {
        after ^= 1 << i;
        this.runCount[r] = 0;
        this.runStart[r] = NaN;
      }
    }
    this.commit(slot, before, after, at, this.lastValueOf(slot), th);
  }

  /**
   * forecast rules: between readings the lead time counts down. Levels whose lead time has come
   * by `at` raise now (immediate), or start their duration from the moment it came; a count
   * confirmation waits for readings. Returns the levels to raise.
   */
  private leadsReached(slot: number, at: number, th: Thresholds): number {
    if (this.raiseNeed.count > 1 && this.raiseNeed.ms === Infinity) return 0;
    const crossing = this.crossingOf(slot, th);
    if (Number.isNaN(crossing) || !this.confident(slot)) return 0;
    const mask = this.mask[slot];
    const base = slot * this.levelCount;
    let reached = 0;
    for (let i = 0; i < this.levelCount; i++) {
      const r = base + i;
      const from = crossing - th.leadWithin(i);
      if ((mask & (1 << i)) !== 0 || from > at) continue;
      if (this.raiseNeed.ms === Infinity) {
        reached |= 1 << i;
        this.runCount[r] = 0;
        this.runStart[r] = NaN;
      } else if (this.runCount[r] === 0) {
        this.runCount[r] = 1;
        this.runStart[r] = from;
      }
    }
    return reached;
  }

  /** The earliest time after `after` this key needs tick(), or Infinity. */
  private deadlineOf(slot: number, after: number): number {
    const th = this.thresholdsOf(slot);
    const mask = this.mask[slot];
    let deadline = Infinity;
    if (this.silence) {
      const seen = this.lastSeenAt[slot];
      for (let i = 0; i < this.levelCount; i++) {
        if ((mask & (1 << i)) === 0) deadline = Math.min(deadline, seen + th.silenceAfter(i));
      }
      if (mask !== 0 && this.runCount[slot * this.levelCount] > 0) deadline = Math.min(deadline, seen + th.silenceAfter(0));
      return deadline;
    }
    const base = slot * this.levelCount;
    for (let i = 0; i < this.levelCount; i++) {
      const r = base + i;
      if (this.runCount[r] === 0) continue;
      const needed = (mask & (1 << i)) !== 0 ? this.clearNeed : this.raiseNeed;
      deadline = Math.min(deadline, this.runStart[r] + needed.ms);
    }
    if (this.trend) {
      const crossing = this.crossingOf(slot, th);
      if (!Number.isNaN(crossing) && this.confident(slot)) deadline = Math.min(deadline, this.leadDeadline(slot, th, after, crossing));
    }
    return deadline;
  }

  /**
   * forecast rules, with a confident trend crossing at `crossing`: the first time after `after`
   * that a level not yet raised (nor running) comes within its lead time. A count confirmation
   * waits for readings, so it has none.
   */
  private leadDeadline(slot: number, th: Thresholds, after: number, crossing: number): number {
    if (this.raiseNeed.count > 1 && this.raiseNeed.ms === Infinity) return Infinity;
    const mask = this.mask[slot];
    const base = slot * this.levelCount;
    let deadline = Infinity;
    for (let i = 0; i < this.levelCount; i++) {
      if ((mask & (1 << i)) !== 0 || this.runCount[base + i] !== 0) continue;
      const from = crossing - th.leadWithin(i);
      if (from > after && from < deadline) deadline = from;
    }
    return deadline;
  }

  private schedule(slot: number, at: number): void {
    if (at === Infinity || !this.localTimers) return;
    const current = this.timerAt[slot];
    // A live entry at or before `at` will reschedule when it fires.
    if (current <= at) return;
    this.timerAt[slot] = at;
    this.deadlines.push(at, slot);
  }

  private commit(
    slot: number,
    before: number,
    after: number,
    at: number,
    value: number | EqualityValue | undefined,
    th: Thresholds,
    reason?: 'reset',
  ): boolean {
    if (before === after) return false;
    const key = this.keys[slot] as string;
    this.mask[slot] = after;
    const previousTop = topLevel(before);
    const top = topLevel(after);
    if (previousTop >= 0) this.activeByLevel[previousTop]--;
    if (top >= 0) this.activeByLevel[top]++;
    if (before === 0) this.since[slot] = at;
    const since = this.since[slot];
    if (after === 0) this.since[slot] = NaN;
    this.listener.stateChanged?.(key, this.severitiesOf(after), since);
    if (top === previousTop) return false;

    const severities = this.severities;
    const event: AlertEvent = {
      id: this.episodeId(key, since),
      key,
      change: 'raised',
      state: after === 0 ? 'cleared' : 'raised',
      severity: severities[Math.max(top, previousTop)],
      since,
      at,
      value,
      threshold: undefined,
    };
    if (previousTop < 0) {
      event.threshold = th.raiseThreshold(top);
    } else if (top < 0) {
      event.change = 'cleared';
      event.severity = severities[previousTop];
      event.threshold = th.clearThreshold(previousTop);
    } else {
      event.change = top > previousTop ? 'escalated' : 'deescalated';
      event.severity = severities[top];
      event.previousSeverity = severities[previousTop];
      event.threshold = top > previousTop ? th.raiseThreshold(top) : th.clearThreshold(previousTop);
    }
    if (reason) event.reason = reason;
    this.addDetail(event, slot, th);
    this.listener.alert(event);
    return true;
  }

  private episodeId(key: string, since: number): string {
    return createHash('sha1').update(`${this.scope}\u0000${key}\u0000${since}`).digest('hex').slice(0, 24);
  }

  private lastValueOf(slot: number): number | EqualityValue | undefined {
    if (this.trend || this.baseline) {
      const v = this.lastValue[slot];
      return Number.isNaN(v) ? undefined : v;
    }
    if (this.numeric) {
      const v = this.lastMeasured[slot];
      return Number.isNaN(v) ? undefined : v;
    }
    return this.lastRaw[slot];
  }

  private thresholdsOf(slot: number): Thresholds {
    return this.overrides.size === 0 ? this.base : (this.overrides.get(slot) ?? this.base);
  }

  private useThresholds(slot: number, thresholds: Thresholds | undefined): void {
    if (thresholds !== undefined && thresholds !== this.base) this.overrides.set(slot, thresholds);
    else if (this.overrides.size > 0) this.overrides.delete(slot);
  }

  private severitiesOf(mask: number): Severity[] {
    const out: Severity[] = [];
    for (let i = 0; i < this.levelCount; i++) if ((mask & (1 << i)) !== 0) out.push(this.severities[i]);
    return out;
  }

  private slotFor(key: string): number {
    const existing = this.slots.get(key);
    if (existing !== undefined) return existing;
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.keys.length;
      if (slot >= this.capacity) this.grow(this.capacity * 2);
    }
    this.keys[slot] = key;
    this.slots.set(key, slot);
    this.mask[slot] = 0;
    this.since[slot] = NaN;
    this.lastMeasured[slot] = NaN;
    this.lastValue[slot] = NaN;
    this.lastSampleAt[slot] = NaN;
    this.lastSeenAt[slot] = NaN;
    this.timerAt[slot] = NaN;
    this.trend?.clear(slot);
    this.announced[slot] = NaN;
    this.baseline?.clear(slot);
    const base = slot * this.levelCount;
    this.runStart.fill(NaN, base, base + this.levelCount);
    this.runCount.fill(0, base, base + this.levelCount);
    return slot;
  }

  private free(slot: number): void {
    const key = this.keys[slot];
    if (key === undefined) return;
    this.slots.delete(key);
    this.keys[slot] = undefined;
    this.lastRaw[slot] = undefined;
    this.overrides.delete(slot);
    this.timerAt[slot] = NaN;
    this.freeSlots.push(slot);
  }

  private grow(capacity: number): void {
    const levels = this.levelCount;
    this.mask = resized(this.mask, capacity);
    this.since = resized(this.since, capacity);
    this.lastMeasured = resized(this.lastMeasured, capacity);
    this.lastValue = resized(this.lastValue, capacity);
    this.lastSampleAt = resized(this.lastSampleAt, capacity);
    this.lastSeenAt = resized(this.lastSeenAt, capacity);
    this.timerAt = resized(this.timerAt, capacity);
    this.runStart = resized(this.runStart, capacity * levels);
    this.runCount = resized(this.runCount, capacity * levels);
    this.trend?.grow(capacity);
    if (this.trend) this.announced = resized(this.announced, capacity);
    this.baseline?.grow(capacity);
    this.capacity = capacity;
  }
}

function topLevel(mask: number): number {
  return 31 - Math.clz32(mask);
}

function orNull(n: number): number | null {
  return Number.isNaN(n) ? null : n;
}

const NUMBER_TEXT = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** A finite number from a number or a numeric string; anything else is an error. */
export function numericReading(raw: unknown): number | ReadingError {
  if (typeof raw === 'number') {
    return Number.isFinite(raw) ? raw : { code: 'not_finite', message: `${raw} is not a finite number` };
  }
  if (typeof raw === 'string') {
    if (NUMBER_TEXT.test(raw)) {
      const n = Number(raw);
      if (Number.isFinite(n)) return n;
      return { code: 'not_finite', message: `"${clip(raw)}" is out of range` };
    }
    if (/^\s*[+-]?(NaN|Infinity)\s*$/.test(raw)) return { code: 'not_finite', message: `"${raw.trim()}" is not a finite number` };
    return { code: 'not_numeric', message: `"${clip(raw)}" is not a number` };
  }
  if (raw === undefined || raw === null) return { code: 'missing_value', message: 'no value' };
  return { code: 'wrong_type', message: `expected a number, got ${describeType(raw)}` };
}

function equalityReadingError(raw: unknown): ReadingError | undefined {
  if (raw === undefined || raw === null) return { code: 'missing_value', message: 'no value' };
  if (typeof raw === 'number') return Number.isFinite(raw) ? undefined : { code: 'not_finite', message: `${raw} is not a finite number` };
  if (typeof raw === 'string' || typeof raw === 'boolean') return undefined;
  return { code: 'wrong_type', message: `expected a number, string or boolean, got ${describeType(raw)}` };
}

function describeType(raw: unknown): string {
  if (Array.isArray(raw)) return 'an array';
  if (Buffer.isBuffer(raw)) return 'a buffer';
  return typeof raw === 'object' ? 'an object' : `a ${typeof raw}`;
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** One journal line: a key's active severities and episode start after a change. */
export interface JournalEntry {
  k: string;
  a: Severity[];
  s: number | null;
}

/** The snapshot with journal entries applied in the order they were written. */
export function applyJournal(snapshot: EngineSnapshot, entries: readonly JournalEntry[]): EngineSnapshot {
  if (entries.length === 0) return snapshot;
  const keys = [...snapshot.keys];
  const indexOf = new Map(keys.map((k, i) => [k[0], i]));
  for (const entry of entries) {
    const i = indexOf.get(entry.k);
    if (i === undefined) {
      indexOf.set(entry.k, keys.length);
      keys.push([entry.k, entry.a, entry.s, null, null, null, null, [], null]);
    } else {
      const updated: SnapshotKey = [...keys[i]];
      updated[1] = entry.a;
      updated[2] = entry.s;
      keys[i] = updated;
    }
  }
  return { ...snapshot, keys };
}
