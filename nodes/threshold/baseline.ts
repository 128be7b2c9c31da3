/**
 * What each key usually reads: an exponentially weighted mean and variance per key, updated
 * with every reading (four numbers a key, no readings stored), and how unusual a new reading is
 * against them, in usual spreads (a z-score).
 *
 * Each reading weighs 1 when it comes and (1 - alpha) less with every reading after it. Mean and
 * variance follow West's weighted incremental form, normalised by the weight gathered so far, so
 * the first readings are averaged fairly instead of the first one dominating, and the variance
 * is divided by its reliability weights (W - W2/W), so a short history does not understate it.
 *
 * Robust in the way of Gelper, Fried and Croux (2010): the deviation a reading teaches the
 * baseline is clipped at CLIP spreads (Huber), so one wild reading neither drags the mean nor
 * inflates the spread enough to hide the next one, while a lasting change of normal is still
 * learned within about the history length.
 */
import { resized } from './columns';

export type Side = 'both' | 'above' | 'below';

/** A deviation teaches the baseline at most this many spreads. */
const CLIP = 3;

export class BaselineColumns {
  private mean = new Float64Array(0);
  /** Sum of weight times squared deviation (West's S). */
  private squares = new Float64Array(0);
  /** Sum of weights, and of squared weights. */
  private weight = new Float64Array(0);
  private weight2 = new Float64Array(0);
  private readonly keep: number;
  /** The weight gathered after `warmup` readings. */
  private readonly warm: number;

  /**
   * @param history readings the baseline mostly remembers: each weighs 2 / (history + 1) less
   *   with every later reading, as an exponential average equivalent to a moving average of
   *   that many readings
   * @param warmup readings learnt before any may count as unusual
   * @param minDeviation deviations smaller than this (in the reading's unit) are never unusual
   */
  constructor(
    history: number,
    warmup: number,
    private readonly side: Side,
    private readonly minDeviation: number,
  ) {
    this.keep = 1 - 2 / (history + 1);
    // The weight after n readings is (1 - keep^n) / (1 - keep); a hair less so that rounding never delays it.
    this.warm = ((1 - this.keep ** warmup) / (1 - this.keep)) * (1 - 1e-9);
  }

  grow(capacity: number): void {
    this.mean = resized(this.mean, capacity);
    this.squares = resized(this.squares, capacity);
    this.weight = resized(this.weight, capacity);
    this.weight2 = resized(this.weight2, capacity);
  }

  clear(slot: number): void {
    this.weight[slot] = 0;
  }

  /** The usual value (NaN before the first reading). */
  usual(slot: number): number {
    return this.weight[slot] > 0 ? this.mean[slot] : NaN;
  }

  /** The usual spread: the weighted standard deviation (0 before the second reading). */
  spread(slot: number): number {
    const w = this.weight[slot];
    const reliable = w - this.weight2[slot] / w;
    return reliable > 0 ? Math.sqrt(this.squares[slot] / reliable) : 0;
  }

  /**
   * How unusual `value` is for this key, in usual spreads, on the watched side (0 when it is on
   * the other side, within the minimum deviation, or while the key warms up).
   */
  score(slot: number, value: number): number {
    if (!(this.weight[slot] >= this.warm)) return 0;
    const deviation = value - this.mean[slot];
    const size = this.side === 'both' ? Math.abs(deviation) : this.side === 'above' ? deviation : -deviation;
    if (!(size > 0) || size < this.minDeviation) return 0;
    // A key that always read the same value: any change is unusual, but finitely so.
    const spread = Math.max(this.spread(slot), 1e-9 * Math.max(1, Math.abs(this.mean[slot])));
    return size / spread;
  }

  learn(slot: number, value: number): void {
    const keep = this.keep;
    const previous = this.weight[slot];
    if (previous === 0) {
      this.mean[slot] = value;
      this.squares[slot] = 0;
      this.weight[slot] = 1;
      this.weight2[slot] = 1;
      return;
    }
    let deviation = value - this.mean[slot];
    if (previous >= this.warm) {
      const limit = CLIP * this.spread(slot);
      if (limit > 0) deviation = Math.max(-limit, Math.min(limit, deviation));
    }
    const weight = keep * previous + 1;
    const step = deviation / weight;
    this.mean[slot] += step;
    this.squares[slot] = keep * this.squares[slot] + deviation * (deviation - step);
    this.weight[slot] = weight;
    this.weight2[slot] = keep * keep * this.weight2[slot] + 1;
  }

  save(slot: number): number[] | null {
    return this.weight[slot] > 0 ? [this.mean[slot], this.squares[slot], this.weight[slot], this.weight2[slot]] : null;
  }

  /** Takes back what save() gave; anything else starts the key's baseline afresh. */
  restore(slot: number, saved: unknown): void {
    const valid = Array.isArray(saved) && saved.length === 4 && saved.every((n) => typeof n === 'number' && Number.isFinite(n)) && saved[1] >= 0 && saved[2] > 0 && saved[3] > 0;
    if (!valid) {
      this.clear(slot);
      return;
    }
    [this.mean[slot], this.squares[slot], this.weight[slot], this.weight2[slot]] = saved as number[];
  }
}
