/**
 * Receipts a front door holds until what it handed on is settled (see delivery.ts): the PUBACK of
 * a QoS 1 publish, the answer to an HTTP request, the settlement of a batch that was split into
 * parts. Free of Node-RED; the time is an argument.
 *
 * A receipt covers one delivery, or several (the parts of a batch). It is answered once: when the
 * last of its deliveries is settled, or when it has waited `withinMs` (then as "not settled",
 * retry), whichever comes first. Later settlements of its deliveries are ignored.
 */
import type { Outcome } from './delivery';

export type Answer = (outcome: Outcome) => void;

interface Receipt {
  ids: string[];
  deadline: number;
  /** Deliveries not settled yet. */
  open: number;
  outcomes: Outcome[];
  answer: Answer;
}

/**
 * What a receipt for several deliveries says: any "again" makes the sender send it all again;
 * else any part taken makes it taken; else (every part refused for good) the first refusal.
 */
export function combineOutcomes(outcomes: readonly Outcome[]): Outcome {
  const again = outcomes.find((o) => !o.ok && o.retry);
  if (again) return again;
  return outcomes.find((o) => o.ok) ?? outcomes[0] ?? { ok: true };
}

export class HeldReceipts {
  private readonly byDelivery = new Map<string, Receipt>();
  /** In the order they were taken, which is also the order of their deadlines. */
  private readonly receipts = new Set<Receipt>();
  private next = 0;

  /**
   * @param prefix makes this holder's delivery ids its own: a redeployed node has the same node
   *   id, and must not take its predecessor's settlements for its own deliveries.
   */
  constructor(
    private readonly prefix: string,
    readonly withinMs: number,
  ) {}

  /** Receipts waiting for their deliveries to be settled. */
  get waiting(): number {
    return this.receipts.size;
  }

  /** Holds a receipt for `deliveries` deliveries; returns their ids, to put in their tokens. */
  hold(deliveries: number, answer: Answer, now: number): string[] {
    const ids: string[] = [];
    for (let i = 0; i < deliveries; i++) ids.push(`${this.prefix}${(this.next++).toString(36)}`);
    const receipt: Receipt = { ids, deadline: now + this.withinMs, open: ids.length, outcomes: [], answer };
    this.receipts.add(receipt);
    for (const id of ids) this.byDelivery.set(id, receipt);
    if (ids.length === 0) this.finish(receipt, { ok: true });
    return ids;
  }

  /** Settles one delivery; false when it is not (or no longer) held here. */
  settle(id: string, outcome: Outcome): boolean {
    const receipt = this.byDelivery.get(id);
    if (!receipt) return false;
    this.byDelivery.delete(id);
    receipt.outcomes.push(outcome);
    if (--receipt.open === 0) this.finish(receipt, combineOutcomes(receipt.outcomes));
    return true;
  }

  /** Answers every receipt whose time is up as not settled (the sender may send it again); returns how many. */
  expire(now: number): number {
    let expired = 0;
    for (const receipt of this.receipts) {
      if (receipt.deadline > now) break;
      this.finish(receipt, { ok: false, retry: true, code: 'not_settled', reason: `not settled within ${this.withinMs / 1000} s` });
      expired++;
    }
    return expired;
  }

  /** When the oldest receipt's time is up, if any is held. */
  nextDeadline(): number | undefined {
    for (const receipt of this.receipts) return receipt.deadline;
    return undefined;
  }

  /** Answers every receipt with `outcome` (the node is closing). */
  releaseAll(outcome: Outcome): void {
    for (const receipt of [...this.receipts]) this.finish(receipt, outcome);
  }

  private finish(receipt: Receipt, outcome: Outcome): void {
    this.receipts.delete(receipt);
    for (const id of receipt.ids) this.byDelivery.delete(id);
    receipt.answer(outcome);
  }
}
