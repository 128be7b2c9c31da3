/**
 * The pure parts of iot-salesforce-connection: the renewal cap (TokenKeeper), the daily
 * allowance guard (LimitGuard, Sforce-Limit-Info), the authentication settings (JWT audience,
 * assertion signing, key reading, what each method needs) and the node's settings.
 */
import { generateKeyPairSync } from 'node:crypto';
import { decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { defaultAudience, missingSettings, readPrivateKey, signAssertion, type AuthSecrets, type AuthSettings } from '../../nodes/salesforce-connection/auth';
import { readConnectionConfig, sessionKey } from '../../nodes/salesforce-connection/connection-config';
import type { SessionSettings } from '../../nodes/salesforce-connection/session';
import { LimitGuard, parseLimitInfo } from '../../nodes/salesforce-connection/limit-guard';
import { TokenKeeper } from '../../nodes/salesforce-connection/token-keeper';

function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('TokenKeeper: one renewal per expiry, never a loop', () => {
  it('allows the first login, and a renewal once the token has worked', () => {
    const c = clock();
    const keeper = new TokenKeeper({ backoffMs: 1000, maxBackoffMs: 8000, maxLoginsPerHour: 10, now: c.now });
    expect(keeper.mayLogin()).toEqual({ ok: true });
    keeper.loggedIn();
    keeper.tokenAccepted();
    expect(keeper.mayLogin()).toEqual({ ok: true });
    keeper.loggedIn();
    expect(keeper.recentLogins).toBe(2);
  });

  it('renews a token that timed out before it was ever used: once', () => {
    const c = clock();
    const keeper = new TokenKeeper({ backoffMs: 1000, maxBackoffMs: 4000, maxLoginsPerHour: 100, now: c.now });
    expect(keeper.mayLogin()).toEqual({ ok: true });
    keeper.loggedIn();
    // Two hours without a call: the org ended the session before its first use.
    c.advance(7_200_000);
    expect(keeper.mayLogin()).toEqual({ ok: true });
    keeper.loggedIn();
    keeper.tokenAccepted();
    expect(keeper.recentLogins).toBe(1);
  });

  it('refuses to renew again when the token of a renewal is refused before it ever worked, then backs off doubling', () => {
    const c = clock();
    const keeper = new TokenKeeper({ backoffMs: 1000, maxBackoffMs: 4000, maxLoginsPerHour: 100, now: c.now });
    keeper.loggedIn();
    expect(keeper.mayLogin()).toEqual({ ok: true });
    keeper.loggedIn();
    const refused = keeper.mayLogin();
    expect(refused).toEqual({ ok: false, reason: 'the new token was refused too (INVALID_SESSION_ID)', code: 'INVALID_SESSION_ID', retryAt: c.now() + 1000 });
    c.advance(999);
    expect(keeper.mayLogin().ok).toBe(false);
    c.advance(1);
    expect(keeper.mayLogin().ok).toBe(true);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      keeper.loginFailed('invalid_grant: expired authorization code', 'invalid_grant');
      const permission = keeper.mayLogin();
      waits.push(permission.ok ? 0 : permission.retryAt - c.now());
      if (i === 0) expect(permission).toMatchObject({ ok: false, code: 'invalid_grant', reason: 'invalid_grant: expired authorization code' });
      c.advance(10_000);
    }
    expect(waits).toEqual([2000, 4000, 4000, 4000]);
    keeper.loggedIn();
    keeper.tokenAccepted();
    keeper.loginFailed('x', 'LOGIN_FAILED');
    const afterSuccess = keeper.mayLogin();
    expect(afterSuccess.ok ? 0 : afterSuccess.retryAt - c.now()).toBe(1000);
  });

  it('caps logins per hour outright', () => {
    const c = clock();
    const keeper = new TokenKeeper({ backoffMs: 1, maxBackoffMs: 1, maxLoginsPerHour: 3, now: c.now });
    for (let i = 0; i < 3; i++) {
      expect(keeper.mayLogin().ok).toBe(true);
      keeper.loggedIn();
      keeper.tokenAccepted();
      c.advance(60_000);
    }
    const capped = keeper.mayLogin();
    expect(capped).toEqual({ ok: false, reason: '3 logins in the last hour', code: 'LOGIN_RATE_EXCEEDED', retryAt: 1_000_000 + 3_600_000 });
    c.advance(3_600_000);
    expect(keeper.mayLogin().ok).toBe(true);
  });
});

describe('Sforce-Limit-Info and the limit guard', () => {
  it.each([
    ['api-usage=25/15000', { used: 25, limit: 15000 }],
    ['api-usage=0/100000, per-app-api-usage=3/5000(appName=iot)', { used: 0, limit: 100000 }],
    ['per-app-api-usage=3/5000(appName=iot)', undefined],
    [undefined, undefined],
  ])('parses %s', (header, usage) => {
    expect(parseLimitInfo(header)).toEqual(usage);
  });

  it('holds at the guard share, probes once when the hold is over, and resumes under it', () => {
    const c = clock();
    const guard = new LimitGuard({ guardShare: 0.9, holdMs: 60_000, now: c.now });
    expect(guard.permit()).toBe('call');
    guard.observe({ used: 8999, limit: 10000 });
    expect(guard.permit()).toBe('call');
    guard.observe({ used: 9000, limit: 10000 });
    expect(guard.hold).toEqual({ reason: 'guard', until: c.now() + 60_000 });
    expect(guard.permit()).toBe('hold');
    c.advance(60_000);
    expect(guard.permit()).toBe('probe');
    expect(guard.permit()).toBe('hold');
    guard.observe({ used: 9500, limit: 10000 });
    expect(guard.hold?.until).toBe(c.now() + 60_000);
    c.advance(60_000);
    expect(guard.permit()).toBe('probe');
    guard.observe({ used: 8000, limit: 10000 });
    expect(guard.hold).toBeUndefined();
    expect(guard.permit()).toBe('call');
  });

  it('holds on REQUEST_LIMIT_EXCEEDED even with no guard share, and keeps holding when a probe fails on the network', () => {
    const c = clock();
    const guard = new LimitGuard({ guardShare: 1, holdMs: 1000, now: c.now });
    guard.observe({ used: 14_999, limit: 15_000 });
    expect(guard.permit()).toBe('call');
    guard.exceeded();
    expect(guard.hold?.reason).toBe('exceeded');
    c.advance(1000);
    expect(guard.permit()).toBe('probe');
    guard.probeFailed();
    expect(guard.permit()).toBe('hold');
    c.advance(1000);
    expect(guard.permit()).toBe('probe');
    guard.observe({ used: 14_000, limit: 15_000 });
    expect(guard.permit()).toBe('call');
  });
});

describe('REQUEST_LIMIT_EXCEEDED: the daily allowance and concurrent long requests', () => {
  it('holds for the hold time when the daily allowance is spent (the usage says so)', () => {
    const c = clock();
    const guard = new LimitGuard({ guardShare: 0.9, holdMs: 300_000, now: c.now });
    guard.exceeded({ used: 15_000, limit: 15_000 }, 'TotalRequests Limit exceeded.');
    expect(guard.hold).toEqual({ reason: 'exceeded', until: c.now() + 300_000 });
  });

  it.each<[string, { used: number; limit: number } | undefined, string]>([
    ['its message', undefined, 'ConcurrentPerOrgLongTxn Limit exceeded.'],
    ['a daily use under the allowance', { used: 1_200, limit: 15_000 }, 'Limit exceeded.'],
  ])('tells concurrent long requests by %s: a hold of 1 s doubling to 30 s, ended by the next answer', (_what, usage, message) => {
    const c = clock();
    const guard = new LimitGuard({ guardShare: 0.9, holdMs: 300_000, now: c.now });
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      guard.exceeded(usage, message);
      expect(guard.hold?.reason).toBe('concurrent');
      waits.push((guard.hold?.until ?? 0) - c.now());
      expect(guard.permit()).toBe('hold');
      c.advance(waits[i]);
      expect(guard.permit()).toBe('probe');
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    guard.observe({ used: 1_201, limit: 15_000 });
    expect(guard.hold).toBeUndefined();
    expect(guard.permit()).toBe('call');
    guard.exceeded(usage, message);
    expect((guard.hold?.until ?? 0) - c.now()).toBe(1000);
  });
});

describe('authentication settings', () => {
  it.each([
    ['https://login.salesforce.com', 'https://login.salesforce.com'],
    ['https://test.salesforce.com/', 'https://test.salesforce.com'],
    ['https://acme.my.salesforce.com', 'https://login.salesforce.com'],
    ['https://acme--uat.sandbox.my.salesforce.com', 'https://test.salesforce.com'],
    ['http://127.0.0.1:4444', 'http://127.0.0.1:4444'],
    ['http://127.0.0.1:4444/', 'http://127.0.0.1:4444'],
  ])('the JWT audience for %s is %s', (loginUrl, audience) => {
    expect(defaultAudience(loginUrl)).toBe(audience);
  });

  const base: AuthSettings = { method: 'jwt', loginUrl: 'https://login.salesforce.com', consumerKey: 'ck', username: 'u@example.com' };
  it.each<[string, AuthSettings, AuthSecrets, string | undefined]>([
    ['jwt complete', base, { privateKey: 'pem' }, undefined],
    ['jwt without key', base, {}, 'private key missing'],
    ['client credentials without secret', { ...base, method: 'clientCredentials', username: undefined }, {}, 'consumer secret missing'],
    ['refresh token', { ...base, method: 'refreshToken' }, { refreshToken: 'r' }, undefined],
    ['password', { ...base, method: 'password' }, { clientSecret: 's' }, 'password missing'],
    ['static token', { method: 'accessToken', loginUrl: '' }, { accessToken: 't' }, 'instance URL missing'],
    ['web-to only', { method: 'none', loginUrl: '' }, {}, undefined],
    ['nothing', { method: 'jwt', loginUrl: '' }, {}, 'login URL, consumer key, username, private key missing'],
  ])('%s', (_what, settings, secrets, missing) => {
    expect(missingSettings(settings, secrets)).toBe(missing);
  });

  it('signs an RS256 assertion with iss, sub, aud and a 3-minute exp, from PKCS#8 or PKCS#1 keys', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    for (const pem of [privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()]) {
      const assertion = await signAssertion({ ...base, loginUrl: 'https://test.salesforce.com' }, readPrivateKey(pem), 1_700_000_000_000);
      expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'RS256' });
      const { payload } = await jwtVerify(assertion, await importSPKI(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'RS256'), { currentDate: new Date(1_700_000_000_000) });
      expect(payload).toEqual({ iss: 'ck', sub: 'u@example.com', aud: 'https://test.salesforce.com', iat: 1_700_000_000, exp: 1_700_000_180 });
    }
  });

  it('reads encrypted keys with their passphrase, and says plainly when a key cannot be read', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const encrypted = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pass' }).toString();
    expect(readPrivateKey(encrypted, 'pass').asymmetricKeyType).toBe('rsa');
    expect(() => readPrivateKey('not a key')).toThrow(/^the private key cannot be read/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => readPrivateKey(ec)).toThrow(/an RSA key is needed, this is ec/);
  });
});

describe('connection settings', () => {
  const jwt = { loginUrl: 'https://login.salesforce.com/', authMethod: 'jwt', consumerKey: 'ck', username: 'u@example.com' };

  it('reads a complete JWT connection, with defaults', () => {
    const config = readConnectionConfig(jwt, { privateKey: 'PEM' });
    expect(config).toEqual({
      settings: {
        method: 'jwt',
        loginUrl: 'https://login.salesforce.com',
        consumerKey: 'ck',
        username: 'u@example.com',
        audience: undefined,
        instanceUrl: undefined,
        apiVersion: '62.0',
        webTo: { url: 'https://webto.salesforce.com', orgId: '' },
        guardShare: 0.9,
        holdMs: 300_000,
      },
      secrets: { privateKey: 'PEM' },
    });
  });

  it('reads the key from a file when none is pasted, and serves Web-to from a local login URL', () => {
    const config = readConnectionConfig({ ...jwt, loginUrl: 'http://127.0.0.1:4444', privateKeyFile: '/keys/server.key', orgId: '00D8d0000IoTorgAAA' }, {}, (path) => `key from ${path}`);
    expect(config).toMatchObject({ secrets: { privateKey: 'key from /keys/server.key' }, settings: { webTo: { url: 'http://127.0.0.1:4444', orgId: '00D8d0000IoTorg' } } });
  });

  it.each<[string, Record<string, unknown>, Record<string, string>, RegExp]>([
    ['an unknown method', { ...jwt, authMethod: 'magic' }, { privateKey: 'k' }, /unknown authentication method "magic"/],
    ['a login URL that is not one', { ...jwt, loginUrl: 'login.salesforce.com' }, { privateKey: 'k' }, /not an http\(s\) URL/],
    ['an old API version', { ...jwt, apiVersion: '45.0' }, { privateKey: 'k' }, /API version 45.0: 46.0 or later/],
    ['a guard out of range', { ...jwt, guardPercent: '120' }, { privateKey: 'k' }, /between 1 and 100/],
    ['a bad hold time', { ...jwt, holdMinutes: '0' }, { privateKey: 'k' }, /positive number of minutes/],
    ['a bad org id', { ...jwt, orgId: '001abc' }, { privateKey: 'k' }, /not an org id/],
    ['a missing key', jwt, {}, /private key missing/],
    ['Web-to only without the org id', { authMethod: 'none', loginUrl: '' }, {}, /Web-to forms only needs the org id/],
  ])('refuses %s', (_what, props, credentials, problem) => {
    expect((readConnectionConfig(props, credentials, () => 'unused') as { problem: string }).problem).toMatch(problem);
  });

  it('refuses an unreadable key file, and keys sessions by settings and secrets', () => {
    expect(readConnectionConfig({ ...jwt, privateKeyFile: '/nope' }, {}, () => {
      throw new Error('ENOENT: no such file');
    })).toEqual({ problem: 'the private key file cannot be read: ENOENT: no such file' });
    const a = readConnectionConfig(jwt, { privateKey: 'k1' }) as { settings: SessionSettings; secrets: AuthSecrets };
    const b = readConnectionConfig(jwt, { privateKey: 'k2' }) as { settings: SessionSettings; secrets: AuthSecrets };
    expect(sessionKey(a.settings, a.secrets)).toBe(sessionKey(a.settings, { ...a.secrets }));
    expect(sessionKey(a.settings, a.secrets)).not.toBe(sessionKey(b.settings, b.secrets));
    expect(sessionKey(a.settings, a.secrets)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('environment variables', () => {
  it('names the variables Node-RED left unset', () => {
    expect(readConnectionConfig({ loginUrl: '${SF_LOGIN_URL}', consumerKey: '${SF_CONSUMER_KEY}', username: 'u' }, { privateKey: 'k' })).toEqual({
      problem: 'environment variable SF_LOGIN_URL, SF_CONSUMER_KEY not set',
      unsetEnv: ['SF_LOGIN_URL', 'SF_CONSUMER_KEY'],
    });
  });
});
