/**
 * Request bodies read only up to a cap, for the HTTP servers `npm start` runs (Node-RED's and the
 * Salesforce sandbox's). A body announced larger than its cap (Content-Length) is answered 413 at
 * once, before a byte of it is read; a body without a length (chunked) is counted as it arrives and
 * cut at the cap: 413, and the connection is closed. Whatever reads the body afterwards (Node-RED's
 * parsers, which read an `http in` node's raw body with no limit at all) never sees more.
 *
 * The count sits where the body enters the request: the HTTP parser hands every chunk to the
 * request's `push`, so a request class of our own (Node's `IncomingMessage` server option) counts
 * there, before any reader.
 */
import { createServer, IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as TlsServerOptions } from 'node:https';

export class CappedRequest extends IncomingMessage {
  /** Bytes the body may have; set by the server's handler before anything reads the body. */
  bodyCap = Number.POSITIVE_INFINITY;
  /** Called once when the body goes past the cap. */
  onOverCap: (() => void) | undefined;
  private bodyBytes = 0;
  private cut = false;

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (this.cut) return false;
    if (chunk !== null && chunk !== undefined) {
      this.bodyBytes += (chunk as Buffer).length;
      if (this.bodyBytes > this.bodyCap) {
        this.cutHere();
        return false;
      }
    }
    return super.push(chunk, encoding);
  }

  /** Stops taking the body: nothing pushed after this reaches a reader (false also pauses the socket). */
  cutHere(): void {
    if (this.cut) return;
    this.cut = true;
    this.onOverCap?.();
  }
}

/**
 * Caps the body of a request that is about to be handled: true when it may be handled; false when
 * it was answered 413 already (its Content-Length is over the cap). A body that turns out larger
 * while it is read is answered 413 then.
 */
export function capBody(req: CappedRequest, res: ServerResponse, cap: number): boolean {
  req.bodyCap = cap;
  req.onOverCap = () => payloadTooLarge(res);
  const announced = Number(req.headers['content-length']);
  if (Number.isFinite(announced) && announced > cap) {
    req.cutHere();
    return false;
  }
  return true;
}

/** 413 with the status text only, and the connection closed: the rest of the body is never read. */
function payloadTooLarge(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = 'Payload Too Large';
  res.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), Connection: 'close' });
  res.end(text);
}

/** An HTTP server, or an HTTPS one when TLS options are given, whose requests are CappedRequests. */
export function createCappedServer(handle: (req: CappedRequest, res: ServerResponse) => void, tls?: TlsServerOptions): Server {
  const listener = (req: IncomingMessage, res: ServerResponse) => handle(req as CappedRequest, res);
  return tls ? createHttpsServer({ ...tls, IncomingMessage: CappedRequest }, listener) : createServer({ IncomingMessage: CappedRequest }, listener);
}
