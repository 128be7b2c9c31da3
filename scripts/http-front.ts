/**
 * What `npm start` puts in front of Node-RED's HTTP server (the editor, the admin API and the
 * flows' `http in` endpoints share it), before Node-RED reads a byte of a request:
 *
 * - Cross-origin requests are refused (403), CORS preflights and WebSocket upgrades (the editor's
 *   comms: debug messages, statuses) included: Node-RED's admin API answers every origin
 *   (`Access-Control-Allow-Origin: *`), so without this a web page the user visits could read the
 *   flows and deploy its own. Devices, webhooks and curl send no Origin.
 * - Until Node-RED's runtime has started, every request is answered 503 with Retry-After (before,
 *   Node-RED itself answered the editor with a 503 and an error in the log, and the endpoints 404).
 * - Bodies are capped (body-cap.ts): an `http in` endpoint's at `httpNodeMaxLength`, anything else
 *   (the admin API: deploys) at `apiMaxLength`.
 *
 * and behind Node-RED's own routes (`notRunning`): a request that no route took while the flows
 * start or stop (a start, a deploy) is answered 503 with Retry-After instead of 404, which a
 * sender would take as final. `errors` answers what reached the end of the chain failed with its
 * status text only (Express's default prints the stack into the log and, in development, the answer).
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerOptions as TlsServerOptions } from 'node:https';
import { capBody, createCappedServer, type CappedRequest } from './body-cap';

/** Seconds a sender is told to wait while Node-RED starts or deploys (a start takes a few). */
const RETRY_AFTER_SECONDS = 2;

type Next = (err?: unknown) => void;
type App = (req: CappedRequest, res: ServerResponse) => void;

interface FlowNode {
  type?: string;
  url?: string;
}

/** The runtime events the front follows (Node-RED's RED.events). */
export interface RuntimeEvents {
  on(event: string, listener: (payload?: { config?: { flows?: FlowNode[] } }) => void): void;
}

export interface FrontOptions {
  /** The most an `http in` endpoint reads of a body, in bytes. */
  nodeMaxBytes: number;
  /** The most anything else reads (the admin API), in bytes. */
  apiMaxBytes: number;
}

export class HttpFront {
  private runtimeStarted = false;
  private flowsRunning = false;
  /** The paths of the running flows' `http in` nodes. */
  private nodePaths: RegExp[] = [];

  constructor(private readonly options: FrontOptions) {}

  /** The server Node-RED runs on (https when TLS options are given): every request passes the front first. */
  createServer(app: App, tls?: TlsServerOptions): Server {
    const server = createCappedServer((req, res) => this.handle(req, res, app), tls);
    // Upgrades skip the request handler. Listening before Node-RED does, this refuses first; the
    // comms' own listener then finds the socket closed and leaves it.
    server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      if (foreign(req)) socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    return server;
  }

  /** Node-RED's runtime has started: the editor and the admin API may answer. */
  started(): void {
    this.runtimeStarted = true;
  }

  /** Follows the flows starting and stopping, and learns their endpoints' paths. */
  watch(events: RuntimeEvents): void {
    const stopped = () => {
      this.flowsRunning = false;
    };
    events.on('flows:starting', stopped);
    events.on('flows:stopping', stopped);
    events.on('flows:started', (payload) => {
      this.nodePaths = (payload?.config?.flows ?? []).filter((n) => n.type === 'http in' && typeof n.url === 'string' && n.url !== '').map((n) => pathPattern(n.url as string));
      this.flowsRunning = true;
    });
  }

  /** Express middleware behind Node-RED's routes: no route took the request. */
  readonly notRunning = (_req: unknown, res: ServerResponse, next: Next): void => {
    if (this.flowsRunning) next();
    else unavailable(res);
  };

  /** Express error middleware at the very end. */
  readonly errors = (err: { status?: number; statusCode?: number; message?: string }, _req: unknown, res: ServerResponse, _next: Next): void => {
    if (res.headersSent) {
      // A body cut at its cap was answered already; anything else half-answered cannot be mended.
      res.destroy();
      return;
    }
    const status = Number(err?.status ?? err?.statusCode);
    const code = status >= 400 && status < 600 ? status : 500;
    if (code >= 500) console.error(`[http] ${code}: ${err?.message ?? String(err)}`);
    plain(res, code);
  };

  private handle(req: CappedRequest, res: ServerResponse, app: App): void {
    if (foreign(req) || (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined)) {
      plain(res, 403, 'Cross-origin requests are not accepted');
      return;
    }
    if (!this.runtimeStarted) {
      unavailable(res);
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const cap = this.nodePaths.some((pattern) => pattern.test(path)) ? this.options.nodeMaxBytes : this.options.apiMaxBytes;
    if (capBody(req, res, cap)) app(req, res);
  }
}

/** Sent by a page of another origin: not the host and port the request was sent to. */
function foreign(req: IncomingMessage): boolean {
  const { origin, host } = req.headers;
  if (origin === undefined) return false;
  try {
    return host === undefined || new URL(origin).host.toLowerCase() !== host.toLowerCase();
  } catch {
    return true;
  }
}

/**
 * An `http in` node's path as Express matches it: `:name` is one segment (`:name?` maybe none),
 * `*` anything; letter case and a trailing slash do not matter.
 */
export function pathPattern(path: string): RegExp {
  const segments = path
    .replace(/^\/*/, '')
    .replace(/\/+$/, '')
    .split('/')
    .map((segment) => {
      if (segment.startsWith(':')) return segment.endsWith('?') ? '(?:/[^/]*)?' : '/[^/]+';
      return `/${segment.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}`;
    });
  return new RegExp(`^${segments.join('')}/?$`, 'i');
}

function unavailable(res: ServerResponse): void {
  res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
  plain(res, 503);
}

/** An answer that is only its status text (or a short reason), as the pack's endpoints answer. */
function plain(res: ServerResponse, status: number, text = STATUS_CODES[status] ?? `HTTP ${status}`): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
