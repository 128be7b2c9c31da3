/**
 * Outside tests of the front doors (iot-mqtt-broker acknowledging once stored, iot-device-auth
 * answering HTTP once stored), written from the README and the nodes' help only:
 *
 * - devices as the README tells integrators to provision them: keys derived from a master secret
 *   (HMAC-SHA256(master, id); the API key is that key in base64url), HMAC-signed HTTP requests and
 *   signed webhooks computed here with node:crypto from the documented string to sign, never with
 *   the pack's own signing code;
 * - `MqttDevice`: mqtt.js at QoS 1 with reconnectPeriod > 0, as devices run it: a reading counts
 *   as acknowledged only when its PUBACK came (the publish callback without error);
 * - `HttpSender`: fetch, re-signing every attempt, retrying anything but a 2xx (after Retry-After
 *   when given), a reading acknowledged only on a 2xx;
 * - `frontDoorFlow`: the flows the README describes (broker, once stored -> device-auth, broker
 *   identity -> iot-buffer -> iot-timeseries-out; http in -> device-auth, answering once stored ->
 *   iot-buffer -> iot-timeseries-out), at the nodes' defaults except what the README says a user
 *   must set, with recorders for statuses, broker events, refusals, Catch and Complete nodes;
 * - a victoria-metrics without deduplication, so that a reading stored twice shows as two points
 *   and duplicates can be counted exactly.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { victoriaMetricsCommand } from '../../scripts/time-series-servers';
import type { NodeRedProcess } from './node-red-process';
import { HOST, ManagedServer } from './services';
import { SYSTEM_PACKAGES } from './system-packages';
import { eventually, sleep } from './wait';

export type FlowNode = { id: string; type: string; z?: string; [property: string]: unknown };

/** At least 32 bytes, as the registry's help asks; text is taken as UTF-8. */
export const MASTER_SECRET = `front-doors-master-${randomBytes(24).toString('hex')}`;

/** The registry's derived key of a device: HMAC-SHA256(master secret, device id). */
export function derivedKey(id: string, master = MASTER_SECRET): Buffer {
  return createHmac('sha256', Buffer.from(master, 'utf8')).update(id).digest();
}

/** "its API key is the key in base64url" */
export function apiKey(id: string): string {
  return derivedKey(id).toString('base64url');
}

/** README: HMAC-SHA256 over `IOT-HMAC-SHA256\n<id>\n<timestamp>\n<nonce>\n<METHOD path>\n<SHA-256 of the body bytes>`. */
export function hmacHeaders(id: string, scope: string, body: string): Record<string, string> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(12).toString('hex');
  const digest = createHash('sha256').update(body).digest('hex');
  const signature = createHmac('sha256', derivedKey(id)).update(`IOT-HMAC-SHA256\n${id}\n${timestamp}\n${nonce}\n${scope}\n${digest}`).digest('hex');
  return { 'x-device-id': id, 'x-timestamp': timestamp, 'x-nonce': nonce, 'x-signature': signature };
}

/** A vendor cloud's signed webhook: `sha256=` + hex HMAC-SHA256 of `{timestamp}.{body}` with the account's key. */
export function webhookHeaders(account: string, body: string): Record<string, string> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = createHmac('sha256', derivedKey(account)).update(`${timestamp}.${body}`).digest('hex');
  return { 'x-vendor-timestamp': timestamp, 'x-vendor-signature': `sha256=${signature}` };
}

/** A reading nested 3,000 levels deep: 6 KB. */
export const DEEP_READING = `{"temperature":21,"trace":${'['.repeat(3000)}1${']'.repeat(3000)}}`;

// ---------------------------------------------------------------------------------------------
// The flows

export interface FrontDoorOptions {
  /** Node ids and the tab are `${prefix}.…`. */
  prefix: string;
  /** The broker's TCP port, as an environment variable name (the same port across restarts). */
  mqttPortEnv?: string;
  /** iot-mqtt-broker settings beyond the defaults (the test about a setting). */
  broker?: Record<string, unknown>;
  /** The http in path; no HTTP door without it. */
  httpPath?: string;
  /** iot-device-auth settings of the HTTP door beyond HMAC + answering once stored. */
  httpAuth?: Record<string, unknown>;
  /** iot-device-auth settings of the MQTT door beyond broker identity. */
  mqttAuth?: Record<string, unknown>;
  /** iot-buffer settings beyond "Redeliver after" 330 s (the same for both doors, or per door); `false`: no buffer at all. */
  buffer?: Record<string, unknown> | ((door: Door) => Record<string, unknown>) | false;
  /** http in parses the body (its default) instead of "Do not parse" (what signatures need). */
  httpParsesBody?: boolean;
  /** A function node between device-auth and the buffer that throws for readings with `fail`. */
  decoder?: boolean;
  /** Catch and Complete nodes scoped to every node, and "Catch errors" ticked wherever offered. */
  catchEverything?: boolean;
  /** The store's URL, as an environment variable (INFLUX_URL). */
  storeEnv?: string;
  /** Serve GET /_recorded from this tab (one tab per Node-RED may: the recorders of every tab share it). */
  recordedEndpoint?: boolean;
  /** Record what leaves device-auth's first output: device, seq, msg.timestamp. */
  tapAccepted?: boolean;
}

export type Door = 'mqtt' | 'http';

const RECORD = (list: string, entry: string) =>
  [`const list = global.get(${JSON.stringify(list)}) || [];`, `list.push(${entry});`, `global.set(${JSON.stringify(list)}, list);`, 'return null;'].join('\n');

/** What a recorder keeps of a refused message: its code and device, never the (possibly poisonous) payload. */
const REFUSAL = '{ at: Date.now(), code: msg.error && msg.error.code, statusCode: msg.statusCode, device: msg.device && msg.device.id, topic: msg.topic, hasRes: msg.res !== undefined }';

/**
 * The README's two front doors into a durable queue and the time-series store, plus recorders
 * answering GET /_recorded. Everything not named in the options is the nodes' default.
 */
export function frontDoorFlow(options: FrontDoorOptions): FlowNode[] {
  const p = options.prefix;
  const z = `${p}.tab`;
  const catchErrors = options.catchEverything ? { catchErrors: true } : {};
  const nodes: FlowNode[] = [
    { id: z, type: 'tab', label: `front doors ${p}` },
    {
      id: `${p}.registry`,
      type: 'iot-device-registry',
      name: 'derived device keys',
      source: 'derived',
      masterSource: 'env',
      masterEnv: 'IOT_DEVICE_MASTER_SECRET',
      derivedMethods: ['apikey', 'hmac', 'sas', 'webhook'],
    },
    { id: `${p}.influx`, type: 'iot-influxdb', name: 'store', url: `\${${options.storeEnv ?? 'INFLUX_URL'}}`, version: 'v1', database: 'iot' },
  ];
  const recorders: FlowNode[] = [];
  const recorder = (id: string, list: string, entry = REFUSAL) => recorders.push({ id: `${p}.${id}`, type: 'function', z, name: `record ${list}`, func: RECORD(list, entry), outputs: 1, wires: [] });
  recorder('rec-events', 'events', '{ at: Date.now(), topic: msg.topic, payload: msg.payload }');
  recorder('rec-broker-refused', 'brokerRefused');
  recorder('rec-auth-refused', 'authRefused');
  recorder('rec-buffer-refused', 'bufferRefused');
  recorder('rec-dead', 'dead', '{ at: Date.now(), reason: msg.deadLetter && msg.deadLetter.reason }');
  recorder('rec-store-failed', 'storeFailed');
  recorder('rec-caught', 'caught', '{ at: Date.now(), source: msg.error && msg.error.source && msg.error.source.id, message: msg.error && String(msg.error.message).slice(0, 200), code: msg.error && msg.error.code }');
  recorder('rec-completed', 'completed', '{ at: Date.now(), source: msg.complete && msg.complete.source && msg.complete.source.id }');
  recorder('rec-accepted', 'accepted', '{ at: Date.now(), device: msg.device && msg.device.id, seq: msg.payload && msg.payload.seq, timestamp: msg.timestamp }');

  const bufferFor = (door: Door, settings: Record<string, unknown>): FlowNode => ({
    id: `${p}.${door}-buffer`,
    type: 'iot-buffer',
    z,
    name: `${door} queue`,
    // README: "Set the buffer's Redeliver after longer than give up after (the pattern flows use 330 s against 300 s)".
    ackTimeout: '330',
    ...catchErrors,
    ...settings,
    wires: [[`${p}.${door}-store`], [`${p}.rec-dead`], [], [`${p}.rec-buffer-refused`]],
  });
  const storeFor = (door: string): FlowNode => ({
    id: `${p}.${door}-store`,
    type: 'iot-timeseries-out',
    z,
    name: `${door} readings`,
    store: `${p}.influx`,
    ...catchErrors,
    wires: [[], [`${p}.rec-store-failed`]],
  });
  const afterAuth = (door: string) => {
    if (options.decoder) return `${p}.${door}-decode`;
    return options.buffer === false ? `${p}.${door}-nowhere` : `${p}.${door}-buffer`;
  };
  const tail = (door: Door, authId: string): FlowNode[] => {
    const out: FlowNode[] = [];
    const next = options.buffer === false ? `${p}.${door}-nowhere` : `${p}.${door}-buffer`;
    if (options.decoder) {
      out.push(
        { id: `${p}.${door}-decode`, type: 'function', z, name: 'decode', func: 'if (msg.payload && msg.payload.fail) { if (msg.payload.fail === "final") msg.retry = false; throw new Error("cannot decode " + msg.payload.fail); }\nreturn msg;', outputs: 1, wires: [[next]] },
        // README: a node between device-auth and the buffer that fails settles the delivery by a Catch node wired back into its source.
        { id: `${p}.${door}-decode-failed`, type: 'catch', z, name: 'decoder failed', scope: [`${p}.${door}-decode`], uncaught: false, wires: [[authId === `${p}.mqtt-auth` ? `${p}.broker` : authId]] },
      );
    }
    if (options.buffer === false) out.push({ id: next, type: 'function', z, name: 'no buffer', func: 'return null;', outputs: 1, wires: [] });
    else out.push(bufferFor(door, typeof options.buffer === 'function' ? options.buffer(door) : (options.buffer ?? {})), storeFor(door));
    return out;
  };

  const tap = options.tapAccepted ? [`${p}.rec-accepted`] : [];
  if (options.mqttPortEnv) {
    nodes.push(
      {
        id: `${p}.broker`,
        type: 'iot-mqtt-broker',
        z,
        name: 'devices',
        registry: `${p}.registry`,
        host: '127.0.0.1',
        port: `\${${options.mqttPortEnv}}`,
        acknowledge: 'stored',
        ...catchErrors,
        ...options.broker,
        wires: [[`${p}.mqtt-auth`], [`${p}.rec-events`], [`${p}.rec-broker-refused`]],
      },
      { id: `${p}.mqtt-auth`, type: 'iot-device-auth', z, name: 'who published', registry: `${p}.registry`, method: 'broker', ...catchErrors, ...options.mqttAuth, wires: [[afterAuth('mqtt'), ...tap], [`${p}.rec-auth-refused`]] },
      ...tail('mqtt', `${p}.mqtt-auth`),
    );
  }
  if (options.httpPath) {
    nodes.push(
      { id: `${p}.http-in`, type: 'http in', z, name: `POST ${options.httpPath}`, url: options.httpPath, method: 'post', upload: false, skipBodyParsing: !options.httpParsesBody, wires: [[`${p}.http-auth`]] },
      { id: `${p}.http-auth`, type: 'iot-device-auth', z, name: 'who posted', registry: `${p}.registry`, method: 'hmac', answer: 'stored', ...catchErrors, ...options.httpAuth, wires: [[afterAuth('http'), ...tap], [`${p}.rec-auth-refused`]] },
      ...tail('http', `${p}.http-auth`),
    );
  }
  // Every node's status as the editor shows it, and its history.
  nodes.push({
    id: `${p}.statuses`,
    type: 'status',
    z,
    name: 'every status',
    scope: null,
    wires: [[`${p}.rec-status`]],
  });
  recorders.push({
    id: `${p}.rec-status`,
    type: 'function',
    z,
    name: 'record statuses',
    func: [
      'const all = global.get("statuses") || {};',
      'const id = msg.status.source.id;',
      'const entry = { fill: msg.status.fill, shape: msg.status.shape, text: msg.status.text, at: Date.now() };',
      'all[id] = all[id] || [];',
      'all[id].push(entry);',
      'if (all[id].length > 200) all[id].shift();',
      'global.set("statuses", all);',
      'return null;',
    ].join('\n'),
    outputs: 1,
    wires: [],
  });
  if (options.catchEverything) {
    const everyNode = nodes.filter((n) => n.z === z && !['tab', 'catch', 'status', 'complete'].includes(n.type)).map((n) => n.id);
    nodes.push(
      { id: `${p}.catch-all`, type: 'catch', z, name: 'every error', scope: null, uncaught: false, wires: [[`${p}.rec-caught`]] },
      { id: `${p}.complete-all`, type: 'complete', z, name: 'every completion', scope: everyNode, uncaught: false, wires: [[`${p}.rec-completed`]] },
    );
  }
  nodes.push(...recorders);
  if (options.recordedEndpoint === false) return nodes;
  nodes.push(
    { id: `${p}.recorded-in`, type: 'http in', z, name: 'GET /_recorded', url: '/_recorded', method: 'get', upload: false, wires: [[`${p}.recorded`]] },
    {
      id: `${p}.recorded`,
      type: 'function',
      z,
      name: 'recorded',
      func: 'const names = ["events", "brokerRefused", "authRefused", "bufferRefused", "dead", "storeFailed", "caught", "completed", "accepted", "statuses"];\nmsg.payload = {};\nfor (const n of names) msg.payload[n] = global.get(n) || (n === "statuses" ? {} : []);\nreturn msg;',
      outputs: 1,
      wires: [[`${p}.recorded-out`]],
    },
    { id: `${p}.recorded-out`, type: 'http response', z, name: '', statusCode: '', headers: {}, wires: [] },
  );
  return nodes;
}

export interface Recorded {
  events: Array<{ at: number; topic: string; payload: Record<string, unknown> }>;
  brokerRefused: Refusal[];
  authRefused: Refusal[];
  bufferRefused: Refusal[];
  dead: Array<{ at: number; reason: unknown }>;
  storeFailed: Refusal[];
  caught: Array<{ at: number; source: string; message: string; code?: string }>;
  completed: Array<{ at: number; source: string }>;
  accepted: Array<{ at: number; device?: string; seq?: number; timestamp?: number }>;
  statuses: Record<string, Array<{ fill?: string; shape?: string; text?: string; at: number }>>;
}
export interface Refusal {
  at: number;
  code?: string;
  statusCode?: number;
  device?: string;
  topic?: string;
  hasRes: boolean;
}

export async function recorded(base: string): Promise<Recorded> {
  const response = await fetch(`${base}/_recorded`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`GET /_recorded: ${response.status}`);
  return (await response.json()) as Recorded;
}

/** The latest status text of a node, as the editor shows it under the node. */
export function lastStatus(r: Recorded, id: string): { fill?: string; text?: string } | undefined {
  const list = r.statuses[id];
  return list?.[list.length - 1];
}

// ---------------------------------------------------------------------------------------------
// The store

/** victoria-metrics as the README requires it except deduplication: a point stored twice stays two points. */
export function startCountingVictoriaMetrics(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'victoria-metrics',
    pkg: SYSTEM_PACKAGES.victoriaMetrics,
    command: (dataDir, port) => {
      const command = victoriaMetricsCommand(dataDir, HOST, port);
      return { ...command, args: command.args.filter((a) => !a.startsWith('-dedup')) };
    },
    url: (port) => `http://${HOST}:${port}`,
  });
}

export interface StoredPoint {
  device: string;
  value: number;
  time: number;
}

/** Every stored point of one field of the `readings` measurement (read back with /api/v1/export). */
export async function storedPoints(store: { url: string }, field: string): Promise<StoredPoint[]> {
  await fetch(`${store.url}/internal/force_flush`);
  const text = await fetch(`${store.url}/api/v1/export?match[]=${encodeURIComponent(`readings_${field}`)}`).then((r) => r.text());
  const points: StoredPoint[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const series = JSON.parse(line) as { metric: Record<string, string>; values: number[]; timestamps: number[] };
    series.values.forEach((value, i) => points.push({ device: series.metric.device, value, time: series.timestamps[i] }));
  }
  return points;
}

/** How often each (device, seq) was stored. */
export function countBySeq(points: StoredPoint[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const p of points) counts.set(`${p.device}#${p.value}`, (counts.get(`${p.device}#${p.value}`) ?? 0) + 1);
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Devices and senders

export interface Reading {
  seq: number;
  temperature: number;
  timestamp?: number;
  [extra: string]: unknown;
}

/**
 * An MQTT device at QoS 1: mqtt.js with reconnectPeriod > 0, so it resends every publish that had
 * no PUBACK after each reconnect. `acked` holds the readings whose PUBACK came.
 */
export class MqttDevice {
  readonly client: MqttClient;
  readonly acked = new Set<number>();
  /** The last error mqtt.js gave for a reading. */
  readonly failed = new Map<number, string>();
  readonly sentAt = new Map<number, number>();
  /** When each reading's PUBACK came. */
  readonly ackedAt = new Map<number, number>();
  sent = 0;
  /** Publishes mqtt.js failed (and the device published again). */
  failures = 0;
  connects = 0;
  closes = 0;
  /** Called synchronously as each PUBACK arrives (to kill Node-RED right then). */
  onAck?: (device: MqttDevice, seq: number) => void;

  constructor(
    readonly id: string,
    port: number,
    options: { clean?: boolean; reconnectPeriod?: number; password?: string } = {},
  ) {
    this.client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: id,
      username: id,
      password: options.password ?? apiKey(id),
      clean: options.clean ?? true,
      reconnectPeriod: options.reconnectPeriod ?? 1_000,
      connectTimeout: 10_000,
    });
    this.client.on('connect', () => this.connects++);
    this.client.on('close', () => this.closes++);
    // A device logs and goes on; an unhandled 'error' would end the test process.
    this.client.on('error', () => undefined);
  }

  get unacked(): number {
    return this.sent - this.acked.size;
  }

  /**
   * Publishes one reading at QoS 1 (queued by mqtt.js while offline). A publish that mqtt.js
   * fails ("Connection closed": one made while it was replaying its store when the connection
   * dropped again) is published again, as a device that wants its reading delivered does.
   */
  publish(reading: Reading, topic = `devices/${this.id}/telemetry`, raw?: string): void {
    this.sent++;
    this.sentAt.set(reading.seq, Date.now());
    this.attempt(reading, topic, raw);
  }

  private attempt(reading: Reading, topic: string, raw: string | undefined): void {
    this.client.publish(topic, raw ?? JSON.stringify(reading), { qos: 1 }, (err) => {
      if (err) {
        this.failed.set(reading.seq, err.message);
        this.failures++;
        if (!this.client.disconnecting) setTimeout(() => this.attempt(reading, topic, raw), 100);
        return;
      }
      this.acked.add(reading.seq);
      this.ackedAt.set(reading.seq, Date.now());
      this.onAck?.(this, reading.seq);
    });
  }

  async end(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

/**
 * An HTTP sender (a device posting readings, HMAC-signed, or a vendor cloud's signed webhook):
 * each reading is posted until it gets a 2xx, signed afresh each time; after a non-2xx it waits
 * Retry-After (else 1 s), after a lost connection 1 s. At most `concurrency` posts at a time.
 */
export class HttpSender {
  readonly acked = new Set<number>();
  readonly ackedAt = new Map<number, number>();
  readonly sentAt = new Map<number, number>();
  /** Answers other than 2xx, by status (0: no answer). */
  readonly answers = new Map<number, number>();
  /** 503s that came without Retry-After. */
  noRetryAfter = 0;
  inFlight = 0;
  private readonly waiting: Reading[] = [];
  private active = 0;
  stopped = false;
  onAck?: (sender: HttpSender, seq: number) => void;

  constructor(
    readonly id: string,
    private readonly url: () => string,
    private readonly sign: (body: string) => Record<string, string>,
    private readonly concurrency = 4,
  ) {}

  get pending(): number {
    return this.waiting.length + this.active;
  }

  send(reading: Reading): void {
    this.sentAt.set(reading.seq, Date.now());
    this.waiting.push(reading);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.active < this.concurrency && this.waiting.length > 0) {
      const reading = this.waiting.shift() as Reading;
      this.active++;
      void this.deliver(reading).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async deliver(reading: Reading): Promise<void> {
    const body = JSON.stringify(reading);
    while (!this.stopped) {
      let status = 0;
      let retryAfter: string | null = null;
      this.inFlight++;
      try {
        const response = await fetch(this.url(), {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...this.sign(body) },
          body,
          signal: AbortSignal.timeout(45_000),
        });
        status = response.status;
        retryAfter = response.headers.get('retry-after');
        await response.arrayBuffer();
      } catch {
        status = 0;
      } finally {
        this.inFlight--;
      }
      if (status >= 200 && status < 300) {
        this.acked.add(reading.seq);
        this.ackedAt.set(reading.seq, Date.now());
        this.onAck?.(this, reading.seq);
        return;
      }
      this.answers.set(status, (this.answers.get(status) ?? 0) + 1);
      if (status === 503 && retryAfter === null) this.noRetryAfter++;
      const seconds = Number(retryAfter);
      await sleep(retryAfter !== null && Number.isFinite(seconds) ? Math.min(seconds, 5) * 1000 : 1_000);
    }
  }

  /** Resolves once every reading handed to send() got its 2xx. */
  async drained(timeoutMs: number): Promise<void> {
    await eventually(`sender ${this.id}: every reading answered 2xx (${this.pending} pending)`, () => (this.pending === 0 ? true : undefined), timeoutMs, 200);
  }
}

/** One POST, for tests that look at a single answer. */
export async function post(url: string, body: string, headers: Record<string, string>, timeoutMs = 45_000): Promise<{ status: number; headers: Headers; text: string; ms: number }> {
  const started = Date.now();
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, headers: response.headers, text: await response.text(), ms: Date.now() - started };
}

/** Node-RED still running: its process has not exited. */
export function alive(node: NodeRedProcess): boolean {
  return node.child.exitCode === null && node.child.signalCode === null;
}

/** Lines of Node-RED's output that say something went unhandled. */
export function unhandledLines(output: string): string[] {
  return output.split('\n').filter((l) => /unhandled|uncaught|Maximum call stack|RangeError|FATAL|heap out of memory/i.test(l));
}
