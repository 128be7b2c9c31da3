/**
 * The connection node's settings, read and checked: what the editor stored (after Node-RED put
 * in the `${ENV}` values) and the credentials, into the session's settings, or a sentence
 * saying what is wrong.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AUTH_METHODS, missingSettings, type AuthMethod, type AuthSecrets } from './auth';
import type { SessionSettings } from './session';

export interface ConnectionProperties {
  loginUrl?: string;
  authMethod?: string;
  consumerKey?: string;
  username?: string;
  audience?: string;
  instanceUrl?: string;
  privateKeyFile?: string;
  apiVersion?: string;
  orgId?: string;
  webToUrl?: string;
  guardPercent?: string | number;
  holdMinutes?: string | number;
}

export type ConnectionCredentials = AuthSecrets;

/** jsforce needs 46.0 or later for upsert collections. */
const MIN_API_VERSION = 46;

/** Node-RED leaves `${NAME}` as it is when the variable is not set. */
const UNSET_ENV = /^\$\{([^}]+)\}$/;

export function readConnectionConfig(
  props: ConnectionProperties,
  credentials: ConnectionCredentials,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): { settings: SessionSettings; secrets: AuthSecrets } | { problem: string; unsetEnv?: string[] } {
  const unsetEnv = [...Object.values(props), ...Object.values(credentials)].flatMap((v) => (typeof v === 'string' ? (UNSET_ENV.exec(v.trim())?.slice(1) ?? []) : []));
  if (unsetEnv.length > 0) return { problem: `environment variable ${unsetEnv.join(', ')} not set`, unsetEnv };
  const method = (props.authMethod || 'jwt') as AuthMethod;
  if (!AUTH_METHODS.includes(method)) return { problem: `unknown authentication method "${props.authMethod}"` };
  const loginUrl = (props.loginUrl ?? '').trim().replace(/\/+$/, '');
  if (loginUrl && !/^https?:\/\/[^/\s]+/i.test(loginUrl)) return { problem: `the login URL "${loginUrl}" is not an http(s) URL` };
  const apiVersion = (props.apiVersion || '62.0').trim();
  if (!/^\d{2,3}\.\d$/.test(apiVersion) || Number(apiVersion) < MIN_API_VERSION) return { problem: `API version ${apiVersion}: 46.0 or later is needed` };
  const guardPercent = Number(props.guardPercent === '' || props.guardPercent === undefined ? 90 : props.guardPercent);
  if (!(guardPercent > 0 && guardPercent <= 100)) return { problem: `the API guard must be a share between 1 and 100 %, not ${props.guardPercent}` };
  const holdMinutes = Number(props.holdMinutes === '' || props.holdMinutes === undefined ? 5 : props.holdMinutes);
  if (!(holdMinutes > 0)) return { problem: `the hold time must be a positive number of minutes, not ${props.holdMinutes}` };
  const orgId = (props.orgId ?? '').trim();
  if (orgId && !/^00D[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?$/.test(orgId)) return { problem: `"${orgId}" is not an org id (15 or 18 characters starting 00D)` };

  const secrets: AuthSecrets = {};
  for (const [key, value] of Object.entries(credentials)) if (typeof value === 'string' && value !== '') secrets[key as keyof AuthSecrets] = value;
  if (method === 'jwt' && !secrets.privateKey && props.privateKeyFile?.trim()) {
    try {
      secrets.privateKey = readFile(props.privateKeyFile.trim());
    } catch (err) {
      return { problem: `the private key file cannot be read: ${(err as Error).message}` };
    }
  }
  const settings: SessionSettings = {
    method,
    loginUrl,
    consumerKey: props.consumerKey?.trim() || undefined,
    username: props.username?.trim() || undefined,
    audience: props.audience?.trim() || undefined,
    instanceUrl: props.instanceUrl?.trim().replace(/\/+$/, '') || undefined,
    apiVersion,
    webTo: { url: (props.webToUrl?.trim() || defaultWebToUrl(loginUrl)).replace(/\/+$/, ''), orgId: orgId.slice(0, 15) },
    guardShare: guardPercent / 100,
    holdMs: holdMinutes * 60_000,
  };
  if (method === 'none' && !settings.webTo.orgId) return { problem: 'a connection for Web-to forms only needs the org id' };
  const missing = missingSettings(settings, secrets);
  return missing ? { problem: missing } : { settings, secrets };
}

/** Salesforce serves Web-to forms from webto.salesforce.com; a local sandbox serves them itself. */
export function defaultWebToUrl(loginUrl: string): string {
  try {
    if (new URL(loginUrl).hostname.toLowerCase().endsWith('salesforce.com')) return 'https://webto.salesforce.com';
  } catch {
    // no login URL (a static token or Web-to only): the public servlets
  }
  return loginUrl || 'https://webto.salesforce.com';
}

/** Identifies a session: nodes with the same settings and secrets share one (and its token). */
export function sessionKey(settings: SessionSettings, secrets: AuthSecrets): string {
  return createHash('sha256').update(JSON.stringify([settings, secrets])).digest('hex');
}
