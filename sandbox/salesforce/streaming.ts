/**
 * The Streaming API's CometD endpoint, `/cometd/<vv.v>`, as Salesforce speaks Bayeux: long polling
 * only (faye's WebSocket probe is refused, and it falls back), a JSON array of messages in and out,
 * handshake, connect, subscribe with the replay extension (`ext.replay = { channel: -1 | -2 | id }`),
 * unsubscribe and disconnect. A connect waits up to the hold time (110 s) for events and is answered
 * early when one comes; the other answers of the same request wait with it. A client that has not
 * connected again within 40 s of an answer is forgotten (`403::Unknown client`, handshake again); a
 * token that no longer works gets `401::Authentication invalid` with `reconnect: none` (on a
 * handshake, `403::Handshake denied` with the 401 as its failure reason).
 *
 * Sources: Salesforce "How the Client Connects", "Clients and Timeouts", "Handling Streaming API
 * Errors", "Streaming API Error Codes", "Message Durability".
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { matches, type EventBus } from './event-bus';
import type { StreamEvent } from './store';

/** Salesforce holds a connect for up to 110 s. */
export const HOLD_MS = 110_000;
/** A client must connect again within 40 s of an answer. */
export const CLIENT_TIMEOUT_MS = 40_000;

type Message = Record<string, unknown> & { channel?: unknown; id?: unknown; clientId?: unknown };

interface Held {
  res: ServerResponse;
  connect: Message;
  /** Answers to the other messages of the request, sent with the connect's. */
  before: Message[];
  timer: NodeJS.Timeout;
}

interface Client {
  id: string;
  authorization: string;
  subscriptions: Set<string>;
  /** Events waiting for the next connect. */
  queue: StreamEvent[];
  held?: Held;
  /** When the client was last answered: it must connect again within the client timeout. */
  answeredAt: number;
}

export interface StreamingOptions {
  bus: EventBus;
  /** Whether the Authorization header holds a live session token (it counts as activity). */
  authorized(authorization: string | undefined): boolean;
  holdMs?: number;
  clientTimeoutMs?: number;
  now?: () => number;
}

export interface StreamingStats {
  clients: number;
  subscriptions: string[];
  handshakes: number;
  /** Subscribe requests by replay option: -1, -2 or 'id'. */
  subscribes: Record<string, number>;
  unknownClient: number;
  authFailures: number;
  invalidReplay: number;
}

const VERSION_PATH = /^\/cometd\/(\d{2,3}\.\d)\/?$/;

export class StreamingServer {
  holdMs: number;
  clientTimeoutMs: number;
  private readonly clients = new Map<string, Client>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly counts = { handshakes: 0, unknownClient: 0, authFailures: 0, invalidReplay: 0, subscribes: {} as Record<string, number> };

  constructor(private readonly options: StreamingOptions) {
    this.holdMs = options.holdMs ?? HOLD_MS;
    this.clientTimeoutMs = options.clientTimeoutMs ?? CLIENT_TIMEOUT_MS;
    this.now = options.now ?? Date.now;
    this.unsubscribe = options.bus.onEvent((event) => this.deliver(event));
    this.sweeper = setInterval(() => this.sweep(), 1_000);
    this.sweeper.unref();
  }

  /** Whether this request is for the CometD endpoint (any version, or none). */
  static handles(path: string): boolean {
    return path === '/cometd' || path.startsWith('/cometd/');
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string, body: string): void {
    if (!VERSION_PATH.test(path)) {
      return json(res, 400, { error: "API version in the URI is mandatory. URI format: '/cometd/62.0'" });
    }
    // Long polling only: faye's WebSocket probe (a GET asking for an upgrade) is refused, and faye falls back.
    if (req.method !== 'POST') return json(res, 400, { error: 'Only long-polling is supported' });
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return json(res, 400, [{ successful: false, error: '400::Unable to parse the request body' }]);
    }
    const messages = (Array.isArray(parsed) ? parsed : [parsed]).filter((m): m is Message => m !== null && typeof m === 'object');
    const authorization = String(req.headers.authorization ?? '');
    const answers: Message[] = [];
    let wait: { client: Client; connect: Message; now: boolean } | undefined;
    for (const message of messages) {
      const answer = this.answer(message, authorization, (client, now) => (wait = { client, connect: message, now }));
      if (answer) answers.push(answer);
    }
    if (!wait) return json(res, 200, answers);
    // The connect's answer goes last, after the other answers and the events (a subscribe's replay included).
    const { client, connect, now } = wait;
    if (now || client.queue.length > 0) return this.answerConnect(client, res, connect, answers);
    this.release(client);
    const held: Held = { res, connect, before: answers, timer: setTimeout(() => this.answerHeld(client), this.holdMs) };
    client.held = held;
    res.once('close', () => {
      if (client.held === held) {
        clearTimeout(held.timer);
        client.held = undefined;
        client.answeredAt = this.now();
      }
    });
  }

  /** Every client is forgotten: their next message gets 403::Unknown client (a held connect at once). */
  forgetClients(): number {
    const count = this.clients.size;
    for (const client of [...this.clients.values()]) {
      this.clients.delete(client.id);
      const held = client.held;
      if (!held) continue;
      clearTimeout(held.timer);
      client.held = undefined;
      this.counts.unknownClient++;
      json(held.res, 200, [...held.before, unknownClient(held.connect)]);
    }
    return count;
  }

  /** Tokens were revoked: a connect held with one that no longer works is answered 401 now. */
  checkTokens(): void {
    for (const client of [...this.clients.values()]) {
      if (!client.held || this.options.authorized(client.authorization)) continue;
      const held = client.held;
      clearTimeout(held.timer);
      client.held = undefined;
      this.clients.delete(client.id);
      this.counts.authFailures++;
      json(held.res, 200, [...held.before, authInvalid(held.connect)]);
    }
  }

  stats(): StreamingStats {
    const subscriptions = [...this.clients.values()].flatMap((c) => [...c.subscriptions]);
    return { clients: this.clients.size, subscriptions, handshakes: this.counts.handshakes, subscribes: { ...this.counts.subscribes }, unknownClient: this.counts.unknownClient, authFailures: this.counts.authFailures, invalidReplay: this.counts.invalidReplay };
  }

  reset(): void {
    this.forgetClients();
    this.counts.handshakes = this.counts.unknownClient = this.counts.authFailures = this.counts.invalidReplay = 0;
    this.counts.subscribes = {};
  }

  close(): void {
    clearInterval(this.sweeper);
    this.unsubscribe();
    for (const client of this.clients.values()) {
      if (client.held) clearTimeout(client.held.timer);
    }
    this.clients.clear();
  }

  /** The answer to one message, or undefined for a connect (`connect` is told whether it may wait). */
  private answer(message: Message, authorization: string, connect: (client: Client, now: boolean) => void): Message | undefined {
    const channel = String(message.channel ?? '');
    if (channel === '/meta/handshake') {
      if (!this.options.authorized(authorization)) {
        this.counts.authFailures++;
        return { channel, id: message.id, successful: false, error: '403::Handshake denied', ext: { sfdc: { failureReason: '401::Authentication invalid' } }, advice: { reconnect: 'none' } };
      }
      const client: Client = { id: randomBytes(12).toString('base64url'), authorization, subscriptions: new Set(), queue: [], answeredAt: this.now() };
      this.clients.set(client.id, client);
      this.counts.handshakes++;
      return {
        channel,
        id: message.id,
        version: '1.0',
        minimumVersion: '1.0',
        clientId: client.id,
        supportedConnectionTypes: ['long-polling'],
        successful: true,
        ext: { replay: true, 'payload.format': true },
        advice: this.advice(),
      };
    }
    const client = this.clients.get(String(message.clientId ?? ''));
    if (!client) {
      this.counts.unknownClient++;
      return unknownClient(message);
    }
    if (!this.options.authorized(authorization)) {
      this.counts.authFailures++;
      this.drop(client);
      return authInvalid(message);
    }
    client.authorization = authorization;
    switch (channel) {
      case '/meta/connect': {
        const advice = message.advice as { timeout?: unknown } | undefined;
        // The first connect after a handshake asks for an answer at once (advice.timeout 0).
        connect(client, advice?.timeout === 0);
        return undefined;
      }
      case '/meta/subscribe':
        return this.subscribe(client, message);
      case '/meta/unsubscribe':
        client.subscriptions.delete(String(message.subscription ?? ''));
        return { channel, clientId: client.id, id: message.id, subscription: message.subscription, successful: true };
      case '/meta/disconnect':
        this.drop(client);
        return { channel, clientId: client.id, id: message.id, successful: true };
      default:
        return { channel, clientId: client.id, id: message.id, successful: false, error: `403:${channel}:Publish denied` };
    }
  }

  private subscribe(client: Client, message: Message): Message {
    const subscription = String(message.subscription ?? '');
    const reply = { channel: '/meta/subscribe', clientId: client.id, id: message.id, subscription };
    if (!this.options.bus.channelExists(subscription)) {
      return { ...reply, successful: false, error: `400::The channel you requested to subscribe to does not exist {${subscription}}` };
    }
    const ext = message.ext as { replay?: Record<string, unknown> } | undefined;
    const option = ext?.replay?.[subscription];
    const from = option === undefined ? -1 : Number(option);
    this.counts.subscribes[from === -1 || from === -2 ? String(from) : 'id'] = (this.counts.subscribes[from === -1 || from === -2 ? String(from) : 'id'] ?? 0) + 1;
    const replayed = this.options.bus.replay(subscription, from);
    if (replayed === 'invalid') {
      this.counts.invalidReplay++;
      return { ...reply, successful: false, error: `400::The replayId {${String(option)}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.` };
    }
    client.subscriptions.add(subscription);
    client.queue.push(...replayed);
    return { ...reply, successful: true };
  }

  /** A new event: queued for every client subscribed to its channel, and a held connect answered. */
  private deliver(event: StreamEvent): void {
    for (const client of this.clients.values()) {
      if (![...client.subscriptions].some((s) => matches(s, event.channel))) continue;
      client.queue.push(event);
      if (client.held) this.answerHeld(client);
    }
  }

  private answerHeld(client: Client): void {
    const held = client.held;
    if (!held) return;
    clearTimeout(held.timer);
    client.held = undefined;
    this.answerConnect(client, held.res, held.connect, held.before);
  }

  /** Events first, then the connect's answer, with the answers of the request's other messages before them. */
  private answerConnect(client: Client, res: ServerResponse, connect: Message, before: Message[]): void {
    const events = client.queue.splice(0).map((event) => ({ channel: event.channel, data: event.data }));
    json(res, 200, [...before, ...events, this.connected(client, connect)]);
  }

  private connected(client: Client, message: Message): Message {
    client.answeredAt = this.now();
    return { channel: '/meta/connect', clientId: client.id, id: message.id, successful: true, advice: this.advice() };
  }

  private advice(): Message {
    return { interval: 0, timeout: this.holdMs, reconnect: 'retry' };
  }

  /** A second connect of a client answers the one it held before. */
  private release(client: Client): void {
    if (client.held) this.answerHeld(client);
  }

  private drop(client: Client): void {
    this.clients.delete(client.id);
    if (client.held) {
      clearTimeout(client.held.timer);
      json(client.held.res, 200, [...client.held.before, this.connected(client, client.held.connect)]);
      client.held = undefined;
    }
  }

  /** Clients that did not connect again within the timeout of their last answer are forgotten. */
  private sweep(): void {
    const now = this.now();
    for (const client of [...this.clients.values()]) {
      if (!client.held && now - client.answeredAt > this.clientTimeoutMs) this.clients.delete(client.id);
    }
  }
}

function unknownClient(message: Message): Message {
  return { channel: message.channel, clientId: message.clientId, id: message.id, successful: false, error: '403::Unknown client', advice: { interval: 0, reconnect: 'handshake' } };
}

function authInvalid(message: Message): Message {
  return { channel: message.channel, clientId: message.clientId, id: message.id, successful: false, error: '401::Authentication invalid', advice: { reconnect: 'none', interval: 0 } };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
