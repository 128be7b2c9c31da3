/**
 * Faults the tests switch on, to see how a client copes with what Salesforce does on a bad day:
 * bursts of 503 (or 500) answers, an outage of a given length, UNABLE_TO_LOCK_ROW on record writes, answers lost after the
 * work was done (the connection drops: the record exists, the client never hears of it), and
 * added latency. Token expiry and the daily allowance are controlled elsewhere (oauth, limits).
 */

export interface FaultPlan {
  /** The next N API calls answer with `unavailableStatus` (503 by default) and do nothing. */
  unavailable?: number;
  unavailableStatus?: 500 | 502 | 503;
  /** Every API call answers with `unavailableStatus` for the next this many ms: an outage (0 ends it). */
  unavailableForMs?: number;
  /** The next N record writes fail with UNABLE_TO_LOCK_ROW. */
  rowLocks?: number;
  /** The next N API calls are carried out, then the connection drops without an answer. */
  lostAnswers?: number;
  /** Every API call waits this long first (0 to stop). */
  latencyMs?: number;
}

export interface FaultCounts {
  unavailable: number;
  rowLocks: number;
  lostAnswers: number;
}

export class Faults {
  /** Faults still to fire. */
  readonly pending: FaultCounts = { unavailable: 0, rowLocks: 0, lostAnswers: 0 };
  /** Faults fired so far. */
  readonly fired: FaultCounts = { unavailable: 0, rowLocks: 0, lostAnswers: 0 };
  unavailableStatus = 503;
  latencyMs = 0;
  /** Until when (ms since the epoch) every API call is unavailable. */
  unavailableUntil = 0;

  inject(plan: FaultPlan): void {
    this.pending.unavailable += plan.unavailable ?? 0;
    this.pending.rowLocks += plan.rowLocks ?? 0;
    this.pending.lostAnswers += plan.lostAnswers ?? 0;
    if (plan.unavailableStatus !== undefined) this.unavailableStatus = plan.unavailableStatus;
    if (plan.latencyMs !== undefined) this.latencyMs = plan.latencyMs;
    if (plan.unavailableForMs !== undefined) this.unavailableUntil = Date.now() + plan.unavailableForMs;
  }

  clear(): void {
    this.pending.unavailable = this.pending.rowLocks = this.pending.lostAnswers = 0;
    this.fired.unavailable = this.fired.rowLocks = this.fired.lostAnswers = 0;
    this.unavailableStatus = 503;
    this.latencyMs = 0;
    this.unavailableUntil = 0;
  }

  /** Whether a fault of this kind fires now (and counts it). */
  take(kind: keyof FaultCounts): boolean {
    if (kind === 'unavailable' && Date.now() < this.unavailableUntil) {
      this.fired.unavailable++;
      return true;
    }
    if (this.pending[kind] <= 0) return false;
    this.pending[kind]--;
    this.fired[kind]++;
    return true;
  }
}
