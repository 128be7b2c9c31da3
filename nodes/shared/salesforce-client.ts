/**
 * What an iot-salesforce-connection offers the nodes that use it: one session with the org,
 * shared by all of them (one login per token lifetime), API calls made through it, Web-to form
 * settings, and its state for their status lines. The connection node implements it; the output
 * node uses it.
 */
import type { Connection } from 'jsforce';

export interface ApiUsage {
  used: number;
  limit: number;
}

/**
 * The connection stopped calling: the org's daily allowance is spent (exceeded), its guard share
 * reached (guard), or the org runs as many long requests as it may at once (concurrent:
 * Salesforce answers REQUEST_LIMIT_EXCEEDED for that too, with a daily use under the allowance).
 */
export interface LimitHold {
  reason: 'exceeded' | 'guard' | 'concurrent';
  /** When a call will be tried again (ms since epoch). */
  until: number;
}

export interface ClientState {
  /** idle: not logged in yet; webTo: no API access configured (Web-to forms only). */
  phase: 'idle' | 'connecting' | 'connected' | 'failed' | 'webTo';
  /** Why the last login or renewal failed (no secret in it). */
  error?: string;
  /** When the session will try to log in again after a failure (ms since epoch). */
  retryAt?: number;
  usage?: ApiUsage;
  hold?: LimitHold;
}

export interface WebToSettings {
  /** Base URL of the servlets: https://webto.salesforce.com, or the local sandbox. */
  url: string;
  /** The org id (15 characters) the forms carry. */
  orgId: string;
}

/**
 * A faye extension (what jsforce's `createClient` takes): sees every Bayeux message going out and
 * coming in, and passes it on through the callback (or holds it back by not calling it).
 */
export interface StreamingExtension {
  incoming?(message: Record<string, unknown>, callback: (message: Record<string, unknown>) => void): void;
  outgoing?(message: Record<string, unknown>, callback: (message: Record<string, unknown>) => void): void;
}

/** A subscription of a faye client: told once the server accepted or refused it. */
export interface StreamingSubscription {
  callback(fn: () => void): unknown;
  errback(fn: (err: Error) => void): unknown;
  cancel(): void;
}

/** The part of a faye client (jsforce's Streaming API client) the pack uses. */
export interface StreamingClient {
  subscribe(channel: string, onMessage: (message: Record<string, unknown>) => void): StreamingSubscription;
  on(event: 'transport:down' | 'transport:up', listener: () => void): void;
  disconnect(): void;
}

export interface SalesforceClient {
  readonly apiAccess: boolean;
  readonly webTo: WebToSettings;
  /** Logs in unless a session exists or a login is under way (then waits for that one). */
  connect(): Promise<void>;
  /** Runs an API call with the shared session. Throws LimitHeldError while the limit holds. */
  call<T>(operation: (conn: Connection) => Promise<T>): Promise<T>;
  state(): ClientState;
  /** Calls the listener on every change of state; returns the unsubscribe function. */
  subscribe(listener: (state: ClientState) => void): () => void;
  /**
   * A Streaming API (CometD) client on the session's token, with these extensions: logs in first
   * when no session exists. The token is set once, when the client is made: after a renewal, make
   * a new client.
   */
  streamingClient(extensions: StreamingExtension[]): Promise<StreamingClient>;
  /**
   * The org refused the session's token outside a REST call (the Streaming API answered 401):
   * renew it, within the connection's renewal cap, as a 401 on a REST call would.
   */
  renewToken(): Promise<void>;
  /** A call outside the REST API worked with the token (a streaming handshake): a later refusal may renew it again. */
  tokenWorked(): void;
}

/** What a node using an iot-salesforce-connection finds on it (RED.nodes.getNode). */
export interface SalesforceConnection {
  client?: SalesforceClient;
  /** Why there is no client: the settings are incomplete or wrong. */
  problem?: string;
}

/** Thrown by call() instead of calling while the limit holds. */
export class LimitHeldError extends Error {
  readonly errorCode = 'REQUEST_LIMIT_EXCEEDED';

  constructor(readonly hold: LimitHold) {
    super(
      hold.reason === 'exceeded'
        ? "the org's daily API allowance is spent: holding until it recovers"
        : hold.reason === 'concurrent'
          ? 'the org runs as many long requests as it may at once: holding for a moment'
          : 'the API guard share of the daily allowance is reached: holding',
    );
  }
}

/**
 * No call could be made because logging in failed, or a new login is not allowed yet.
 * `errorCode` is Salesforce's own (the OAuth error, such as invalid_grant or invalid_client), or
 * INVALID_SESSION_ID when the org refused the session's tokens, or LOGIN_RATE_EXCEEDED when the
 * connection's cap on logins per hour holds.
 */
export class LoginError extends Error {
  constructor(
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
    this.name = 'LoginError';
  }
}
