/**
 * A count over a rolling window (Salesforce's daily API allowance is a rolling 24 hours), kept in
 * 1,440 slots so that adding and reading are constant time.
 */
const SLOTS = 1440;

export class RollingCount {
  private readonly slots = new Float64Array(SLOTS);
  private readonly slotMs: number;
  private epoch = -1;
  private sum = 0;

  constructor(
    windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.slotMs = windowMs / SLOTS;
  }

  get value(): number {
    this.advance();
    return this.sum;
  }

  add(n = 1): void {
    this.advance();
    this.slots[this.epoch % SLOTS] += n;
    this.sum += n;
  }

  /** Sets the count as if all of it had happened just now (tests pretend a busy day). */
  set(n: number): void {
    this.slots.fill(0);
    this.sum = 0;
    this.epoch = -1;
    this.add(n);
  }

  private advance(): void {
    const current = Math.floor(this.now() / this.slotMs);
    if (this.epoch < 0 || current - this.epoch >= SLOTS) {
      if (this.epoch >= 0) {
        this.slots.fill(0);
        this.sum = 0;
      }
      this.epoch = current;
      return;
    }
    while (this.epoch < current) {
      this.epoch++;
      const slot = this.epoch % SLOTS;
      this.sum -= this.slots[slot];
      this.slots[slot] = 0;
    }
  }
}
