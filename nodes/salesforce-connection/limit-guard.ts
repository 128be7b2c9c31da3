/**
 * The org's daily API allowance, as Salesforce reports it on every answer
 * (`Sforce-Limit-Info: api-usage=USED/LIMIT`). The guard stops calling when Salesforce refuses a
 * call with REQUEST_LIMIT_EXCEEDED, or earlier, at a chosen share of the allowance (so that the
 * org's other integrations keep some). While it holds, no call is made; when the hold time is
 * over, one call goes through as a probe: if the use is back under the guard share, calling
 * resumes, else the hold starts again.
 *
 * Salesforce gives the same error, REQUEST_LIMIT_EXCEEDED, when the org runs its limit of long
 * requests at once (25 requests of 20 s or more in production orgs), whatever the daily use. That
 * hold is short: 1 s, doubling while the refusals go on, at most 30 s; and it ends with the next
 * answer that is not a refusal (a call already under way, or the probe).
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

/** The first hold after too many concurrent long requests; it doubles while they go on. */
const CONCURRENT_HOLD_MS = 1000;
const CONCURRENT_HOLD_MAX_MS = 30_000;

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
  /** Refusals for concurrent long requests in a row. */
  private concurrentRefusals = 0;

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
    this.concurrentRefusals = 0;
    // An answer is the end of a hold for concurrent long requests.
    if (this.holding?.reason === 'concurrent') this.holding = undefined;
    if (!usage || usage.limit <= 0) return;
    this.current = usage;
    const reached = this.options.guardShare < 1 && usage.used >= usage.limit * this.options.guardShare;
    if (reached) this.start(this.holding?.reason === 'exceeded' && usage.used >= usage.limit ? 'exceeded' : 'guard');
    else this.holding = undefined;
  }

  /**
   * Salesforce answered REQUEST_LIMIT_EXCEEDED: for the daily allowance, or (its message names
   * the concurrent limit, or the usage it reported is under the allowance) for long requests
   * running at once.
   */
  exceeded(usage?: ApiUsage, message = ''): void {
    this.probing = false;
    if (usage && usage.limit > 0) this.current = usage;
    const concurrent = /Concurrent/i.test(message) || (usage !== undefined && usage.limit > 0 && usage.used < usage.limit);
    if (!concurrent) {
      this.start('exceeded');
      return;
    }
    const wait = Math.min(CONCURRENT_HOLD_MAX_MS, CONCURRENT_HOLD_MS * 2 ** this.concurrentRefusals++);
    this.holding = { reason: 'concurrent', until: this.now() + wait };
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
