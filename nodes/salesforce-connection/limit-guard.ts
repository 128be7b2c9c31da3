/**
 * The org's daily API allowance, as Salesforce reports it on every answer
 * (`Sforce-Limit-Info: api-usage=USED/LIMIT`). The guard stops calling when Salesforce refuses a
 * call with REQUEST_LIMIT_EXCEEDED, or earlier, at a chosen share of the allowance (so that the
 * org's other integrations keep some). While it holds, no call is made; when the hold time is
 * over, one call goes through as a probe: if the use is back under the guard share, calling
 * resumes, else the hold starts again.
 */
import type { ApiUsage, LimitHold } from '../shared/salesforce-client';

export interface LimitGuardOptions {
  /** Share of the allowance (0 to 1) at which to stop; 1 stops only when Salesforce refuses. */
  guardShare: number;
  /** How long to hold before probing again. */
  holdMs: number;
  now?: () => number;
}

/** What to do with the next call. */
export type Permit = 'call' | 'probe' | 'hold';

/** The usage in a Sforce-Limit-Info header value, or undefined. */
export function parseLimitInfo(header: string | undefined): ApiUsage | undefined {
  const match = /(?:^|[\s,;])api-usage=(\d+)\/(\d+)/.exec(header ?? '');
  return match ? { used: Number(match[1]), limit: Number(match[2]) } : undefined;
}

export class LimitGuard {
  private readonly now: () => number;
  private current: ApiUsage | undefined;
  private holding: LimitHold | undefined;
  private probing = false;

  constructor(private readonly options: LimitGuardOptions) {
    this.now = options.now ?? Date.now;
  }

  get usage(): ApiUsage | undefined {
    return this.current;
  }

  get hold(): LimitHold | undefined {
    return this.holding;
  }

  permit(): Permit {
    if (!this.holding) return 'call';
    if (this.probing || this.now() < this.holding.until) return 'hold';
    this.probing = true;
    return 'probe';
  }

  /** Usage from an answer: holds when it reaches the guard share, releases when under it. */
  observe(usage: ApiUsage | undefined): void {
    this.probing = false;
    if (!usage || usage.limit <= 0) return;
    this.current = usage;
    const reached = this.options.guardShare < 1 && usage.used >= usage.limit * this.options.guardShare;
    if (reached) this.start(this.holding?.reason === 'exceeded' && usage.used >= usage.limit ? 'exceeded' : 'guard');
    else this.holding = undefined;
  }

  /** Salesforce answered REQUEST_LIMIT_EXCEEDED. */
  exceeded(): void {
    this.probing = false;
    this.start('exceeded');
  }

  /** A probe ended without an answer about the limit (a network error): hold on. */
  probeFailed(): void {
    if (!this.probing) return;
    this.probing = false;
    if (this.holding) this.holding = { ...this.holding, until: this.now() + this.options.holdMs };
  }

  private start(reason: LimitHold['reason']): void {
    this.holding = { reason, until: this.now() + this.options.holdMs };
  }
}
