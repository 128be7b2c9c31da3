/**
 * One session with a Salesforce org, shared by every node that uses a connection: one jsforce
 * Connection, one login per token lifetime (concurrent callers wait for the login under way),
 * renewal on 401 through jsforce's refreshFn with the keeper's cap, and the limit guard fed from
 * the usage Salesforce reports on every answer.
 */
import { Connection } from 'jsforce';
import { LimitHeldError, LoginError, type ClientState, type LimitHold, type SalesforceClient, type StreamingClient, type StreamingExtension, type WebToSettings } from '../shared/salesforce-client';
import { loginFor, type AuthSecrets, type AuthSettings, type Login } from './auth';
import { LimitGuard } from './limit-guard';
import { TokenKeeper } from './token-keeper';

export interface SessionSettings extends AuthSettings {
  apiVersion: string;
  webTo: WebToSettings;
  /** Share of the daily allowance (0 to 1) at which calls stop. */
  guardShare: number;
  /** How long to hold before trying again once the limit is reached. */
  holdMs: number;
  /** Renewal backoff (TokenKeeper). */
  renewBackoffMs?: number;
  maxRenewBackoffMs?: number;
  maxLoginsPerHour?: number;
}

export class SalesforceSession implements SalesforceClient {
  readonly apiAccess: boolean;
  private readonly webToSettings: WebToSettings;
  private readonly conn: Connection;
  private readonly login: Login | undefined;
  private readonly keeper: TokenKeeper;
  private readonly guard: LimitGuard;
  private readonly listeners = new Set<(state: ClientState) => void>();
  private loggingIn: Promise<void> | undefined;
  private phase: ClientState['phase'];
  private error: string | undefined;
  private retryAt: number | undefined;
  /** Why the last login or renewal failed, for the calls it failed (jsforce keeps only its text). */
  private loginFailure: LoginError | undefined;

  constructor(settings: SessionSettings, secrets: AuthSecrets) {
    this.webToSettings = settings.webTo;
    this.apiAccess = settings.method !== 'none';
    this.phase = this.apiAccess ? 'idle' : 'webTo';
    this.login = loginFor(settings, secrets);
    this.keeper = new TokenKeeper({ backoffMs: settings.renewBackoffMs ?? 30_000, maxBackoffMs: settings.maxRenewBackoffMs ?? 900_000, maxLoginsPerHour: settings.maxLoginsPerHour ?? 60 });
    this.guard = new LimitGuard({ guardShare: settings.guardShare, holdMs: settings.holdMs });
    const oauth2 = settings.method === 'clientCredentials' || settings.method === 'refreshToken' || settings.method === 'password' ? { clientId: settings.consumerKey, clientSecret: secrets.clientSecret, loginUrl: settings.loginUrl } : undefined;
    this.conn = new Connection({
      loginUrl: settings.loginUrl || undefined,
      version: settings.apiVersion,
      oauth2,
      ...(settings.method === 'accessToken' ? { instanceUrl: settings.instanceUrl, accessToken: secrets.accessToken } : {}),
      // A 401 calls this once and retries the call; the keeper refuses a renewal that would loop.
      ...(this.login ? { refreshFn: (conn, callback) => this.renew().then(() => callback(null, conn.accessToken as string), (err: Error) => callback(err)) } : {}),
    });
    if (settings.method === 'accessToken') this.phase = 'connected';
  }

  /** Web-to settings; without an org id set, the org the session logged in to. */
  get webTo(): WebToSettings {
    const orgId = this.webToSettings.orgId || this.conn.userInfo?.organizationId?.slice(0, 15) || '';
    return { ...this.webToSettings, orgId };
  }

  state(): ClientState {
    return { phase: this.phase, error: this.error, retryAt: this.retryAt, usage: this.guard.usage, hold: this.guard.hold };
  }

  subscribe(listener: (state: ClientState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async connect(): Promise<void> {
    if (!this.apiAccess) throw new Error('this connection is set for Web-to-Case and Web-to-Lead only: no API access');
    if (this.phase === 'connected') return;
    await this.renew();
  }

  async call<T>(operation: (conn: Connection) => Promise<T>): Promise<T> {
    await this.connect();
    const permit = this.guard.permit();
    if (permit === 'hold') throw new LimitHeldError(this.guard.hold as LimitHold);
    try {
      const result = await operation(this.conn);
      this.keeper.tokenAccepted();
      this.guard.observe(this.conn.limitInfo.apiUsage);
      this.changed();
      return result;
    } catch (err) {
      const code = (err as { errorCode?: string }).errorCode;
      // jsforce reports a failed renewal as "Unable to refresh session due to: ..." alone.
      if (/Unable to refresh session/.test((err as Error).message) && this.loginFailure) throw this.loginFailure;
      if (code !== 'INVALID_SESSION_ID') this.keeper.tokenAccepted();
      const usage = this.conn.limitInfo.apiUsage;
      if (code === 'REQUEST_LIMIT_EXCEEDED') this.guard.exceeded(usage, (err as Error).message);
      else if (usage) this.guard.observe(usage);
      else this.guard.probeFailed();
      this.changed();
      throw err;
    }
  }

  async streamingClient(extensions: StreamingExtension[]): Promise<StreamingClient> {
    await this.connect();
    const faye = this.conn.streaming.createClient(extensions as never) as unknown as StreamingClient;
    // A faye client is a thenable that never settles: it must not be what a promise resolves to.
    return {
      subscribe: (channel, onMessage) => faye.subscribe(channel, onMessage),
      on: (event, listener) => faye.on(event, listener),
      disconnect: () => faye.disconnect(),
    };
  }

  async renewToken(): Promise<void> {
    if (!this.apiAccess) throw new Error('this connection is set for Web-to-Case and Web-to-Lead only: no API access');
    // A renewal already under way (a REST call's 401 at the same moment) serves both.
    await this.renew();
  }

  tokenWorked(): void {
    this.keeper.tokenAccepted();
  }

  /** The one login (or renewal) under way, started if none is. */
  private renew(): Promise<void> {
    if (this.loggingIn) return this.loggingIn;
    const login = this.login;
    const permission = this.keeper.mayLogin();
    if (!login || !permission.ok) {
      this.phase = 'failed';
      this.error = !login ? 'the access token was refused, and a static token cannot be renewed: paste a new one' : permission.ok ? undefined : permission.reason;
      this.retryAt = permission.ok ? undefined : permission.retryAt;
      this.changed();
      const when = this.retryAt ? `not logging in again before ${new Date(this.retryAt).toISOString()}: ` : '';
      this.loginFailure = new LoginError(permission.ok ? 'INVALID_SESSION_ID' : permission.code, `${when}${this.error}`);
      return Promise.reject(this.loginFailure);
    }
    this.phase = 'connecting';
    this.changed();
    this.loggingIn = login(this.conn).then(
      () => {
        this.keeper.loggedIn();
        this.phase = 'connected';
        this.error = undefined;
        this.retryAt = undefined;
        this.loggingIn = undefined;
        this.loginFailure = undefined;
        this.changed();
      },
      (err: Error & { name?: string }) => {
        const reason = loginError(err);
        const code = oauthErrorCode(err);
        this.keeper.loginFailed(reason, code);
        this.phase = 'failed';
        this.error = reason;
        this.retryAt = this.keeper.mayLoginAfter();
        this.loggingIn = undefined;
        this.loginFailure = new LoginError(code, `login failed: ${reason}`);
        this.changed();
        throw this.loginFailure;
      },
    );
    return this.loggingIn;
  }

  private changed(): void {
    const state = this.state();
    for (const listener of this.listeners) listener(state);
  }
}

/** The OAuth error of a refused login (jsforce names the error after it), else LOGIN_FAILED (the network, say). */
function oauthErrorCode(err: Error & { name?: string }): string {
  return err.name && /^[a-z_]+$/.test(err.name) ? err.name : 'LOGIN_FAILED';
}

/** A login error in words: the OAuth error and its description, never a token or secret. */
function loginError(err: Error & { name?: string }): string {
  const name = err.name && err.name !== 'Error' ? err.name : '';
  return [name, err.message].filter(Boolean).join(': ') || 'unknown error';
}
