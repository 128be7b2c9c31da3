/**
 * One min-heap of deadlines for every key of a node: (time, slot) pairs in typed arrays, so a
 * hundred thousand silence timers cost twelve bytes each and no timer objects. Entries are
 * never removed early; the owner recognises stale ones when they come out.
 */
export class DeadlineQueue {
  private times = new Float64Array(64);
  private slots = new Int32Array(64);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The earliest deadline, or Infinity when there is none. */
  peekTime(): number {
    return this.count > 0 ? this.times[0] : Infinity;
  }

  push(time: number, slot: number): void {
    if (this.count === this.times.length) this.grow();
    let i = this.count++;
    // Sift up: move parents down until the new entry's place is found.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.times[parent] <= time) break;
      this.times[i] = this.times[parent];
      this.slots[i] = this.slots[parent];
      i = parent;
    }
    this.times[i] = time;
    this.slots[i] = slot;
  }

  /** Removes the earliest entry and returns its slot; call peekTime() first for its time. */
  popSlot(): number {
    const slot = this.slots[0];
    const last = --this.count;
    if (last > 0) this.siftDown(this.times[last], this.slots[last], last);
    return slot;
  }

  private siftDown(time: number, slot: number, size: number): void {
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && this.times[child + 1] < this.times[child]) child++;
      if (this.times[child] >= time) break;
      this.times[i] = this.times[child];
      this.slots[i] = this.slots[child];
      i = child;
    }
    this.times[i] = time;
    this.slots[i] = slot;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    const slots = new Int32Array(this.slots.length * 2);
    slots.set(this.slots);
    this.times = times;
    this.slots = slots;
  }
}
