/**
 * An HTTP proxy on loopback in front of a server (the Salesforce sandbox, a time-series store)
 * that records every request it passes on and what came back, so that a test counts calls the
 * way the server's operator would see them in an access log, without asking the server itself.
 *
 * For Salesforce it also stands for the org's front: the token endpoint's `instance_url` is
 * rewritten to the proxy, so that the calls after a login come through it too; it can answer
 * 503 SERVER_UNAVAILABLE for a while (an instance outage, as Salesforce shapes it), or refuse
 * logins with an OAuth error (an admin revoked the app).
 *
 *   const proxy = await RecordingProxy.start(sandbox.url);
 *   ... proxy.url ... proxy.calls ...
 *   await proxy.close();
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ProxiedCall {
  /** When the request reached the proxy (ms since the epoch). */
  at: number;
  method: string;
  path: string;
  /** The status the client was answered, or `lost` when the server closed without an answer. */
  status: number | 'lost';
  /** The request body, gunzipped when it was sent gzipped. */
  body: string;
  /** The answer's body as the client got it. */
  answer: string;
  /** Answered by the proxy itself (an injected outage or refusal), never seen by the server. */
  injected: boolean;
}

export interface OAuthRefusal {
  error: string;
  error_description: string;
}

export class RecordingProxy {
  readonly calls: ProxiedCall[] = [];
  /** API calls (not logins) are answered 503 SERVER_UNAVAILABLE until this time. */
  unavailableUntil = 0;
  /** Token requests are answered 400 with this body while set. */
  refuseLogins: OAuthRefusal | undefined;

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
  ) {}

  static async start(target: string): Promise<RecordingProxy> {
    let proxy: RecordingProxy | undefined;
    const server = createServer((req, res) => void proxy?.handle(req, res));
    proxy = new RecordingProxy(server, new URL(target));
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Token requests (logins and renewals) since `from` (an index into calls). */
  logins(from = 0): ProxiedCall[] {
    return this.calls.slice(from).filter((c) => c.path.startsWith('/services/oauth2/token'));
  }

  /** Salesforce REST calls since `from` (an index into calls). */
  apiCalls(from = 0): ProxiedCall[] {
    return this.calls.slice(from).filter((c) => c.path.startsWith('/services/data/'));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((closed) => this.server.close(() => closed()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const raw = await readAll(req);
    const path = req.url ?? '/';
    const call: ProxiedCall = { at, method: req.method ?? 'GET', path, status: 'lost', body: decode(raw, req.headers), answer: '', injected: false };
    this.calls.push(call);
    const isLogin = path.startsWith('/services/oauth2/token');
    if (isLogin && this.refuseLogins) return this.answer(res, call, 400, JSON.stringify(this.refuseLogins));
    if (!isLogin && path.startsWith('/services/data/') && Date.now() < this.unavailableUntil) {
      return this.answer(res, call, 503, JSON.stringify([{ message: 'Server temporarily unavailable. Please try again.', errorCode: 'SERVER_UNAVAILABLE' }]));
    }
    const headers = { ...req.headers, host: this.target.host };
    const upstream = request({ host: this.target.hostname, port: this.target.port, method: req.method, path, headers }, async (answer) => {
      let body = await readAll(answer);
      const outHeaders = { ...answer.headers };
      if (isLogin && answer.statusCode === 200) {
        const token = JSON.parse(body.toString('utf8')) as Record<string, string>;
        for (const key of ['instance_url', 'id']) if (token[key]) token[key] = token[key].replace(this.target.origin, this.url);
        body = Buffer.from(JSON.stringify(token));
        delete outHeaders['content-encoding'];
      }
      delete outHeaders['content-length'];
      delete outHeaders['transfer-encoding'];
      call.status = answer.statusCode ?? 0;
      call.answer = decode(body, answer.headers);
      res.writeHead(call.status, { ...outHeaders, 'content-length': String(body.length) });
      res.end(body);
    });
    // The server hung up without an answer (a lost answer): so does the proxy.
    upstream.on('error', () => req.socket.destroy());
    upstream.end(raw);
  }

  private answer(res: ServerResponse, call: ProxiedCall, status: number, body: string): void {
    Object.assign(call, { status, answer: body, injected: true });
    res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function decode(body: Buffer, headers: IncomingHttpHeaders): string {
  if (body.length === 0) return '';
  return (headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8');
}
