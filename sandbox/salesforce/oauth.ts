/**
 * The OAuth 2.0 token endpoint (`/services/oauth2/token`) and the sessions it hands out. Grants:
 * JWT bearer (RS256 signature checked against the connected app's certificate or public key;
 * iss, sub, aud and exp checked), client credentials (runs as the app's integration user),
 * refresh token, and username-password (which new orgs block: an option here). Token responses
 * and errors are shaped like Salesforce's.
 *
 * Sessions end by inactivity, as the org's session timeout makes them (Setup > Session Settings:
 * 15 minutes to 24 hours, 2 hours by default): a token not used for the timeout stops working,
 * however young or old it is. Use extends a session only once more than half of the timeout has
 * passed since it was last extended, as Salesforce records activity.
 */
import { createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { decodeJwt, errors as joseErrors, importSPKI, importX509, jwtVerify } from 'jose';

export interface ConnectedApp {
  consumerKey: string;
  consumerSecret?: string;
  /** PEM certificate (or SPKI public key) that JWT bearer assertions must be signed for. */
  certificate?: string;
  /** Users an admin pre-authorised for the JWT bearer flow; every user when absent. */
  preAuthorised?: string[];
  /** The integration user the client credentials flow runs as. */
  runAs?: string;
}

export interface SandboxUser {
  username: string;
  password?: string;
}

export interface Session {
  token: string;
  userId: string;
  username: string;
  consumerKey: string;
  /** When its activity was last recorded: it ends a session timeout after that. */
  activeAt: number;
}

export interface TokenAnswer {
  status: number;
  body: Record<string, string>;
}

const GRANT_JWT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const SALESFORCE_AUDIENCES = ['https://login.salesforce.com', 'https://test.salesforce.com'];

const fail = (error: string, description: string): TokenAnswer => ({ status: 400, body: { error, error_description: description } });

export interface OAuthOptions {
  orgId: string;
  /** The sandbox's own URL: instance URL, identity URLs and an accepted JWT audience. */
  baseUrl: () => string;
  apps: ConnectedApp[];
  users: SandboxUser[];
  /** Inactivity after which a session ends (Salesforce's default: 2 hours). */
  sessionTimeoutMs: number;
  passwordFlow: boolean;
}

export class OAuthServer {
  private readonly sessions = new Map<string, Session>();
  private readonly refreshTokens = new Map<string, { username: string; consumerKey: string }>();
  private readonly userIds = new Map<string, string>();
  private readonly keys = new Map<string, Promise<KeyObject | CryptoKey>>();
  /** Every successful token request, for tests that count logins. */
  logins = 0;
  /** Inactivity after which a session ends; the org's admin may change it at any time. */
  sessionTimeoutMs: number;

  constructor(
    private readonly options: OAuthOptions,
    newUserId: () => string,
  ) {
    this.sessionTimeoutMs = options.sessionTimeoutMs;
    for (const user of options.users) this.userIds.set(user.username.toLowerCase(), newUserId());
  }

  async token(params: URLSearchParams, now = Date.now()): Promise<TokenAnswer> {
    const grant = params.get('grant_type') ?? '';
    switch (grant) {
      case GRANT_JWT:
        return this.jwtBearer(params.get('assertion') ?? '', now);
      case 'client_credentials': {
        const app = this.app(params.get('client_id'));
        if (!app) return fail('invalid_client_id', 'client identifier invalid');
        if (!app.consumerSecret || params.get('client_secret') !== app.consumerSecret) return fail('invalid_client', 'invalid client credentials');
        if (!app.runAs) return fail('invalid_grant', 'no client credentials user enabled');
        return this.issue(app.runAs, app, now);
      }
      case 'refresh_token': {
        const app = this.app(params.get('client_id'));
        if (!app) return fail('invalid_client_id', 'client identifier invalid');
        const secret = params.get('client_secret');
        if (secret !== null && secret !== app.consumerSecret) return fail('invalid_client', 'invalid client credentials');
        const grant = this.refreshTokens.get(params.get('refresh_token') ?? '');
        if (!grant || grant.consumerKey !== app.consumerKey) return fail('invalid_grant', 'expired access/refresh token');
        return this.issue(grant.username, app, now);
      }
      case 'password': {
        if (!this.options.passwordFlow) return fail('unsupported_grant_type', 'grant type not supported');
        const app = this.app(params.get('client_id'));
        if (!app) return fail('invalid_client_id', 'client identifier invalid');
        if (params.get('client_secret') !== app.consumerSecret) return fail('invalid_client', 'invalid client credentials');
        const user = this.options.users.find((u) => u.username.toLowerCase() === (params.get('username') ?? '').toLowerCase());
        if (!user || user.password === undefined || params.get('password') !== user.password) return fail('invalid_grant', 'authentication failure');
        return this.issue(user.username, app, now);
      }
      default:
        return fail('unsupported_grant_type', 'grant type not supported');
    }
  }

  /**
   * The session of a bearer token, or undefined when it is unknown or has timed out; a call made
   * with it counts as activity.
   */
  session(authorization: string | undefined, now = Date.now()): Session | undefined {
    const match = /^(?:Bearer|OAuth)\s+(\S+)$/i.exec(authorization ?? '');
    const session = match ? this.sessions.get(match[1]) : undefined;
    if (!session) return undefined;
    const idle = now - session.activeAt;
    if (idle >= this.sessionTimeoutMs) {
      this.sessions.delete(session.token);
      return undefined;
    }
    if (idle > this.sessionTimeoutMs / 2) session.activeAt = now;
    return session;
  }

  /** Ends every session at once, as when an admin revokes them or they time out together. */
  expireAll(): number {
    const count = this.sessions.size;
    this.sessions.clear();
    return count;
  }

  /** A refresh token, as if the user had authorised the app once in a browser (web server flow). */
  issueRefreshToken(username: string, consumerKey: string): string {
    if (!this.userIds.has(username.toLowerCase())) throw new Error(`no user ${username} in the sandbox org`);
    if (!this.app(consumerKey)) throw new Error(`no connected app ${consumerKey} in the sandbox org`);
    const token = `5Aep${randomBytes(40).toString('base64url')}`;
    this.refreshTokens.set(token, { username, consumerKey });
    return token;
  }

  userId(username: string): string | undefined {
    return this.userIds.get(username.toLowerCase());
  }

  private app(consumerKey: string | null): ConnectedApp | undefined {
    return this.options.apps.find((a) => a.consumerKey === consumerKey);
  }

  private async jwtBearer(assertion: string, now: number): Promise<TokenAnswer> {
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(assertion).iss;
    } catch {
      return fail('invalid_grant', 'invalid assertion');
    }
    const app = this.app(issuer ?? null);
    if (!app) return fail('invalid_client_id', 'client identifier invalid');
    if (!app.certificate) return fail('invalid_client', 'invalid client credentials');
    const base = this.options.baseUrl();
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(assertion, await this.key(app), {
        algorithms: ['RS256'],
        issuer: app.consumerKey,
        audience: [...SALESFORCE_AUDIENCES, base, `${base}/`],
        requiredClaims: ['iss', 'sub', 'aud', 'exp'],
        currentDate: new Date(now),
      });
      subject = payload.sub;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return fail('invalid_grant', 'expired authorization code');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') return fail('invalid_grant', 'audience is invalid');
      return fail('invalid_grant', 'invalid assertion');
    }
    const username = this.options.users.find((u) => u.username.toLowerCase() === (subject ?? '').toLowerCase())?.username;
    if (!username) return fail('invalid_grant', 'invalid assertion');
    if (app.preAuthorised && !app.preAuthorised.some((u) => u.toLowerCase() === username.toLowerCase())) {
      return fail('invalid_grant', "user hasn't approved this consumer");
    }
    return this.issue(username, app, now);
  }

  private key(app: ConnectedApp): Promise<KeyObject | CryptoKey> {
    let key = this.keys.get(app.consumerKey);
    if (!key) {
      const pem = (app.certificate as string).trim();
      key = pem.startsWith('-----BEGIN CERTIFICATE') ? importX509(pem, 'RS256') : importSPKI(pem, 'RS256');
      this.keys.set(app.consumerKey, key);
    }
    return key;
  }

  private issue(username: string, app: ConnectedApp, now: number): TokenAnswer {
    const userId = this.userIds.get(username.toLowerCase());
    if (!userId) return fail('invalid_grant', 'authentication failure');
    const orgId = this.options.orgId;
    const token = `${orgId.slice(0, 15)}!${randomBytes(48).toString('base64url')}`;
    this.sessions.set(token, { token, userId, username, consumerKey: app.consumerKey, activeAt: now });
    this.logins++;
    const base = this.options.baseUrl();
    const id = `${base}/id/${orgId}/${userId}`;
    const issuedAt = String(now);
    const signature = createHmac('sha256', app.consumerSecret ?? app.consumerKey)
      .update(id + issuedAt)
      .digest('base64');
    return {
      status: 200,
      body: { access_token: token, instance_url: base, id, token_type: 'Bearer', issued_at: issuedAt, signature, scope: 'api' },
    };
  }
}
