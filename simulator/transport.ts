/**
 * How a simulated device gets a message to the flows, as real devices do: a message counts as
 * delivered only once it was acknowledged (a 2xx over HTTP, a PUBACK at MQTT QoS 1), and what
 * was not acknowledged is sent again. A deploy, a restart of Node-RED or of its broker is
 * something devices live through, not the end of them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt';

/** What an HTTP endpoint answered. */
export interface Answer {
  status: number;
  body: unknown;
  /** The Retry-After header, when there was one. */
  retryAfter?: string;
}

/** One attempt: a POST of a JSON body. */
export async function post(url: string, body: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Answer> {
  const timeout = AbortSignal.timeout(30_000);
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: signal ? AbortSignal.any([timeout, signal]) : timeout });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, body: parsed, retryAfter: response.headers.get('retry-after') ?? undefined };
}

/** How an HTTP message ended: the last answer (or the error of the last attempt), after how many attempts. */
export interface Delivery {
  answer?: Answer;
  error?: string;
  attempts: number;
}

/** How long an honest sender keeps trying a message that was not acknowledged. */
export const GIVE_UP_AFTER_MS = 120_000;

/** Answers that say "not now" rather than "no": the sender tries again. */
export function notNow(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Sends until the message is acknowledged (2xx) or refused for good (any other 4xx), as a device
 * does: after a 503, 429 or other 5xx it waits for the Retry-After (else a backoff from 1 s to
 * 10 s), after a failed connection the backoff; at least a second, so that a signature with a
 * timestamp in seconds is new. Each attempt is built afresh by `request` (signed again: the same
 * signature twice is a replay). Gives up after GIVE_UP_AFTER_MS, or when `signal` aborts.
 */
export async function deliver(url: string, request: () => Promise<{ body: string; headers: Record<string, string> }>, signal: AbortSignal): Promise<Delivery> {
  const deadline = Date.now() + GIVE_UP_AFTER_MS;
  let last: Delivery = { attempts: 0 };
  for (let attempts = 1, backoffMs = 1_000; ; attempts++, backoffMs = Math.min(backoffMs * 2, 10_000)) {
    let waitMs = backoffMs;
    try {
      const { body, headers } = await request();
      const answer = await post(url, body, headers, signal);
      last = { answer, attempts };
      if (!notNow(answer.status)) return last;
      const retryAfter = Number(answer.retryAfter);
      if (answer.retryAfter !== undefined && Number.isFinite(retryAfter)) waitMs = Math.max(1_000, retryAfter * 1_000);
    } catch (err) {
      last = { error: (err as Error).message, attempts };
    }
    if (signal.aborted || Date.now() + waitMs > deadline) return last;
    try {
      await sleep(waitMs, undefined, { signal });
    } catch {
      return last;
    }
  }
}

/**
 * An MQTT device's connection as mqtt.js devices keep it: a persistent session (clean: false)
 * that reconnects after a broker restart or a deploy (every second, mqtt.js's default), with every
 * QoS 1 publish kept until its PUBACK and sent again on reconnect. Counts the publishes it sent
 * again.
 */
export class MqttLink {
  /** Publishes written again after a reconnect because their PUBACK had not come. */
  resent = 0;
  /** Message ids written and not yet acknowledged. */
  private readonly written = new Set<number>();
  /** Publishes waiting for their PUBACK: settled false if the link is closed first. */
  private readonly waiting = new Set<(acknowledged: boolean) => void>();

  private constructor(readonly client: MqttClient) {
    client.on('packetsend', (packet: Packet) => {
      if (packet.cmd !== 'publish' || packet.qos === 0 || packet.messageId === undefined) return;
      if (this.written.has(packet.messageId)) this.resent++;
      else this.written.add(packet.messageId);
    });
    client.on('packetreceive', (packet: Packet) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) this.written.delete(packet.messageId);
    });
  }

  /**
   * Connects (waiting through refused connections while the broker is not up yet); rejects when the
   * broker refuses the device. `onMessage` listens before the CONNACK: a persistent session's kept
   * messages follow it at once, and a listener added later would miss them.
   */
  static open(url: string, options: Pick<IClientOptions, 'clientId' | 'username' | 'password'>, onMessage?: (topic: string, payload: Buffer) => void): Promise<MqttLink> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect(url, { ...options, clean: false, reconnectPeriod: 1_000, connectTimeout: 10_000 });
      if (onMessage) client.on('message', onMessage);
      // As mqtt.connectAsync settles: connected (or ended) resolves, an error rejects.
      const settled = () => {
        client.off('connect', connected);
        client.off('end', connected);
        client.off('error', failed);
      };
      const connected = () => {
        settled();
        resolve(new MqttLink(client));
      };
      const failed = (err: Error) => {
        settled();
        client.end();
        reject(err);
      };
      client.on('connect', connected);
      client.on('end', connected);
      client.on('error', failed);
    });
  }

  /** Publishes at QoS 1: true once acknowledged, false when the link was closed before. */
  publish(topic: string, payload: string): Promise<boolean> {
    return new Promise((resolve) => {
      const settle = (acknowledged: boolean) => {
        if (!this.waiting.delete(settle)) return;
        resolve(acknowledged);
      };
      this.waiting.add(settle);
      this.client.publish(topic, payload, { qos: 1 }, (err) => settle(!err));
    });
  }

  /** Closes the connection at once; what is still waiting for its PUBACK is not acknowledged. */
  async close(): Promise<void> {
    for (const settle of [...this.waiting]) settle(false);
    await this.client.endAsync(true);
  }
}
