/**
 * Removes credential material from a message once it was used: the msg properties the node read
 * API keys, signatures and tokens from (headers, query parameters, message properties), the same
 * headers from the request's raw header list, and query parameters from the request's URLs.
 */

/** A msg property as Node-RED's normalisePropertyExpression splits it. */
export type Path = ReadonlyArray<string | number>;

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

export function removeCredentials(msg: Record<string, unknown>, paths: readonly Path[]): void {
  for (const parts of paths) {
    if (parts.length === 0) continue;
    let holder: unknown = msg;
    for (const part of parts.slice(0, -1)) {
      holder = holder !== null && typeof holder === 'object' ? (holder as Record<string | number, unknown>)[part] : undefined;
    }
    const last = parts[parts.length - 1];
    if (holder === null || typeof holder !== 'object' || !(last in (holder as object))) continue;
    delete (holder as Record<string | number, unknown>)[last];
    const req = msg.req as RequestLike | undefined;
    if (parts[0] !== 'req' || !req || typeof req !== 'object' || typeof last !== 'string') continue;
    if (parts[1] === 'headers' && Array.isArray(req.rawHeaders)) {
      const raw = req.rawHeaders as string[];
      for (let i = raw.length - 2; i >= 0; i -= 2) if (String(raw[i]).toLowerCase() === last.toLowerCase()) raw.splice(i, 2);
    }
    if (parts[1] === 'query') {
      if (typeof req.url === 'string') req.url = redactQuery(req.url, last);
      if (typeof req.originalUrl === 'string') req.originalUrl = redactQuery(req.originalUrl, last);
    }
  }
}
