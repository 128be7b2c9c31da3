/**
 * One timer for a node, always armed at its earliest deadline. Nodes that schedule work for many
 * keys (silences, window ends) keep their deadlines in their own structure and re-arm this.
 */

/** setTimeout cannot wait longer than this. */
const LONGEST_MS = 2 ** 31 - 1;

export class DeadlineTimer {
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;

  constructor(private readonly onDue: () => void) {}

  /** Makes sure onDue runs by `at` (ms since epoch); an earlier arming stands. */
  arm(at: number): void {
    if (at >= this.armedAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.armedAt = Infinity;
      this.onDue();
    }, Math.min(LONGEST_MS, Math.max(0, at - Date.now())));
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }
}
