/**
 * One connection to a time-series store that speaks an InfluxDB write API: v2 (`/api/v2/write`,
 * token), v1 (`/write`, username and password) or v3 (`/api/v3/write_lp`, bearer token). Every
 * version goes through the client library's HTTP transport (gzip, timeouts, TLS, its HttpError
 * with the status, body and Retry-After), one request per batch; batching, retrying and failure
 * isolation are the writer node's job, which needs to know the fate of every request.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { InfluxDB, type Transport } from '@influxdata/influxdb-client';

export type ApiVersion = 'v1' | 'v2' | 'v3';
export type WritePrecision = 'ns' | 'us' | 'ms' | 's';

/** The config node's properties as the editor saves them. */
export interface StoreProperties {
  name?: string;
  url?: string;
  version?: string;
  org?: string;
  bucket?: string;
  database?: string;
  retentionPolicy?: string;
  precision?: string;
  gzip?: boolean;
  timeout?: string | number;
  ca?: string;
  insecure?: boolean;
}

export interface StoreCredentials {
  token?: string;
  username?: string;
  password?: string;
}

export interface StoreSettings {
  url: string;
  version: ApiVersion;
  org: string;
  bucket: string;
  database: string;
  retentionPolicy: string;
  precision: WritePrecision;
  gzip: boolean;
  timeoutMs: number;
  /** PEM text of the certificate authorities to trust, when not the system's. */
  ca: string | undefined;
  /** Skip TLS certificate verification. */
  insecure: boolean;
}

export class ConfigError extends Error {}

const PRECISIONS: readonly WritePrecision[] = ['ns', 'us', 'ms', 's'];
const V1_PRECISION: Record<WritePrecision, string> = { ns: 'ns', us: 'u', ms: 'ms', s: 's' };
const V3_PRECISION: Record<WritePrecision, string> = { ns: 'nanosecond', us: 'microsecond', ms: 'millisecond', s: 'second' };
/** Smaller bodies are not worth compressing (the client library's own default). */
const GZIP_THRESHOLD = 1000;
const MAX_SOCKETS = 32;

/** Checks the properties and fills in defaults; throws ConfigError saying what is wrong. */
export function settingsFromProperties(p: StoreProperties): StoreSettings {
  const url = (p.url ?? '').trim();
  if (url === '') throw new ConfigError('no URL: set the server URL (for example http://127.0.0.1:8086, or ${INFLUX_URL})');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(`the URL must start with http:// or https://, not ${parsed.protocol}//`);
  const version = (p.version || 'v2') as ApiVersion;
  if (!['v1', 'v2', 'v3'].includes(version)) throw new ConfigError(`unknown write API version ${JSON.stringify(p.version)}`);
  const precision = (p.precision || 'ms') as WritePrecision;
  if (!PRECISIONS.includes(precision)) throw new ConfigError(`unknown precision ${JSON.stringify(p.precision)}: one of ${PRECISIONS.join(', ')}`);
  const settings: StoreSettings = {
    url: url.replace(/\/+$/, ''),
    version,
    org: (p.org ?? '').trim(),
    bucket: (p.bucket ?? '').trim(),
    database: (p.database ?? '').trim(),
    retentionPolicy: (p.retentionPolicy ?? '').trim(),
    precision,
    gzip: p.gzip !== false,
    timeoutMs: seconds(p.timeout, 10) * 1000,
    ca: certificates(p.ca),
    insecure: p.insecure === true,
  };
  if (version === 'v2' && settings.bucket === '') throw new ConfigError('the v2 API needs a bucket');
  if (version !== 'v2' && settings.database === '') throw new ConfigError(`the ${version} API needs a database`);
  return settings;
}

/** The request path and headers for a write, by API version. The v2 token is the client library's. */
export function writeRequest(settings: StoreSettings, credentials: StoreCredentials): { path: string; headers: Record<string, string> } {
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
  const query = new URLSearchParams();
  let path: string;
  switch (settings.version) {
    case 'v1':
      path = '/write';
      query.set('db', settings.database);
      if (settings.retentionPolicy) query.set('rp', settings.retentionPolicy);
      query.set('precision', V1_PRECISION[settings.precision]);
      // Basic authentication keeps the password out of the URL, which proxies and servers log.
      if (credentials.username) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
      break;
    case 'v2':
      path = '/api/v2/write';
      if (settings.org) query.set('org', settings.org);
      query.set('bucket', settings.bucket);
      query.set('precision', settings.precision);
      break;
    case 'v3':
      path = '/api/v3/write_lp';
      query.set('db', settings.database);
      query.set('precision', V3_PRECISION[settings.precision]);
      if (credentials.token) headers.authorization = `Bearer ${credentials.token}`;
      break;
  }
  return { path: `${path}?${query.toString()}`, headers };
}

/** What the writer node asks of the config node. */
export interface LineProtocolStore {
  readonly precision: WritePrecision;
  /** Writes one batch: lines of line protocol joined by newlines. Rejects with the client library's errors. */
  write(body: string, signal?: AbortSignal): Promise<void>;
  /** Where the points go, for status and log lines (never a secret). */
  describe(): string;
}

/** What iot-timeseries-out finds on the config node it names. */
export interface StoreConfigNode {
  /** The store, or undefined when the settings are wrong (then `problem` says why). */
  store?: LineProtocolStore;
  problem?: string;
}

export class StoreWriter implements LineProtocolStore {
  readonly precision: WritePrecision;
  private readonly transport: Transport;
  private readonly agent: HttpAgent;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private active = 0;
  private settledAll: (() => void) | undefined;

  constructor(
    private readonly settings: StoreSettings,
    credentials: StoreCredentials,
  ) {
    this.precision = settings.precision;
    this.agent = settings.url.startsWith('https:')
      ? new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, ca: settings.ca, rejectUnauthorized: !settings.insecure })
      : new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    const client = new InfluxDB({
      url: settings.url,
      // Only v2 authenticates with "Token ..."; v1 and v3 set their own header.
      token: settings.version === 'v2' ? credentials.token || undefined : undefined,
      timeout: settings.timeoutMs,
      transportOptions: { agent: this.agent },
    });
    this.transport = client.transport;
    ({ path: this.path, headers: this.headers } = writeRequest(settings, credentials));
  }

  write(body: string, signal?: AbortSignal): Promise<void> {
    this.active++;
    const options = { method: 'POST', headers: this.headers, gzipThreshold: this.settings.gzip ? GZIP_THRESHOLD : undefined, signal };
    return (this.transport.request(this.path, body, options) as Promise<unknown>).then(
      () => this.finished(),
      (error: unknown) => {
        this.finished();
        throw error;
      },
    );
  }

  describe(): string {
    const s = this.settings;
    const target = s.version === 'v2' ? `bucket ${s.bucket}${s.org ? ` (org ${s.org})` : ''}` : `database ${s.database}${s.retentionPolicy ? `.${s.retentionPolicy}` : ''}`;
    return `${s.url} ${s.version} ${target}`;
  }

  /** Waits (at most timeoutMs) for the requests under way, then closes the connections. */
  async close(timeoutMs: number): Promise<void> {
    if (this.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => (this.settledAll = resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.agent.destroy();
  }

  private finished(): void {
    this.active--;
    if (this.active === 0 && this.settledAll) {
      this.settledAll();
      this.settledAll = undefined;
    }
  }
}

function seconds(value: string | number | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`the timeout must be a positive number of seconds, not ${JSON.stringify(value)}`);
  return n;
}

/** PEM text as given, or read from the file it names. */
function certificates(value: string | undefined): string | undefined {
  const text = (value ?? '').trim();
  if (text === '') return undefined;
  if (text.startsWith('-----BEGIN')) return text;
  try {
    return readFileSync(text, 'utf8');
  } catch (err) {
    throw new ConfigError(`the CA certificate file ${text} cannot be read: ${(err as Error).message}`);
  }
}
