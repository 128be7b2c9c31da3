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
 *
 * After a 413 the rest of a body still on its way is read and thrown away for a little while
 * (a lingering close, as web servers do): closing at once would reset the connection under a
 * client that is still sending, and it would see a broken pipe instead of the 413.
 */
import { createServer, IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as TlsServerOptions } from 'node:https';

/** How much of a refused body is read and thrown away, and for how long, before the connection is closed. */
const LINGER_BYTES = 1024 * 1024;
const LINGER_MS = 2_000;

export class CappedRequest extends IncomingMessage {
  /** Bytes the body may have; set by the server's handler before anything reads the body. */
  bodyCap = Number.POSITIVE_INFINITY;
  /** Called once when the body goes past the cap. */
  onOverCap: (() => void) | undefined;
  private bodyBytes = 0;
  private cut = false;
  private discarded = 0;
  private lingering: NodeJS.Timeout | undefined;

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (this.cut) return this.discard(chunk);
    if (chunk !== null && chunk !== undefined) {
      this.bodyBytes += (chunk as Buffer).length;
      if (this.bodyBytes > this.bodyCap) {
        this.cutHere(true);
        return false;
      }
    }
    return super.push(chunk, encoding);
  }

  /**
   * Stops taking the body: nothing pushed after this reaches a reader. `linger`: the body is
   * already on its way (no length was announced), so read and drop a little more of it first.
   */
  cutHere(linger: boolean): void {
    if (this.cut) return;
    this.cut = true;
    this.onOverCap?.();
    if (!linger) {
      this.discarded = LINGER_BYTES;
      return;
    }
    // The answer is on its way; give the client a moment to read it, then let go of the connection.
    this.lingering = setTimeout(() => this.socket?.destroy(), LINGER_MS).unref();
  }

  /** A chunk of a refused body: thrown away, up to a limit (true keeps the socket flowing). */
  private discard(chunk: unknown): boolean {
    if (chunk === null || chunk === undefined) {
      // The whole body came and went: the connection may serve the client's next request.
      clearTimeout(this.lingering);
      return false;
    }
    this.discarded += (chunk as Buffer).length;
    if (this.discarded <= LINGER_BYTES) return true;
    this.socket?.destroy();
    return false;
  }
}

/**
 * Caps the body of a request that is about to be handled: true when it may be handled; false when
 * it was answered 413 already (its Content-Length is over the cap). A body that turns out larger
 * while it is read is answered 413 then.
 */
export function capBody(req: CappedRequest, res: ServerResponse, cap: number): boolean {
  req.bodyCap = cap;
  const announced = Number(req.headers['content-length']);
  req.onOverCap = () => payloadTooLarge(res, Number.isFinite(announced));
  if (Number.isFinite(announced) && announced > cap) {
    req.cutHere(false);
    return false;
  }
  return true;
}

/**
 * 413 with the status text only. The connection closes at once for a body announced too large
 * (none of it is read); for one cut while it was read, once the linger ends.
 */
function payloadTooLarge(res: ServerResponse, announced: boolean): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = 'Payload Too Large';
  res.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...(announced ? { Connection: 'close' } : {}) });
  res.end(text);
}

/** An HTTP server, or an HTTPS one when TLS options are given, whose requests are CappedRequests. */
export function createCappedServer(handle: (req: CappedRequest, res: ServerResponse) => void, tls?: TlsServerOptions): Server {
  const listener = (req: IncomingMessage, res: ServerResponse) => handle(req as CappedRequest, res);
  return tls ? createHttpsServer({ ...tls, IncomingMessage: CappedRequest }, listener) : createServer({ IncomingMessage: CappedRequest }, listener);
}
