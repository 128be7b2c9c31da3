/**
 * The load of the pattern benchmark (bench/patterns.ts): the same readings for every chain, and
 * senders that behave as devices and partner platforms do. Each sender keeps a bounded window of
 * unacknowledged messages (MQTT: QoS 1 publishes awaiting their PUBACK; HTTP: requests awaiting
 * their answer) and counts a reading only once it is acknowledged. What was not taken is sent
 * again: an MQTT device reconnects and resends (mqtt.js does it for a persistent session), an HTTP
 * sender waits out a 503 or 429 (its Retry-After) or a broken connection and posts again, signed
 * anew. Any other answer is a refusal, counted and reported.
 */
import { Agent, request } from 'node:http';
import type { WriteOptions } from '@influxdata/influxdb-client';
import mqtt, { type MqttClient } from 'mqtt';

/** Devices of every chain: 200, as in the measurements. */
export const DEVICES = 200;
/** QoS 1 publishes a device (or gateway) keeps unacknowledged at most. */
export const MQTT_WINDOW = 10;
/** Sensors behind each gateway of the Gateway pattern (the simulator's gateways have 8). */
export const GATEWAY_SENSORS = 8;
/** Requests a vendor cloud keeps open at once, one reading each. */
export const CALLBACK_CONCURRENCY = 64;
/** Batches (every device's reading) a partner platform keeps unanswered at once (Double Buffered). */
export const BATCH_WINDOW = 8;
/** Report streams a partner platform sends at once, each for its share of the devices (Buffered by Partners). */
export const REPORT_STREAMS = 8;

/** Where the bare chains write, and what their devices publish on. */
export const READINGS_MEASUREMENT = 'readings';
export const READINGS_TOPIC = 'devices/+/readings';
/** The bare subscriber's WriteApi: the pack writer's batch size, a short linger, no durability. */
export const BARE_CHAIN_WRITES: Partial<WriteOptions> = { batchSize: 5000, flushInterval: 100, maxRetries: 10 };

export interface Reading {
  /** Which device, 0 to devices - 1, and which of its readings. */
  device: number;
  k: number;
  /** The device's own time of the reading, ms since the epoch (a whole second). */
  time: number;
  temperature: number;
  battery: number;
}

/**
 * The readings of one run: `perDevice` readings from each of `devices` devices. Reading k of a
 * device is stamped k seconds after a start point in the past, so that a device's readings have
 * distinct times even where a payload carries whole seconds (the vendor cloud's) and the store
 * (one point per series and time) keeps each. Values stay in the normal range (no alert fires) and
 * the pair (temperature, battery) differs between any two readings of a device, so that a store
 * of latest values (the CRM's Assets) can be read back reading by reading.
 */
export class Fleet {
  readonly perDevice: number;
  readonly total: number;
  readonly startSecond: number;

  constructor(
    readings: number,
    readonly devices = DEVICES,
    now = Date.now(),
  ) {
    this.perDevice = Math.max(1, Math.ceil(readings / devices));
    this.total = this.perDevice * devices;
    this.startSecond = Math.floor(now / 1000) - this.perDevice - 60;
  }

  reading(device: number, k: number): Reading {
    return {
      device,
      k,
      time: (this.startSecond + k) * 1000,
      temperature: (200 + ((k + 7 * device) % 400)) / 10,
      battery: (3000 + Math.floor(k / 400)) / 1000,
    };
  }

  /** Whether a stored time (ms) is one of a device's readings' times. */
  isReadingTime(time: number): boolean {
    const second = time / 1000;
    return Number.isInteger(second) && second >= this.startSecond && second < this.startSecond + this.perDevice;
  }
}

/** `001` for 1: device numbers as the pattern flows' id rules want them. */
export const pad3 = (n: number) => String(n).padStart(3, '0');

/** Acknowledged readings, and when the last acknowledgement came. */
export class Acknowledgements {
  readings = 0;
  refusedReadings = 0;
  retries = 0;
  lastAt = 0;
  /** The first few refusals, for the report. */
  readonly refusals: string[] = [];

  ack(readings: number): void {
    this.readings += readings;
    this.lastAt = performance.now();
  }

  refuse(readings: number, why: string): void {
    this.refusedReadings += readings;
    if (this.refusals.length < 5) this.refusals.push(why);
  }
}

/** Stops every sender at a deadline. */
export class Deadline {
  private at: number;

  constructor(ms: number) {
    this.at = performance.now() + ms;
  }

  get passed(): boolean {
    return performance.now() >= this.at;
  }

  get remainingMs(): number {
    return Math.max(0, this.at - performance.now());
  }

  /** Stops the senders now. */
  expire(): void {
    this.at = performance.now();
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Sends messages 0 .. count - 1 in order, at most `window` unacknowledged at once; `send` resolves
 * once its message is acknowledged (or given up). Ends when all are, or at the deadline.
 */
export async function sendWindowed(count: number, window: number, deadline: Deadline, send: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count && !deadline.passed) await send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
}

export interface MqttMessage {
  topic: string;
  body: string;
  readings: number;
}

/**
 * An MQTT device: a persistent session (clean: false) that reconnects after a second, as devices
 * do, so that mqtt.js resends what was not acknowledged. Connecting waits for the broker to
 * listen (a flow starts its broker a moment after it deploys), but a refused CONNACK fails at once.
 */
export class MqttDevice {
  reconnections = 0;

  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, clientId: string, credentials: { username: string; password: string } | undefined, deadline: Deadline): Promise<MqttDevice> {
    const client = mqtt.connect(url, { clientId, ...credentials, clean: false, reconnectPeriod: 1000, connectTimeout: 10_000, keepalive: 60 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${clientId} could not connect to ${url} in time`)), Math.min(30_000, deadline.remainingMs));
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        client.on('error', (err: Error & { code?: unknown }) => {
          // A CONNACK refusal carries its return code; a socket error (not listening yet) is retried.
          if (typeof err.code === 'number') {
            clearTimeout(timer);
            reject(new Error(`${clientId} refused by ${url}: ${err.message}`));
          }
        });
      });
    } catch (err) {
      client.end(true);
      throw err;
    }
    const device = new MqttDevice(client);
    client.on('reconnect', () => device.reconnections++);
    return device;
  }

  /** Publishes every message at QoS 1 with at most `window` awaiting their PUBACK. */
  publishAll(messages: MqttMessage[], window: number, acks: Acknowledgements, deadline: Deadline): Promise<void> {
    return sendWindowed(messages.length, window, deadline, async (i) => {
      const message = messages[i];
      for (;;) {
        try {
          await this.client.publishAsync(message.topic, message.body, { qos: 1 });
          acks.ack(message.readings);
          return;
        } catch (err) {
          // mqtt.js keeps a QoS 1 publish across reconnections; an error here means it gave it up.
          acks.retries++;
          if (deadline.passed) return acks.refuse(message.readings, `publish on ${message.topic}: ${(err as Error).message}`);
          await sleep(1000);
        }
      }
    });
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

interface HttpAnswer {
  status: number;
  retryAfter?: number;
  body: string;
}

/** An HTTP sender with kept-alive connections, at most `concurrency` requests open. */
export class HttpSender {
  private readonly agent: Agent;
  private readonly url: URL;

  constructor(base: string, concurrency: number) {
    this.url = new URL(base);
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  }

  private post(path: string, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: this.url.hostname, port: this.url.port, path, method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }, timeout: 60_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const retryAfter = Number(res.headers['retry-after']);
            resolve({ status: res.statusCode ?? 0, retryAfter: Number.isFinite(retryAfter) ? retryAfter : undefined, body: Buffer.concat(chunks).toString() });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 60 s')));
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * Posts a message until it is taken: signed anew at each attempt (the signature carries the
   * time, and a replayed one is refused), again after a 503 or 429 (waiting its Retry-After, at
   * most 5 s) or a broken connection; any other status is a refusal.
   */
  async deliver(path: string, body: string, readings: number, sign: (body: string) => Record<string, string>, acks: Acknowledgements, deadline: Deadline): Promise<void> {
    for (;;) {
      let waitMs = 1000;
      try {
        const answer = await this.post(path, body, sign(body));
        if (answer.status >= 200 && answer.status < 300) return acks.ack(readings);
        if (answer.status !== 503 && answer.status !== 429) return acks.refuse(readings, `POST ${path}: ${answer.status} ${answer.body.slice(0, 200)}`);
        if (answer.retryAfter !== undefined) waitMs = Math.min(5_000, answer.retryAfter * 1000);
      } catch (err) {
        if (deadline.passed) return acks.refuse(readings, `POST ${path}: ${(err as Error).message}`);
      }
      acks.retries++;
      if (deadline.passed) return acks.refuse(readings, `POST ${path}: not taken before the deadline`);
      await sleep(waitMs);
    }
  }

  close(): void {
    this.agent.destroy();
  }
}
