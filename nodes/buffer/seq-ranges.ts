/**
 * A set of message sequence numbers kept as sorted, disjoint, inclusive ranges. Acknowledgements
 * in a queue come mostly in order, so a million acknowledged messages are usually a few ranges.
 */
export class SeqRanges {
  private starts: number[] = [];
  private ends: number[] = [];

  static of(pairs: ReadonlyArray<readonly [number, number]>): SeqRanges {
    const set = new SeqRanges();
    for (const [from, to] of pairs) set.add(from, to);
    return set;
  }

  get rangeCount(): number {
    return this.starts.length;
  }

  /** Adds from..to (inclusive). */
  add(from: number, to = from): void {
    if (to < from) return;
    // First range that ends at or after from - 1 (it may touch or overlap).
    const i = this.firstEndingFrom(from - 1);
    if (i === this.starts.length || this.starts[i] > to + 1) {
      this.starts.splice(i, 0, from);
      this.ends.splice(i, 0, to);
      return;
    }
    const start = Math.min(from, this.starts[i]);
    let end = Math.max(to, this.ends[i]);
    let j = i + 1;
    while (j < this.starts.length && this.starts[j] <= end + 1) {
      end = Math.max(end, this.ends[j]);
      j++;
    }
    this.starts.splice(i, j - i, start);
    this.ends.splice(i, j - i, end);
  }

  addAll(other: SeqRanges): void {
    for (let i = 0; i < other.starts.length; i++) this.add(other.starts[i], other.ends[i]);
  }

  has(seq: number): boolean {
    const i = this.firstEndingFrom(seq);
    return i < this.starts.length && this.starts[i] <= seq;
  }

  /** How many members lie in from..to (inclusive). */
  countIn(from: number, to: number): number {
    let count = 0;
    for (let i = this.firstEndingFrom(from); i < this.starts.length && this.starts[i] <= to; i++) {
      count += Math.min(to, this.ends[i]) - Math.max(from, this.starts[i]) + 1;
    }
    return count;
  }

  /** Forgets every member below seq. */
  deleteBelow(seq: number): void {
    const i = this.firstEndingFrom(seq);
    if (i > 0) {
      this.starts.splice(0, i);
      this.ends.splice(0, i);
    }
    if (this.starts.length > 0 && this.starts[0] < seq) this.starts[0] = seq;
  }

  toPairs(): Array<[number, number]> {
    return this.starts.map((s, i) => [s, this.ends[i]]);
  }

  /** Index of the first range whose end is >= seq (binary search). */
  private firstEndingFrom(seq: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
