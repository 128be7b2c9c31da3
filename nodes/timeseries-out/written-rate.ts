/**
 * Points written per second for the status line, over the last few status periods: one period of a
 * second says 0 whenever no batch happened to finish in it, which reads as "not writing" while
 * the node writes every second or two.
 */
export class WrittenRate {
  private readonly points: number[] = [];
  private readonly spans: number[] = [];

  constructor(private readonly periods: number) {}

  /** A status period ended: `points` written in `ms`. */
  add(points: number, ms: number): void {
    this.points.push(points);
    this.spans.push(Math.max(1, ms));
    if (this.points.length > this.periods) {
      this.points.shift();
      this.spans.shift();
    }
  }

  /** Nothing was written in the periods remembered. */
  none(): boolean {
    return this.points.every((n) => n === 0);
  }

  perSecond(): number {
    const points = this.points.reduce((a, b) => a + b, 0);
    const ms = this.spans.reduce((a, b) => a + b, 0);
    return ms > 0 ? (points * 1000) / ms : 0;
  }

  /** "2,340", or "0.4" below 10 (a slow stream is not 0). */
  text(): string {
    const rate = this.perSecond();
    return rate > 0 && rate < 10 ? rate.toFixed(1) : Math.round(rate).toLocaleString('en-US');
  }
}
