/**
 * When a session may log in again. jsforce renews a session whenever a call answers 401 and
 * retries the call, with no cap: a token the org keeps refusing (a revoked app, a blocked user)
 * would make it log in again and again, into Salesforce's login rate limit. The keeper renews a
 * refused token once, whether or not it ever worked: orgs end sessions after a time without calls
 * (2 hours by default), so the token of a login made at deploy may time out before the first alert
 * needs it. The token of a renewal refused before it ever worked is not renewed at once: something
 * other than time is wrong (a revoked app, a blocked user), and the keeper waits, doubling the wait
 * each time, before the next login. It also caps logins per hour outright.
 */

export interface TokenKeeperOptions {
  /** First wait after a failed login or a refused new token; doubles up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Logins allowed in any hour (Salesforce allows 3,600 per user). */
  maxLoginsPerHour: number;
  now?: () => number;
}

/** `code`: why no login may be made now, as the error code a failed call reports. */
export type Permission = { ok: true } | { ok: false; reason: string; code: string; retryAt: number };

const HOUR_MS = 3_600_000;

export class TokenKeeper {
  private readonly now: () => number;
  private readonly logins: number[] = [];
  private tokenWorked = false;
  private hasToken = false;
  /** Whether the current token came from renewing a refused one. */
  private tokenRenewed = false;
  /** Whether the login under way replaces a refused token. */
  private renewing = false;
  private failures = 0;
  private blockedUntil = 0;
  private blockReason = '';
  private blockCode = '';

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
    if (now < this.blockedUntil) return { ok: false, reason: this.blockReason, code: this.blockCode, retryAt: this.blockedUntil };
    if (this.hasToken && !this.tokenWorked && this.tokenRenewed) {
      // The token of a renewal was refused before any call worked with it: renewing again at
      // once would be a loop.
      this.block('the new token was refused too (INVALID_SESSION_ID)', 'INVALID_SESSION_ID');
      return { ok: false, reason: this.blockReason, code: this.blockCode, retryAt: this.blockedUntil };
    }
    this.forgetOld();
    if (this.logins.length >= this.options.maxLoginsPerHour) {
      return { ok: false, reason: `${this.options.maxLoginsPerHour} logins in the last hour`, code: 'LOGIN_RATE_EXCEEDED', retryAt: this.logins[0] + HOUR_MS };
    }
    this.renewing = this.hasToken;
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
    this.tokenRenewed = this.renewing;
  }

  /** `code`: the OAuth error Salesforce answered (invalid_grant, invalid_client, ...). */
  loginFailed(reason: string, code: string): void {
    this.hasToken = false;
    this.block(reason, code);
  }

  /** A call answered with something other than 401: the token works. */
  tokenAccepted(): void {
    this.tokenWorked = true;
    this.failures = 0;
  }

  private block(reason: string, code: string): void {
    const wait = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** this.failures);
    this.failures++;
    this.blockedUntil = this.now() + wait;
    this.blockReason = reason;
    this.blockCode = code;
    // After the wait, one more login is allowed even though the last token never worked.
    this.hasToken = false;
  }

  private forgetOld(): void {
    const since = this.now() - HOUR_MS;
    while (this.logins.length > 0 && this.logins[0] <= since) this.logins.shift();
  }
}
