/**
 * A small HTTP server on loopback that stands in for a time-series store where no real one can
 * run here (InfluxDB 3) or where a test must script the answers (429, 413, 401, partial writes).
 * It records every request (gzip undone) and answers with what the test's handler says.
 *
 *   const fake = await FakeInflux.start((request) => ({ status: 204 }));
 *   ... fake.url ... fake.requests ...
 *   await fake.close();
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { HOST } from './services';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The body as sent, gzip undone. */
  body: string;
  lines: string[];
  gzipped: boolean;
}

export interface FakeAnswer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

export type FakeHandler = (request: RecordedRequest) => FakeAnswer | Promise<FakeAnswer>;

export class FakeInflux {
  readonly requests: RecordedRequest[] = [];

  private constructor(
    private readonly server: Server,
    public handler: FakeHandler,
  ) {}

  static async start(handler: FakeHandler = () => ({ status: 204 })): Promise<FakeInflux> {
    const server = createServer();
    const fake = new FakeInflux(server, handler);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const gzipped = req.headers['content-encoding'] === 'gzip';
        const body = (gzipped ? gunzipSync(raw) : raw).toString('utf8');
        const url = new URL(req.url ?? '/', 'http://fake');
        const recorded: RecordedRequest = { method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body, lines: body.split('\n').filter((l) => l !== ''), gzipped };
        fake.requests.push(recorded);
        Promise.resolve(fake.handler(recorded)).then(
          (answer) => {
            res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
            res.end(answer.body ?? '');
          },
          (err: Error) => {
            res.writeHead(500);
            res.end(err.message);
          },
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    return fake;
  }

  get url(): string {
    return `http://${HOST}:${(this.server.address() as AddressInfo).port}`;
  }

  /** Every line written so far, in order. */
  get lines(): string[] {
    return this.requests.flatMap((r) => r.lines);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
