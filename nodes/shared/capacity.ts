/**
 * A sink's side of the automatic window (nodes/shared/delivery.ts, announceCapacity): it tells
 * the source of the messages it receives how many unsettled messages it can usefully hold (its
 * batch capacity), so that a buffer in front hands on enough to fill its batches and no more than
 * it holds. Told when a source is first seen, again at most once a second while its messages
 * come (a redeployed source learns it anew; a source may forget a sink that stopped telling), and
 * at once when the capacity changes by a tenth or more.
 */
import type { NodeAPI, NodeMessage } from 'node-red';
import { announceCapacity, DELIVERY_PROPERTY } from './delivery';

const EVERY_MS = 1000;

export class CapacityAnnouncer {
  /** Per source: the capacity last told and the period it was told in. */
  private readonly told = new Map<string, { capacity: number; period: number }>();
  private period = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly RED: NodeAPI,
    private readonly sink: string,
  ) {
    // A period counter instead of the time of day: the hot path reads no clock.
    this.timer = setInterval(() => this.period++, EVERY_MS);
    this.timer.unref();
  }

  /** Tells the source of this message the capacity, unless it knows it already. */
  tell(msg: NodeMessage, capacity: number): void {
    const token = msg[DELIVERY_PROPERTY] as { source?: unknown } | undefined;
    if (token === undefined || token === null || typeof token.source !== 'string') return;
    const known = this.told.get(token.source);
    if (known && known.period === this.period && Math.abs(known.capacity - capacity) < known.capacity / 10) return;
    this.told.set(token.source, { capacity, period: this.period });
    announceCapacity(this.RED, msg, this.sink, capacity);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
