/**
 * Lockout after repeated failures: a key (the registry uses device id and source) that fails
 * `failures` times within `windowMs` is refused for `lockMs`, whatever it presents. Memory is
 * bounded: past `capacity` keys the least recently failed are forgotten.
 */

export interface LockoutPolicy {
  /** Failures that lock; 0 turns lockout off. */
  failures: number;
  windowMs: number;
  lockMs: number;
}

interface Entry {
  count: number;
  windowStart: number;
  lockedUntil: number;
}

export class Lockout {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly policy: LockoutPolicy,
    private readonly capacity = 100_000,
  ) {}

  /** When the lock on this key ends (ms), or 0 when it is not locked. */
  lockedUntil(id: string, now: number): number {
    const entry = this.entries.get(id);
    return entry && entry.lockedUntil > now ? entry.lockedUntil : 0;
  }

  /** Counts a failure; true when it locks the key. */
  failed(id: string, now: number): boolean {
    if (this.policy.failures <= 0) return false;
    let entry = this.entries.get(id);
    if (entry) {
      // Re-inserted so that the map's order is least recently failed first.
      this.entries.delete(id);
      if (now - entry.windowStart > this.policy.windowMs) entry = { count: 0, windowStart: now, lockedUntil: entry.lockedUntil };
    } else {
      entry = { count: 0, windowStart: now, lockedUntil: 0 };
    }
    entry.count++;
    let locked = false;
    if (entry.count >= this.policy.failures) {
      entry.lockedUntil = now + this.policy.lockMs;
      entry.count = 0;
      entry.windowStart = now;
      locked = true;
    }
    this.entries.set(id, entry);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    return locked;
  }

  succeeded(id: string): void {
    if (this.entries.size > 0) this.entries.delete(id);
  }

  /** How many keys are locked now. */
  lockedCount(now: number): number {
    let count = 0;
    for (const entry of this.entries.values()) if (entry.lockedUntil > now) count++;
    return count;
  }
}
