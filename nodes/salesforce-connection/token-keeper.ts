/**
 * When a session may log in again. jsforce renews a session whenever a call answers 401 and
 * retries the call, with no cap: a token the org keeps refusing (a revoked app, a blocked user)
 * would make it log in again and again, into Salesforce's login rate limit. The keeper allows a
 * renewal only when the current token has worked at least once (it really expired), and after a
 * refused or failed one waits, doubling the wait each time, before the next. It also caps logins
 * per hour outright.
 */

export interface TokenKeeperOptions {
  /** First wait after a failed login or a refused new token; doubles up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Logins allowed in any hour (Salesforce allows 3,600 per user). */
  maxLoginsPerHour: number;
  now?: () => number;
}

export type Permission = { ok: true } | { ok: false; reason: string; retryAt: number };

const HOUR_MS = 3_600_000;

export class TokenKeeper {
  private readonly now: () => number;
  private readonly logins: number[] = [];
  private tokenWorked = false;
  private hasToken = false;
  private failures = 0;
  private blockedUntil = 0;
  private blockReason = '';

  constructor(private readonly options: TokenKeeperOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Logins made in the last hour. */
  get recentLogins(): number {
    this.forgetOld();
    return this.logins.length;
  }

  /** Whether a login may be made now (the first one, or a renewal). */
  mayLogin(): Permission {
    const now = this.now();
    if (now < this.blockedUntil) return { ok: false, reason: this.blockReason, retryAt: this.blockedUntil };
    if (this.hasToken && !this.tokenWorked) {
      // The token from the last login was refused before any call worked with it: renewing
      // again at once would be a loop.
      this.block('the new token was refused too (INVALID_SESSION_ID)');
      return { ok: false, reason: this.blockReason, retryAt: this.blockedUntil };
    }
    this.forgetOld();
    if (this.logins.length >= this.options.maxLoginsPerHour) {
      return { ok: false, reason: `${this.options.maxLoginsPerHour} logins in the last hour`, retryAt: this.logins[0] + HOUR_MS };
    }
    return { ok: true };
  }

  /** When the next login may be made, after a failure. */
  mayLoginAfter(): number | undefined {
    return this.blockedUntil > this.now() ? this.blockedUntil : undefined;
  }

  loggedIn(): void {
    this.logins.push(this.now());
    this.hasToken = true;
    this.tokenWorked = false;
  }

  loginFailed(reason: string): void {
    this.hasToken = false;
    this.block(reason);
  }

  /** A call answered with something other than 401: the token works. */
  tokenAccepted(): void {
    this.tokenWorked = true;
    this.failures = 0;
  }

  private block(reason: string): void {
    const wait = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** this.failures);
    this.failures++;
    this.blockedUntil = this.now() + wait;
    this.blockReason = reason;
    // After the wait, one more login is allowed even though the last token never worked.
    this.hasToken = false;
  }

  private forgetOld(): void {
    const since = this.now() - HOUR_MS;
    while (this.logins.length > 0 && this.logins[0] <= since) this.logins.shift();
  }
}
