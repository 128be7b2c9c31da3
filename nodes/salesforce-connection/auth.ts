/**
 * How a session logs in, per authentication method, with jsforce's `authorize()` against the
 * token endpoint. The JWT bearer assertion is signed here with jose (RS256): jsforce does not
 * sign it. Every method returns a login function that the session calls for the first login
 * and for each renewal; only the static access token has none.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Connection } from 'jsforce';

export type AuthMethod = 'jwt' | 'clientCredentials' | 'refreshToken' | 'password' | 'accessToken' | 'none';

export const AUTH_METHODS: readonly AuthMethod[] = ['jwt', 'clientCredentials', 'refreshToken', 'password', 'accessToken', 'none'];

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Secrets: from Node-RED credentials, never from the flow. */
export interface AuthSecrets {
  privateKey?: string;
  keyPassphrase?: string;
  clientSecret?: string;
  refreshToken?: string;
  password?: string;
  securityToken?: string;
  accessToken?: string;
}

export interface AuthSettings {
  method: AuthMethod;
  loginUrl: string;
  consumerKey?: string;
  username?: string;
  /** JWT audience; by default derived from the login URL. */
  audience?: string;
  /** Static access token only: the org's instance URL. */
  instanceUrl?: string;
}

export type Login = (conn: Connection) => Promise<void>;

/** Assertions live 3 minutes, as Salesforce asks. */
const ASSERTION_SECONDS = 180;

/** What is missing for a method, in words, or undefined when the settings are complete. */
export function missingSettings(settings: AuthSettings, secrets: AuthSecrets): string | undefined {
  const need: string[] = [];
  const { method } = settings;
  if (method === 'none') return undefined;
  if (!settings.loginUrl && method !== 'accessToken') need.push('login URL');
  if (method !== 'accessToken' && !settings.consumerKey) need.push('consumer key');
  if ((method === 'jwt' || method === 'password') && !settings.username) need.push('username');
  if (method === 'jwt' && !secrets.privateKey) need.push('private key');
  if ((method === 'clientCredentials' || method === 'password') && !secrets.clientSecret) need.push('consumer secret');
  if (method === 'refreshToken' && !secrets.refreshToken) need.push('refresh token');
  if (method === 'password' && !secrets.password) need.push('password');
  if (method === 'accessToken' && !secrets.accessToken) need.push('access token');
  if (method === 'accessToken' && !settings.instanceUrl) need.push('instance URL');
  return need.length > 0 ? `${need.join(', ')} missing` : undefined;
}

/**
 * The audience Salesforce expects in a JWT bearer assertion: test.salesforce.com for sandboxes,
 * login.salesforce.com for production and My Domain logins, else the login URL itself (an
 * Experience Cloud site, the local sandbox).
 */
export function defaultAudience(loginUrl: string): string {
  let host = '';
  let origin = loginUrl.replace(/\/+$/, '');
  try {
    const url = new URL(loginUrl);
    host = url.hostname.toLowerCase();
    origin = url.origin;
  } catch {
    return origin;
  }
  if (host === 'test.salesforce.com' || host.endsWith('.sandbox.my.salesforce.com')) return 'https://test.salesforce.com';
  if (host === 'login.salesforce.com' || host.endsWith('.my.salesforce.com') || host.endsWith('.salesforce.com')) return 'https://login.salesforce.com';
  return origin;
}

/** A signed JWT bearer assertion for the connected app and user. */
export async function signAssertion(settings: AuthSettings, key: KeyObject, nowMs = Date.now()): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer(settings.consumerKey as string)
    .setSubject(settings.username as string)
    .setAudience(settings.audience || defaultAudience(settings.loginUrl))
    .setIssuedAt(now)
    .setExpirationTime(now + ASSERTION_SECONDS)
    .sign(key);
}

/** Reads a PEM private key (PKCS#8 or PKCS#1, optionally encrypted). Throws with a plain reason. */
export function readPrivateKey(pem: string, passphrase?: string): KeyObject {
  try {
    const key = createPrivateKey({ key: pem.trim(), format: 'pem', passphrase: passphrase || undefined });
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`an RSA key is needed, this is ${key.asymmetricKeyType}`);
    return key;
  } catch (err) {
    throw new Error(`the private key cannot be read: ${(err as Error).message.replace(/^error:[0-9A-F]+:/i, '')}`);
  }
}

/** The login function for a method, or undefined for the static token and Web-to only. */
export function loginFor(settings: AuthSettings, secrets: AuthSecrets): Login | undefined {
  switch (settings.method) {
    case 'jwt': {
      const key = readPrivateKey(secrets.privateKey as string, secrets.keyPassphrase);
      return async (conn) => {
        await conn.authorize({ grant_type: JWT_BEARER_GRANT, assertion: await signAssertion(settings, key) });
      };
    }
    case 'clientCredentials':
      return async (conn) => {
        await conn.authorize({ grant_type: 'client_credentials' });
      };
    case 'refreshToken':
      return async (conn) => {
        await conn.authorize({ grant_type: 'refresh_token', refresh_token: secrets.refreshToken as string });
      };
    case 'password':
      // The OAuth username-password flow (jsforce's login() would replace our capped renewal).
      return async (conn) => {
        await conn.authorize({ grant_type: 'password', username: settings.username as string, password: `${secrets.password ?? ''}${secrets.securityToken ?? ''}` });
      };
    default:
      return undefined;
  }
}
