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

/** A key's baseline: four doubles side by side, as a reading touches them all. */
const MEAN = 0;
/** Sum of weight times squared deviation (West's S). */
const SQUARES = 1;
/** Sum of weights, and of squared weights. */
const WEIGHT = 2;
const WEIGHT2 = 3;
const STRIDE = 4;

export class BaselineColumns {
  private sums = new Float64Array(0);
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
    this.sums = resized(this.sums, capacity * STRIDE);
  }

  clear(slot: number): void {
    this.sums[slot * STRIDE + WEIGHT] = 0;
  }

  /** The usual value (NaN before the first reading). */
  usual(slot: number): number {
    return this.sums[slot * STRIDE + WEIGHT] > 0 ? this.sums[slot * STRIDE + MEAN] : NaN;
  }

  /** The usual spread: the weighted standard deviation (0 before the second reading). */
  spread(slot: number): number {
    const o = slot * STRIDE;
    const w = this.sums[o + WEIGHT];
    const reliable = w - this.sums[o + WEIGHT2] / w;
    return reliable > 0 ? Math.sqrt(this.sums[o + SQUARES] / reliable) : 0;
  }

  /**
   * How unusual `value` is for this key, in usual spreads, on the watched side (0 when it is on
   * the other side, within the minimum deviation, or while the key warms up).
   */
  score(slot: number, value: number): number {
    const o = slot * STRIDE;
    if (!(this.sums[o + WEIGHT] >= this.warm)) return 0;
    const mean = this.sums[o + MEAN];
    const deviation = value - mean;
    const size = this.side === 'both' ? Math.abs(deviation) : this.side === 'above' ? deviation : -deviation;
    if (!(size > 0) || size < this.minDeviation) return 0;
    // A key that always read the same value: any change is unusual, but finitely so.
    const spread = Math.max(this.spread(slot), 1e-9 * Math.max(1, Math.abs(mean)));
    return size / spread;
  }

  learn(slot: number, value: number): void {
    const s = this.sums;
    const o = slot * STRIDE;
    const keep = this.keep;
    const previous = s[o + WEIGHT];
    if (previous === 0) {
      s[o + MEAN] = value;
      s[o + SQUARES] = 0;
      s[o + WEIGHT] = 1;
      s[o + WEIGHT2] = 1;
      return;
    }
    let deviation = value - s[o + MEAN];
    if (previous >= this.warm) {
      const limit = CLIP * this.spread(slot);
      if (limit > 0) deviation = Math.max(-limit, Math.min(limit, deviation));
    }
    const weight = keep * previous + 1;
    const step = deviation / weight;
    s[o + MEAN] += step;
    s[o + SQUARES] = keep * s[o + SQUARES] + deviation * (deviation - step);
    s[o + WEIGHT] = weight;
    s[o + WEIGHT2] = keep * keep * s[o + WEIGHT2] + 1;
  }

  save(slot: number): number[] | null {
    return this.sums[slot * STRIDE + WEIGHT] > 0 ? Array.from(this.sums.subarray(slot * STRIDE, (slot + 1) * STRIDE)) : null;
  }

  /** Takes back what save() gave; anything else starts the key's baseline afresh. */
  restore(slot: number, saved: unknown): void {
    const valid = Array.isArray(saved) && saved.length === STRIDE && saved.every((n) => typeof n === 'number' && Number.isFinite(n)) && saved[SQUARES] >= 0 && saved[WEIGHT] > 0 && saved[WEIGHT2] > 0;
    if (!valid) {
      this.clear(slot);
      return;
    }
    this.sums.set(saved as number[], slot * STRIDE);
  }
}
