/**
 * Removes credential material from a message once it was used: the msg properties the node read
 * API keys, signatures and tokens from (headers, query parameters, message properties), the same
 * headers from the request's raw header list, and query parameters from the request's URLs.
 */

/** Where a credential was read: a msg property as Node-RED's normalisePropertyExpression splits it. */
export interface CredentialPath {
  /** The objects to walk to reach the one holding the credential. */
  holder: ReadonlyArray<string | number>;
  key: string | number;
  /** An HTTP header (`req.headers.x`) or query parameter (`req.query.x`): also in rawHeaders, or the URLs. */
  request?: 'headers' | 'query';
}

export function credentialPath(segments: ReadonlyArray<string | number>): CredentialPath | undefined {
  if (segments.length === 0) return undefined;
  const key = segments[segments.length - 1];
  const path: CredentialPath = { holder: segments.slice(0, -1), key };
  if (segments.length === 3 && segments[0] === 'req' && (segments[1] === 'headers' || segments[1] === 'query') && typeof key === 'string') path.request = segments[1];
  return path;
}

interface RequestLike {
  rawHeaders?: unknown;
  url?: unknown;
  originalUrl?: unknown;
}

function redactQuery(url: string, name: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = key;
      try {
        decoded = decodeURIComponent(key.replace(/\+/g, ' '));
      } catch {
        decoded = key;
      }
      return decoded === name && eq >= 0 ? `${key}=removed` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

export function removeCredentials(msg: Record<string, unknown>, paths: readonly CredentialPath[]): void {
  for (const path of paths) {
    let holder: unknown = msg;
    for (const part of path.holder) {
      if (holder === null || typeof holder !== 'object') break;
      holder = (holder as Record<string | number, unknown>)[part];
    }
    if (holder === null || typeof holder !== 'object' || (holder as Record<string | number, unknown>)[path.key] === undefined) continue;
    delete (holder as Record<string | number, unknown>)[path.key];
    const req = msg.req as RequestLike | undefined;
    if (!path.request || !req || typeof req !== 'object') continue;
    const name = path.key as string;
    if (path.request === 'headers' && Array.isArray(req.rawHeaders)) {
      const raw = req.rawHeaders as string[];
      for (let i = raw.length - 2; i >= 0; i -= 2) if (String(raw[i]).toLowerCase() === name.toLowerCase()) raw.splice(i, 2);
    }
    if (path.request === 'query') {
      if (typeof req.url === 'string') req.url = redactQuery(req.url, name);
      if (typeof req.originalUrl === 'string') req.originalUrl = redactQuery(req.originalUrl, name);
    }
  }
}
