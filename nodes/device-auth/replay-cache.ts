/**
 * Remembers nonces, JWT ids and webhook signatures until they could no longer be accepted anyway,
 * in a fixed amount of memory: an open-addressing table of 64-bit fingerprints with an expiry
 * each (16 bytes a slot, allocated once). Expired slots are reused; when too many slots have
 * been used the table is rebuilt with the live entries only. When the live entries fill it, the
 * eighth that expire soonest are forgotten and their latest expiry becomes a floor: a credential
 * that would expire by then is refused ("full"), since it could be one of those forgotten. Fresh
 * credentials expire later than any remembered one, so a steady stream is never stopped; before,
 * a full table refused everything until entries expired (a skew window of 300 s at 100,000
 * entries stalled any sender above 333 signed messages a second).
 *
 * Only credentials that verified are added, so an attacker cannot fill it with made-up nonces.
 */

export type ReplayAnswer = 'fresh' | 'replayed' | 'full';

const MAX_LOAD = 0.7;

export class ReplayCache {
  private readonly mask: number;
  private readonly high: Uint32Array;
  private readonly low: Uint32Array;
  private readonly until: Float64Array;
  /** Slots ever written since the last rebuild (live or expired): what probes walk through. */
  private used = 0;
  private live = 0;
  /** Expiry of the latest forgotten entry: credentials expiring by then cannot be checked. */
  private floor = 0;

  constructor(readonly capacity: number) {
    let slots = 1024;
    while (slots < capacity * 2) slots *= 2;
    this.mask = slots - 1;
    this.high = new Uint32Array(slots);
    this.low = new Uint32Array(slots);
    this.until = new Float64Array(slots);
  }

  /** Bytes the table holds, whatever it contains. */
  get bytes(): number {
    return this.high.byteLength + this.low.byteLength + this.until.byteLength;
  }

  /** Whether key was seen and is still remembered; if not, remembers it until `until`. */
  check(key: string, until: number, now: number): ReplayAnswer {
    // Two FNV-1a style hashes with different offsets: 64 bits, the low one never 0 (0 marks empty).
    let h = 0x811c9dc5;
    let l = 0x01000193;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      h = Math.imul(h ^ c, 0x01000193);
      l = Math.imul(l ^ c, 0x5bd1e995) ^ (l >>> 15);
    }
    h >>>= 0;
    l = (l | 1) >>> 0;
    let slot = h & this.mask;
    let reusable = -1;
    for (;;) {
      const stored = this.low[slot];
      if (stored === 0) break;
      if (this.until[slot] <= now) {
        if (reusable < 0) reusable = slot;
      } else if (stored === l && this.high[slot] === h) {
        return 'replayed';
      }
      slot = (slot + 1) & this.mask;
    }
    if (until <= this.floor) return 'full';
    if (this.live >= this.capacity) {
      this.countLive(now);
      if (this.live >= this.capacity) {
        this.forgetSoonest(now);
        if (until <= this.floor) return 'full';
        return this.check(key, until, now);
      }
    }
    if (reusable >= 0) {
      slot = reusable;
    } else {
      this.used++;
    }
    this.high[slot] = h;
    this.low[slot] = l;
    this.until[slot] = until;
    this.live++;
    if (this.used > (this.mask + 1) * MAX_LOAD) this.rebuild(now);
    return 'fresh';
  }

  /** The live count drifts up as entries expire unseen: recount when it matters. */
  private countLive(now: number): void {
    let live = 0;
    for (let i = 0; i <= this.mask; i++) if (this.low[i] !== 0 && this.until[i] > now) live++;
    this.live = live;
  }

  /** Forgets the live eighth that expires soonest (ties go too), raising the floor to their expiry. */
  private forgetSoonest(now: number): void {
    const expiries: number[] = [];
    for (let i = 0; i <= this.mask; i++) if (this.low[i] !== 0 && this.until[i] > now) expiries.push(this.until[i]);
    expiries.sort((a, b) => a - b);
    this.floor = Math.max(this.floor, expiries[Math.max(0, Math.ceil(expiries.length / 8) - 1)]);
    this.rebuild(now);
  }

  private rebuild(now: number): void {
    const entries: Array<[number, number, number]> = [];
    for (let i = 0; i <= this.mask; i++) {
      if (this.low[i] !== 0 && this.until[i] > now && this.until[i] > this.floor) entries.push([this.high[i], this.low[i], this.until[i]]);
    }
    this.high.fill(0);
    this.low.fill(0);
    this.until.fill(0);
    for (const [h, l, until] of entries) {
      let slot = h & this.mask;
      while (this.low[slot] !== 0) slot = (slot + 1) & this.mask;
      this.high[slot] = h;
      this.low[slot] = l;
      this.until[slot] = until;
    }
    this.used = entries.length;
    this.live = entries.length;
  }
}
