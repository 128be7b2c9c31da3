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

/** Doubles per key in a saved trend: newest time, weight, weight², mean time, mean value, three co-moments. */
const SAVED_LENGTH = 8;

export class TrendColumns {
  /** The newest reading's time (ms): the origin of the other columns' times. */
  private newest = new Float64Array(0);
  /** Sum of weights, and of squared weights (for the effective number of readings). */
  private weight = new Float64Array(0);
  private weight2 = new Float64Array(0);
  /** Weighted mean time (relative to newest, so at most 0) and mean value. */
  private meanTime = new Float64Array(0);
  private meanValue = new Float64Array(0);
  /** Weighted co-moments: sum w (t - mean t)², sum w (t - mean t)(y - mean y), sum w (y - mean y)². */
  private ctt = new Float64Array(0);
  private cty = new Float64Array(0);
  private cyy = new Float64Array(0);

  /** @param tau the weights' time constant (ms): half the trend window. */
  constructor(private readonly tau: number) {}

  grow(capacity: number): void {
    this.newest = resized(this.newest, capacity);
    this.weight = resized(this.weight, capacity);
    this.weight2 = resized(this.weight2, capacity);
    this.meanTime = resized(this.meanTime, capacity);
    this.meanValue = resized(this.meanValue, capacity);
    this.ctt = resized(this.ctt, capacity);
    this.cty = resized(this.cty, capacity);
    this.cyy = resized(this.cyy, capacity);
  }

  clear(slot: number): void {
    this.weight[slot] = 0;
    this.weight2[slot] = 0;
  }

  add(slot: number, at: number, value: number): void {
    const total = this.weight[slot];
    if (total === 0) {
      this.newest[slot] = at;
      this.weight[slot] = 1;
      this.weight2[slot] = 1;
      this.meanTime[slot] = 0;
      this.meanValue[slot] = value;
      this.ctt[slot] = 0;
      this.cty[slot] = 0;
      this.cyy[slot] = 0;
      return;
    }
    let w = 1;
    let t = 0;
    const newest = this.newest[slot];
    if (at > newest) {
      // Everything known so far ages by the time that passed.
      const decay = Math.exp((newest - at) / this.tau);
      this.weight[slot] = total * decay;
      this.weight2[slot] *= decay * decay;
      this.ctt[slot] *= decay;
      this.cty[slot] *= decay;
      this.cyy[slot] *= decay;
      this.meanTime[slot] -= at - newest;
      this.newest[slot] = at;
    } else {
      t = at - newest;
      w = Math.exp(t / this.tau);
    }
    const sum = this.weight[slot] + w;
    const dt = t - this.meanTime[slot];
    const dy = value - this.meanValue[slot];
    const meanTime = this.meanTime[slot] + (dt * w) / sum;
    const meanValue = this.meanValue[slot] + (dy * w) / sum;
    this.ctt[slot] += w * dt * (t - meanTime);
    this.cty[slot] += w * dt * (value - meanValue);
    this.cyy[slot] += w * dy * (value - meanValue);
    this.meanTime[slot] = meanTime;
    this.meanValue[slot] = meanValue;
    this.weight[slot] = sum;
    this.weight2[slot] += w * w;
  }

  /** The fitted change per ms (NaN without two distinct times). */
  slope(slot: number): number {
    const ctt = this.ctt[slot];
    return ctt > 0 ? this.cty[slot] / ctt : NaN;
  }

  /** The fitted value at the newest reading's time. */
  level(slot: number): number {
    const slope = this.slope(slot);
    return Number.isNaN(slope) ? this.meanValue[slot] : this.meanValue[slot] - slope * this.meanTime[slot];
  }

  newestAt(slot: number): number {
    return this.weight[slot] > 0 ? this.newest[slot] : NaN;
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
    if (!towards) return past ? this.newest[slot] : NaN;
    return this.newest[slot] + (target - level) / slope;
  }

  /**
   * How sure the fit is of the trend: 1 - (standard error of the slope / slope), so 0.9 means
   * the rate of change is known to within ±10 % (one standard error), and 0 a slope no larger
   * than its own error. It weighs the spread around the line and the number of readings alike:
   * the slope's t statistic t = sqrt((n - 2) R² / (1 - R²)) gives 1 - 1/t.
   */
  confidence(slot: number): number {
    const ctt = this.ctt[slot];
    const n = this.readings(slot);
    if (!(ctt > 0) || !(n > 2)) return 0;
    const cty = this.cty[slot];
    const explained = (cty * cty) / ctt;
    const unexplained = this.cyy[slot] - explained;
    if (!(explained > 0)) return 0;
    if (!(unexplained > 0)) return 1;
    return Math.max(0, 1 - Math.sqrt(unexplained / ((n - 2) * explained)));
  }

  /** The time the readings cover, as the span of evenly spread readings with the same weighted spread of times. */
  span(slot: number): number {
    const w = this.weight[slot];
    return w > 0 ? Math.sqrt((12 * this.ctt[slot]) / w) : 0;
  }

  /** The effective number of readings behind the fit (Kish): (sum w)² / sum w². */
  readings(slot: number): number {
    const w2 = this.weight2[slot];
    return w2 > 0 ? (this.weight[slot] * this.weight[slot]) / w2 : 0;
  }

  /** The spread of the readings around the line (weighted residual standard deviation). */
  residual(slot: number): number {
    const ctt = this.ctt[slot];
    const w = this.weight[slot];
    const n = this.readings(slot);
    if (!(ctt > 0) || !(n > 2)) return NaN;
    const cty = this.cty[slot];
    const sse = Math.max(0, this.cyy[slot] - (cty * cty) / ctt);
    return Math.sqrt(((sse / w) * n) / (n - 2));
  }

  save(slot: number): number[] | null {
    if (this.weight[slot] === 0) return null;
    return [this.newest[slot], this.weight[slot], this.weight2[slot], this.meanTime[slot], this.meanValue[slot], this.ctt[slot], this.cty[slot], this.cyy[slot]];
  }

  /** Takes back what save() gave; anything else leaves the key without a trend. */
  restore(slot: number, saved: unknown): void {
    if (!Array.isArray(saved) || saved.length !== SAVED_LENGTH || !saved.every((n) => typeof n === 'number' && Number.isFinite(n)) || !(saved[1] > 0)) {
      this.clear(slot);
      return;
    }
    [this.newest[slot], this.weight[slot], this.weight2[slot], this.meanTime[slot], this.meanValue[slot], this.ctt[slot], this.cty[slot], this.cyy[slot]] = saved as number[];
  }
}
