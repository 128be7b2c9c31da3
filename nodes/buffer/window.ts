/**
 * How many messages the buffer keeps delivered and not yet settled: its window.
 *
 * Fixed: the number the user set. Automatic (the default for new nodes) follows the sinks:
 *
 *  - A sink of the pack announces how many unsettled messages it can usefully hold (its batch
 *    size times its requests in flight) with `announceCapacity` (nodes/shared/delivery.ts). The
 *    window is the sum of what the sinks announced: each message is settled by one sink (a switch
 *    sends some readings to one sink and some to another), so together they hold the sum. A sink
 *    that fans out behind the same output still holds no more than its own pending bound, and the
 *    first settlement frees the slot. An announcement lapses after 30 s without a new one (the
 *    sink was removed, rewired, or has received nothing since), so the window forgets it.
 *  - With no sink announcing (a flow acknowledged by a Complete node, an http request node), the
 *    window adapts the way TCP's congestion window does, on the round trip from hand-on to
 *    settlement: it starts at 100 and, while the window is what limits delivery, grows by one for
 *    every message settled (so it doubles every round trip) as long as the round trip stays
 *    within twice the shortest one lately seen (more in flight still brings more throughput); when
 *    the round trip grows beyond that (the messages only queue up downstream) it stops growing,
 *    and it halves when a delivery fails or is not settled in time. It stays between 10 and 10,000.
 */

export interface WindowOptions {
  /** A fixed window, or undefined for an automatic one. */
  fixed?: number;
}

/** Announcements older than this no longer count. */
const ANNOUNCEMENT_LAPSES_MS = 30_000;
/** The automatic window never grows past this, however much sinks announce. */
const MOST_ANNOUNCED = 100_000;
const ADAPTIVE_START = 100;
const ADAPTIVE_MIN = 10;
const ADAPTIVE_MAX = 10_000;
/** The shortest round trip is the shortest seen within this period. */
const SHORTEST_RTT_PERIOD_MS = 10_000;
/** Round trips this much above the shortest (ms) count as not grown: timers are this coarse. */
const RTT_SLACK_MS = 2;

export class DeliveryWindow {
  private readonly announced = new Map<string, { messages: number; at: number }>();
  private adaptive = ADAPTIVE_START;
  private smoothedRtt = 0;
  private shortestRtt = Infinity;
  private shortestAt = 0;
  /** The shortest round trip of the current period, becoming the shortest when it ends. */
  private nextShortest = Infinity;

  constructor(private readonly options: WindowOptions) {}

  get automatic(): boolean {
    return this.options.fixed === undefined;
  }

  /** The window now. */
  size(now: number): number {
    if (this.options.fixed !== undefined) return this.options.fixed;
    let sum = 0;
    for (const [sink, a] of this.announced) {
      if (now - a.at > ANNOUNCEMENT_LAPSES_MS) this.announced.delete(sink);
      else sum += a.messages;
    }
    return sum > 0 ? Math.min(MOST_ANNOUNCED, sum) : this.adaptive;
  }

  /** A sink says how many unsettled messages it can usefully hold. */
  announce(sink: string, messages: number, now: number): void {
    if (!Number.isFinite(messages) || messages < 1) return;
    this.announced.set(sink, { messages: Math.floor(messages), at: now });
  }

  /**
   * Messages were settled ok after `rttMs` since they were handed on; `limited` says whether the
   * window was what held delivery back when they were (only then does a bigger one help).
   */
  settled(messages: number, rttMs: number, limited: boolean, now: number): void {
    if (!this.automatic) return;
    this.noteRtt(rttMs, now);
    if (!limited || this.smoothedRtt > 2 * this.shortestRtt + RTT_SLACK_MS) return;
    this.adaptive = Math.min(ADAPTIVE_MAX, this.adaptive + messages);
  }

  /** A delivery failed or was not settled in time: back off. */
  failed(): void {
    if (!this.automatic) return;
    this.adaptive = Math.max(ADAPTIVE_MIN, Math.floor(this.adaptive / 2));
  }

  private noteRtt(rttMs: number, now: number): void {
    this.smoothedRtt = this.smoothedRtt === 0 ? rttMs : this.smoothedRtt + (rttMs - this.smoothedRtt) / 8;
    this.nextShortest = Math.min(this.nextShortest, rttMs);
    if (rttMs <= this.shortestRtt) {
      this.shortestRtt = rttMs;
      this.shortestAt = now;
    } else if (now - this.shortestAt > SHORTEST_RTT_PERIOD_MS) {
      // The shortest round trip is renewed every period, so that it follows a sink that slowed.
      this.shortestRtt = this.nextShortest;
      this.shortestAt = now;
      this.nextShortest = Infinity;
    }
  }
}
