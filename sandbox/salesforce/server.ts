/**
 * The local Salesforce sandbox: one HTTP server that answers, on the wire, the way Salesforce
 * does for everything the pack uses (OAuth token endpoint, REST API, Web-to-Case/Lead servlets),
 * keeps its records in a file, shows them on a page, and lets tests inject faults.
 *
 *   const sf = await startSalesforceSandbox({ apps: [...], users: [...] });
 *   sf.url              // login URL, instance URL and CRM page
 *   sf.faults.inject({ unavailable: 3 })
 *   sf.expireTokens()
 *   sf.configure({ sessionTimeoutMs: 2000 })   // sessions end after 2 s without a call
 *   sf.streaming.forgetClients()               // CometD clients get 403::Unknown client
 *   await sf.close()
 *
 * The same controls are offered over HTTP under /_sandbox/ for tests that run it in another
 * process (see README "Salesforce sandbox"). It listens on loopback by default and has no
 * protection of its own: it is a test double, not a server to expose.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { capBody, createCappedServer } from '../../scripts/body-cap';
import { EventBus, RETENTION_MS } from './event-bus';
import { Faults, type FaultPlan } from './faults';
import { IdFactory, toId18 } from './ids';
import { OAuthServer, type ConnectedApp, type SandboxUser } from './oauth';
import { FAVICON, PAGE, pageView } from './page';
import { RestApi, type RestAnswer } from './rest';
import { RollingCount } from './rolling-count';
import { defaultObjects, Schema, type ObjectSpec, type ValidationRule } from './schema';
import { RecordStore, type PublishedEvent, type StoredRecord, type StreamEvent } from './store';
import { CLIENT_TIMEOUT_MS, HOLD_MS, StreamingServer, type StreamingStats } from './streaming';
import { WebToServlets, type DroppedPost, type WebToKind } from './web-to';

export type { ConnectedApp, SandboxUser, FaultPlan };

export interface SandboxOptions {
  host?: string;
  /** 0 (the default) for any free port. */
  port?: number;
  /** The records file (JSON lines); records are kept in memory only without one. */
  dataFile?: string;
  /** The org id (18 characters; Web-to forms carry its first 15). */
  orgId?: string;
  apps?: ConnectedApp[];
  users?: SandboxUser[];
  /** Daily API allowance (Developer Edition: 15,000). */
  apiAllowance?: number;
  /** Sessions end after this long without a call (Salesforce's default: 2 hours). */
  sessionTimeoutMs?: number;
  /** Requests running at least this long count as long requests (Salesforce: 20 s). */
  longRequestMs?: number;
  /** Long requests the org runs at once; one more is refused (Salesforce: 25 in production orgs). */
  concurrentLongRequests?: number;
  /** The username-password flow, which orgs created since Summer '23 block. */
  passwordFlow?: boolean;
  webTo?: { caseCap?: number; leadCap?: number; pendingCap?: number; delayMs?: number; requireCaptcha?: boolean };
  /** The length of Salesforce's "day" for allowances and caps (tests shorten it). */
  dayMs?: number;
  /** Objects besides the standard ones (custom objects, platform events). */
  objects?: ObjectSpec[];
  validationRules?: ValidationRule[];
  /** Objects whose record changes are published on /data/<Object>ChangeEvent (Change Data Capture). */
  changeEvents?: string[];
  /** How long platform and change events stay on the bus for replay (Salesforce: 72 hours). */
  eventRetentionMs?: number;
  /** How long a CometD connect waits for events (Salesforce: 110 s). */
  streamingHoldMs?: number;
  /** A CometD client that does not connect again within this long of an answer is forgotten (Salesforce: 40 s). */
  streamingClientTimeoutMs?: number;
}

/** What a test (or the org's admin) may change while the sandbox runs. */
export interface SandboxSettings {
  sessionTimeoutMs?: number;
  longRequestMs?: number;
  concurrentLongRequests?: number;
  eventRetentionMs?: number;
  streamingHoldMs?: number;
  streamingClientTimeoutMs?: number;
}

/** The Streaming API's state and the controls tests use to make it misbehave. */
export interface SandboxStreaming {
  stats(): StreamingStats;
  /** Events kept on a channel (oldest first). */
  retained(channel: string): StreamEvent[];
  /** Every CometD client is forgotten: the next message of each gets 403::Unknown client. */
  forgetClients(): number;
  /** Events up to this replay id (all without one) are gone: a replay from them gets 400. */
  purge(through?: number): number;
}

export interface SandboxStats {
  apiCalls: number;
  apiUsed: number;
  apiAllowance: number;
  logins: number;
  rejectedForLimit: number;
  /** Calls refused because too many long requests were running. */
  rejectedForConcurrency: number;
  faults: Faults['fired'];
}

export interface SalesforceSandbox {
  /** Login URL, instance URL and the CRM page, all one. */
  readonly url: string;
  readonly orgId: string;
  readonly faults: Faults;
  records(type: string): StoredRecord['fields'][];
  events(type?: string): PublishedEvent['fields'][];
  droppedWebTo(): DroppedPost[];
  stats(): SandboxStats;
  readonly streaming: SandboxStreaming;
  /** Every access token stops working now (CometD clients get 401::Authentication invalid). */
  expireTokens(): void;
  /** Changes the session timeout or the concurrent long request limit; returns the settings in force. */
  configure(settings: SandboxSettings): Required<SandboxSettings>;
  /** Pretends this many API requests were made in the last 24 hours. */
  setApiUsage(used: number): void;
  issueRefreshToken(username: string, consumerKey: string): string;
  /**
   * The id of the record of this type whose `match` field has the value given in `fields`,
   * made from `fields` (with Salesforce's checks) when there is none: demo data such as the
   * customer Account the example flows' Assets belong to.
   */
  ensureRecord(type: string, fields: Record<string, unknown>, match: string): string;
  /** Forgets records, events, faults and usage, and restores the settings it started with. */
  reset(): void;
  close(): Promise<void>;
}

const DEFAULT_ORG_ID = toId18('00D8d0000IoTorg');
const API_PATH = /^\/services\/data\/v(\d+\.\d)(\/.*)?$/;
const DAY_MS = 86_400_000;
const TWO_HOURS_MS = 2 * 3_600_000;

export async function startSalesforceSandbox(options: SandboxOptions = {}): Promise<SalesforceSandbox> {
  const now = Date.now;
  const orgId = options.orgId ?? DEFAULT_ORG_ID;
  const dayMs = options.dayMs ?? DAY_MS;
  const apiMax = options.apiAllowance ?? 15_000;
  const schema = new Schema([...defaultObjects(), ...(options.objects ?? [])], options.validationRules);
  const indexed = (type: string): string[] => {
    const spec = schema.object(type);
    return spec ? Object.entries(spec.fields).filter(([, f]) => f.externalId || f.unique).map(([name]) => name) : [];
  };
  const store = new RecordStore(indexed, options.dataFile);
  const ids = new IdFactory();
  for (const id of store.open()) ids.reserve(id);
  const faults = new Faults();
  const apiUsage = new RollingCount(dayMs, now);
  let apiCalls = 0;
  let rejectedForLimit = 0;
  let rejectedForConcurrency = 0;
  let baseUrl = '';
  let longRequestMs = options.longRequestMs ?? 20_000;
  let concurrentLongRequests = options.concurrentLongRequests ?? 25;
  /** When each API request under way started. */
  const running = new Set<{ startedAt: number }>();
  const initialSettings: Required<SandboxSettings> = {
    sessionTimeoutMs: options.sessionTimeoutMs ?? TWO_HOURS_MS,
    longRequestMs,
    concurrentLongRequests,
    eventRetentionMs: options.eventRetentionMs ?? RETENTION_MS,
    streamingHoldMs: options.streamingHoldMs ?? HOLD_MS,
    streamingClientTimeoutMs: options.streamingClientTimeoutMs ?? CLIENT_TIMEOUT_MS,
  };

  const users = options.users ?? [];
  const oauth = new OAuthServer(
    { orgId, baseUrl: () => baseUrl, apps: options.apps ?? [], users, sessionTimeoutMs: initialSettings.sessionTimeoutMs, passwordFlow: options.passwordFlow ?? true },
    () => ids.create('005'),
  );
  const bus = new EventBus({ store, schema, changeEntities: options.changeEvents ?? ['Case', 'Asset', 'IoT_Command__c'], retentionMs: initialSettings.eventRetentionMs, now });
  const streaming = new StreamingServer({
    bus,
    authorized: (authorization) => oauth.session(authorization) !== undefined,
    holdMs: initialSettings.streamingHoldMs,
    clientTimeoutMs: initialSettings.streamingClientTimeoutMs,
  });
  const rest = new RestApi({ schema, store, ids, faults, now, allowance: () => ({ used: apiUsage.value, max: apiMax }), nextReplayId: () => bus.nextReplayId() });
  const automatedUser = ids.create('005');
  const webTo = new WebToServlets({
    orgId,
    schema,
    insert: (object, fields) => rest.insertFromForm(schema.object(object) as ObjectSpec, fields, automatedUser),
    delayMs: options.webTo?.delayMs ?? 200,
    caps: { case: options.webTo?.caseCap ?? 5000, lead: options.webTo?.leadCap ?? 500 },
    pendingCap: options.webTo?.pendingCap ?? 50_000,
    dayMs,
    requireCaptcha: options.webTo?.requireCaptcha ?? false,
    now,
  });

  const limitHeader = (): string => `api-usage=${apiUsage.value}/${apiMax}`;

  async function api(req: IncomingMessage, res: ServerResponse, url: URL, match: RegExpExecArray): Promise<void> {
    const send = (answer: RestAnswer): void => reply(res, answer.status, answer.body, { 'Sforce-Limit-Info': limitHeader() });
    const session = oauth.session(req.headers.authorization);
    if (!session) return send({ status: 401, body: [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }] });
    // Salesforce refuses a request while the org runs its limit of long ones, whatever the daily use.
    const now = Date.now();
    let long = 0;
    for (const request of running) if (now - request.startedAt >= longRequestMs) long++;
    if (long >= concurrentLongRequests) {
      rejectedForConcurrency++;
      return send({ status: 403, body: [{ message: 'ConcurrentPerOrgLongTxn Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }] });
    }
    const request = { startedAt: now };
    running.add(request);
    res.once('close', () => running.delete(request));
    if (faults.latencyMs > 0) await new Promise((r) => setTimeout(r, faults.latencyMs));
    if (faults.take('unavailable')) {
      const status = faults.unavailableStatus;
      const body = status === 503 ? [{ message: 'Server temporarily unavailable. Please try again.', errorCode: 'SERVER_UNAVAILABLE' }] : [{ message: 'An unexpected error occurred. Please include this ErrorId if you contact support: 1234567-8901 (-1234567)', errorCode: 'UNKNOWN_EXCEPTION' }];
      return send({ status, body });
    }
    if (apiUsage.value >= apiMax) {
      rejectedForLimit++;
      return send({ status: 403, body: [{ message: `TotalRequests Limit exceeded.`, errorCode: 'REQUEST_LIMIT_EXCEEDED' }] });
    }
    apiUsage.add();
    apiCalls++;
    const raw = await readBody(req);
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch (err) {
        return send({ status: 400, body: [{ message: `Unexpected character in the request body: ${(err as Error).message}`, errorCode: 'JSON_PARSER_ERROR' }] });
      }
    }
    const segments = (match[2] ?? '').split('/').slice(1).map((s) => decodeURIComponent(s));
    const answer = rest.handle({ method: req.method ?? 'GET', segments, version: Number(match[1]), query: url.searchParams, body, userId: session.userId });
    // The work is done; the answer is lost on the way back (a timeout, a dropped connection).
    if (faults.take('lostAnswers')) {
      res.socket?.destroy();
      return;
    }
    send(answer);
  }

  async function admin(req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<void> {
    const body = req.method === 'POST' ? await readBody(req) : '';
    const json = (): Record<string, unknown> => (body ? (JSON.parse(body) as Record<string, unknown>) : {});
    switch (`${req.method} ${path}`) {
      case 'GET /_sandbox/view':
        return reply(
          res,
          200,
          pageView(
            { orgId, cases: store.all('Case'), leads: store.all('Lead'), assets: store.all('Asset'), summaries: store.all('IoT_Device_Summary__c'), events: store.events, record: (id) => store.get(id), api: { used: apiUsage.value, max: apiMax }, webTo: { submitted: webTo.submitted, created: webTo.created, waiting: webTo.waiting, dropped: webTo.dropped } },
            { case: url.searchParams.get('case') ?? undefined, device: url.searchParams.get('device') ?? undefined, status: url.searchParams.get('status') ?? undefined, page: Number(url.searchParams.get('page') ?? 1) || 1 },
          ),
        );
      case 'GET /_sandbox/stats':
        return reply(res, 200, sandbox.stats());
      case 'GET /_sandbox/records':
        return reply(res, 200, sandbox.records(url.searchParams.get('type') ?? 'Case'));
      case 'GET /_sandbox/events':
        return reply(res, 200, sandbox.events(url.searchParams.get('type') ?? undefined));
      case 'POST /_sandbox/faults':
        faults.inject(json() as FaultPlan);
        return reply(res, 200, { pending: faults.pending, latencyMs: faults.latencyMs, unavailableUntil: faults.unavailableUntil });
      case 'POST /_sandbox/expire-tokens':
        sandbox.expireTokens();
        return reply(res, 204);
      case 'POST /_sandbox/settings':
        try {
          return reply(res, 200, sandbox.configure(json() as SandboxSettings));
        } catch (err) {
          return reply(res, 400, [{ errorCode: 'INVALID_SETTING', message: (err as Error).message }]);
        }
      case 'POST /_sandbox/api-usage':
        sandbox.setApiUsage(Number(json().used ?? 0));
        return reply(res, 200, { used: apiUsage.value, max: apiMax });
      case 'POST /_sandbox/reset':
        sandbox.reset();
        return reply(res, 204);
      case 'GET /_sandbox/streaming':
        return reply(res, 200, streaming.stats());
      case 'GET /_sandbox/streaming/events':
        return reply(res, 200, sandbox.streaming.retained(url.searchParams.get('channel') ?? '/data/ChangeEvents'));
      case 'POST /_sandbox/streaming/forget-clients':
        return reply(res, 200, { forgotten: sandbox.streaming.forgetClients() });
      case 'POST /_sandbox/streaming/purge': {
        const through = json().through;
        return reply(res, 200, { purged: sandbox.streaming.purge(through === undefined ? undefined : Number(through)) });
      }
      default:
        return reply(res, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const path = url.pathname;
    const match = API_PATH.exec(path);
    if (match) return api(req, res, url, match);
    if (path === '/services/data' || path === '/services/data/') {
      return reply(res, 200, [{ label: "Winter '26", url: '/services/data/v62.0', version: '62.0' }]);
    }
    if (path === '/services/oauth2/token' && req.method === 'POST') {
      const answer = await oauth.token(new URLSearchParams(await readBody(req)));
      return reply(res, answer.status, answer.body);
    }
    const servlet = /^\/servlet\/servlet\.WebTo(Case|Lead)$/.exec(path);
    if (servlet && req.method === 'POST') {
      const kind = servlet[1].toLowerCase() as WebToKind;
      const html = webTo.post(kind, new URLSearchParams(await readBody(req)));
      res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8' });
      res.end(html);
      return;
    }
    if (StreamingServer.handles(path)) return streaming.handle(req, res, path, await readBody(req));
    if (path.startsWith('/_sandbox/')) return admin(req, res, path, url);
    if (path === '/' && req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PAGE);
      return;
    }
    // A record's own address, as in Salesforce (`https://<My Domain>/<record id>`): the page, showing it.
    if (/^\/[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/.test(path) && req.method === 'GET') {
      res.writeHead(302, { Location: `/?case=${path.slice(1)}` });
      res.end();
      return;
    }
    if (path === '/favicon.svg' && req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'max-age=86400' });
      res.end(FAVICON);
      return;
    }
    reply(res, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
  }

  const server: Server = createCappedServer((req, res) => {
    if (!capBody(req, res, MAX_BODY_BYTES)) return;
    route(req, res).catch((err: Error) => {
      if (!res.headersSent) reply(res, 500, [{ errorCode: 'UNKNOWN_EXCEPTION', message: err.message }]);
      else res.destroy();
    });
  });
  // Salesforce's Streaming API is long polling only: a WebSocket upgrade (faye's first probe) gets 400, and faye falls back.
  server.on('upgrade', (_req: IncomingMessage, socket: import('node:stream').Duplex) => {
    const body = JSON.stringify({ error: 'Only long-polling is supported' });
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  baseUrl = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;

  const sandbox: SalesforceSandbox = {
    url: baseUrl,
    orgId,
    faults,
    records: (type) => store.all(schema.object(type)?.name ?? type).map((r) => r.fields),
    events: (type) => store.events.filter((e) => type === undefined || e.type.toLowerCase() === type.toLowerCase()).map((e) => e.fields),
    droppedWebTo: () => [...webTo.dropped],
    stats: () => ({ apiCalls, apiUsed: apiUsage.value, apiAllowance: apiMax, logins: oauth.logins, rejectedForLimit, rejectedForConcurrency, faults: { ...faults.fired } }),
    streaming: {
      stats: () => streaming.stats(),
      retained: (channel) => bus.retained(channel),
      forgetClients: () => streaming.forgetClients(),
      purge: (through) => bus.purge(through),
    },
    expireTokens: () => {
      oauth.expireAll();
      streaming.checkTokens();
    },
    configure: (settings) => {
      if (settings.sessionTimeoutMs !== undefined) oauth.sessionTimeoutMs = positive(settings.sessionTimeoutMs, 'sessionTimeoutMs');
      if (settings.longRequestMs !== undefined) longRequestMs = positive(settings.longRequestMs, 'longRequestMs');
      if (settings.concurrentLongRequests !== undefined) concurrentLongRequests = positive(settings.concurrentLongRequests, 'concurrentLongRequests');
      if (settings.eventRetentionMs !== undefined) bus.retentionMs = positive(settings.eventRetentionMs, 'eventRetentionMs');
      if (settings.streamingHoldMs !== undefined) streaming.holdMs = positive(settings.streamingHoldMs, 'streamingHoldMs');
      if (settings.streamingClientTimeoutMs !== undefined) streaming.clientTimeoutMs = positive(settings.streamingClientTimeoutMs, 'streamingClientTimeoutMs');
      return {
        sessionTimeoutMs: oauth.sessionTimeoutMs,
        longRequestMs,
        concurrentLongRequests,
        eventRetentionMs: bus.retentionMs,
        streamingHoldMs: streaming.holdMs,
        streamingClientTimeoutMs: streaming.clientTimeoutMs,
      };
    },
    setApiUsage: (used) => apiUsage.set(used),
    issueRefreshToken: (username, consumerKey) => oauth.issueRefreshToken(username, consumerKey),
    ensureRecord: (type, fields, match) => {
      const spec = schema.object(type);
      if (!spec) throw new Error(`the sandbox org has no object ${type}`);
      const wanted = String(fields[match]).toLowerCase();
      const existing = store.all(spec.name).find((r) => String(r.fields[match] ?? '').toLowerCase() === wanted);
      if (existing) return existing.fields.Id;
      const saved = rest.insertFromForm(spec, fields, automatedUser);
      if (!saved.success || !saved.id) throw new Error(`could not make the ${type}: ${saved.errors.map((e) => e.message).join('; ')}`);
      return saved.id;
    },
    reset: () => {
      streaming.reset();
      store.clear();
      bus.clear();
      rest.reset();
      faults.clear();
      apiUsage.set(0);
      apiCalls = 0;
      rejectedForLimit = 0;
      rejectedForConcurrency = 0;
      sandbox.configure(initialSettings);
    },
    close: async () => {
      webTo.close();
      streaming.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
  return sandbox;
}

function positive(value: unknown, name: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of at least 0, not ${JSON.stringify(value)}`);
  return n;
}

function reply(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** The most of a request body the sandbox reads: far above a 200-record collection call, the largest the pack makes. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
