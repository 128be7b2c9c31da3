/**
 * The trend of each key's readings: a straight line fitted by exponentially weighted least
 * squares on the readings' own times, kept as seven running sums per key (no readings stored).
 *
 * A reading measured `age` ms before the key's newest one weighs e^(-age/tau). A newer reading
 * scales the sums by the decay of the time that passed and adds itself with weight 1; an older
 * one (a gateway's late batch) adds itself with its own smaller weight. The sums are therefore
 * the same whatever order the readings arrive in. Means and co-moments are updated in West's
 * weighted form (centred, so no large sums cancel), with time kept relative to the newest
 * reading so that the numbers stay small.
 */
import { resized } from './columns';

export type Direction = 'below' | 'above';

/**
 * A key's trend: eight doubles side by side, one cache line, since a reading touches them all.
 * The newest reading's time (ms) is the origin of the other times.
 */
const NEWEST = 0;
/** Sum of weights, and of squared weights (for the effective number of readings). */
const WEIGHT = 1;
const WEIGHT2 = 2;
/** Weighted mean time (relative to newest, so at most 0) and mean value. */
const MEAN_TIME = 3;
const MEAN_VALUE = 4;
/** Weighted co-moments: sum w (t - mean t)², sum w (t - mean t)(y - mean y), sum w (y - mean y)². */
const CTT = 5;
const CTY = 6;
const CYY = 7;
const STRIDE = 8;

export class TrendColumns {
  private sums = new Float64Array(0);

  /** @param tau the weights' time constant (ms): half the trend window. */
  constructor(private readonly tau: number) {}

  grow(capacity: number): void {
    this.sums = resized(this.sums, capacity * STRIDE);
  }

  clear(slot: number): void {
    this.sums.fill(0, slot * STRIDE, (slot + 1) * STRIDE);
  }

  add(slot: number, at: number, value: number): void {
    const s = this.sums;
    const o = slot * STRIDE;
    const total = s[o + WEIGHT];
    if (total === 0) {
      s[o + NEWEST] = at;
      s[o + WEIGHT] = 1;
      s[o + WEIGHT2] = 1;
      s[o + MEAN_TIME] = 0;
      s[o + MEAN_VALUE] = value;
      s[o + CTT] = 0;
      s[o + CTY] = 0;
      s[o + CYY] = 0;
      return;
    }
    let w = 1;
    let t = 0;
    const newest = s[o + NEWEST];
    if (at > newest) {
      // Everything known so far ages by the time that passed.
      const decay = Math.exp((newest - at) / this.tau);
      s[o + WEIGHT] = total * decay;
      s[o + WEIGHT2] *= decay * decay;
      s[o + CTT] *= decay;
      s[o + CTY] *= decay;
      s[o + CYY] *= decay;
      s[o + MEAN_TIME] -= at - newest;
      s[o + NEWEST] = at;
    } else {
      t = at - newest;
      w = Math.exp(t / this.tau);
    }
    const sum = s[o + WEIGHT] + w;
    const dt = t - s[o + MEAN_TIME];
    const dy = value - s[o + MEAN_VALUE];
    const meanTime = s[o + MEAN_TIME] + (dt * w) / sum;
    const meanValue = s[o + MEAN_VALUE] + (dy * w) / sum;
    s[o + CTT] += w * dt * (t - meanTime);
    s[o + CTY] += w * dt * (value - meanValue);
    s[o + CYY] += w * dy * (value - meanValue);
    s[o + MEAN_TIME] = meanTime;
    s[o + MEAN_VALUE] = meanValue;
    s[o + WEIGHT] = sum;
    s[o + WEIGHT2] += w * w;
  }

  /** The fitted change per ms (NaN without two distinct times). */
  slope(slot: number): number {
    const ctt = this.sums[slot * STRIDE + CTT];
    return ctt > 0 ? this.sums[slot * STRIDE + CTY] / ctt : NaN;
  }

  /** The fitted value at the newest reading's time. */
  level(slot: number): number {
    const slope = this.slope(slot);
    const o = slot * STRIDE;
    return Number.isNaN(slope) ? this.sums[o + MEAN_VALUE] : this.sums[o + MEAN_VALUE] - slope * this.sums[o + MEAN_TIME];
  }

  newestAt(slot: number): number {
    return this.sums[slot * STRIDE + WEIGHT] > 0 ? this.sums[slot * STRIDE + NEWEST] : NaN;
  }

  /**
   * When the fitted line reaches `target` (ms): NaN when it heads away from it or is flat. When
   * the line is already past the target at the newest reading, the time it got there (at most
   * the newest reading's time).
   */
  crossingAt(slot: number, target: number, direction: Direction): number {
    const slope = this.slope(slot);
    if (Number.isNaN(slope)) return NaN;
    const level = this.level(slot);
    const past = direction === 'below' ? level <= target : level >= target;
    const towards = direction === 'below' ? slope < 0 : slope > 0;
    const newest = this.sums[slot * STRIDE + NEWEST];
    if (!towards) return past ? newest : NaN;
    return newest + (target - level) / slope;
  }

  /**
   * How sure the fit is of the trend: 1 - (standard error of the slope / slope), so 0.9 means
   * the rate of change is known to within ±10 % (one standard error), and 0 a slope no larger
   * than its own error. It weighs the spread around the line and the number of readings alike:
   * the slope's t statistic t = sqrt((n - 2) R² / (1 - R²)) gives 1 - 1/t.
   */
  confidence(slot: number): number {
    const o = slot * STRIDE;
    const ctt = this.sums[o + CTT];
    const n = this.readings(slot);
    if (!(ctt > 0) || !(n > 2)) return 0;
    const cty = this.sums[o + CTY];
    const explained = (cty * cty) / ctt;
    const unexplained = this.sums[o + CYY] - explained;
    if (!(explained > 0)) return 0;
    if (!(unexplained > 0)) return 1;
    return Math.max(0, 1 - Math.sqrt(unexplained / ((n - 2) * explained)));
  }

  /**
   * Whether the trend may raise: at least `readings` effective readings, a weighted span of
   * times of at least `span`, and a confidence of at least `confidence`; the same tests as
   * readings(), span() and confidence(), squared so that no square root is taken per reading.
   */
  sure(slot: number, readings: number, span: number, confidence: number): boolean {
    const s = this.sums;
    const o = slot * STRIDE;
    const w = s[o + WEIGHT];
    const n = w > 0 ? (w * w) / s[o + WEIGHT2] : 0;
    const ctt = s[o + CTT];
    if (!(n >= readings) || !(12 * ctt >= span * span * w) || !(n > 2)) return false;
    const cty = s[o + CTY];
    const explained = (cty * cty) / ctt;
    const unexplained = s[o + CYY] - explained;
    const doubt = 1 - confidence;
    return confidence <= 0 || (explained > 0 && unexplained <= doubt * doubt * (n - 2) * explained);
  }

  /** The time the readings cover, as the span of evenly spread readings with the same weighted spread of times. */
  span(slot: number): number {
    const w = this.sums[slot * STRIDE + WEIGHT];
    return w > 0 ? Math.sqrt((12 * this.sums[slot * STRIDE + CTT]) / w) : 0;
  }

  /** The effective number of readings behind the fit (Kish): (sum w)² / sum w². */
  readings(slot: number): number {
    const w = this.sums[slot * STRIDE + WEIGHT];
    return w > 0 ? (w * w) / this.sums[slot * STRIDE + WEIGHT2] : 0;
  }

  /** The spread of the readings around the line (weighted residual standard deviation). */
  residual(slot: number): number {
    const o = slot * STRIDE;
    const ctt = this.sums[o + CTT];
    const w = this.sums[o + WEIGHT];
    const n = this.readings(slot);
    if (!(ctt > 0) || !(n > 2)) return NaN;
    const cty = this.sums[o + CTY];
    const sse = Math.max(0, this.sums[o + CYY] - (cty * cty) / ctt);
    return Math.sqrt(((sse / w) * n) / (n - 2));
  }

  save(slot: number): number[] | null {
    if (this.sums[slot * STRIDE + WEIGHT] === 0) return null;
    return Array.from(this.sums.subarray(slot * STRIDE, (slot + 1) * STRIDE));
  }

  /** Takes back what save() gave; anything else leaves the key without a trend. */
  restore(slot: number, saved: unknown): void {
    if (!Array.isArray(saved) || saved.length !== STRIDE || !saved.every((n) => typeof n === 'number' && Number.isFinite(n)) || !(saved[WEIGHT] > 0)) {
      this.clear(slot);
      return;
    }
    this.sums.set(saved as number[], slot * STRIDE);
  }
}
