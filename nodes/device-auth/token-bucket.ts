/**
 * Token buckets per key (a device, or an anonymous source): `rate` tokens a second up to `burst`.
 * Bounded: past `capacity` keys the least recently used bucket is dropped (it would be full again
 * soon anyway, unless its key is busy, and then it is not the least recently used).
 */

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly capacity = 100_000,
  ) {}

  /** Takes a token: 0 when there was one, else the milliseconds until there will be. */
  take(key: string, now: number): number {
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.rate) / 1000);
      bucket.at = now;
    } else {
      bucket = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.capacity) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 1000) / this.rate);
  }

  get size(): number {
    return this.buckets.size;
  }
}
