/**
 * The devices of each pattern, as they talk to its flow: over HTTP with signatures and tokens,
 * over MQTT to the broker that knows them, or as a vendor cloud or partner platform calling back.
 * With bad actors: unsigned, forged, replayed, expired, unknown, oversized, trespassing.
 * Every message sent is recorded with what came back, for the totals and for the tests.
 */
import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { DeviceKeys } from './credentials';
import { DEFAULT_MODEL, DeviceModel, GatewayModel, packReading, Random, type DeviceModelOptions, type Reading } from './devices';
import { deliver, MqttLink, post, type Answer, type Delivery } from './transport';

export const PATTERNS = ['anonymous', 'direct', 'buffered', 'gateway', 'cloudy', 'augmented', 'partners', 'double'] as const;
export type PatternName = (typeof PATTERNS)[number];

export interface Target {
  /** Node-RED's HTTP endpoints. */
  http: string;
  /** The pattern flows' MQTT brokers. */
  brokerHost: string;
  brokerPorts: { buffered: number; gateway: number };
}

export const DEFAULT_TARGET: Target = {
  http: 'http://127.0.0.1:1880',
  brokerHost: '127.0.0.1',
  brokerPorts: { buffered: Number(process.env.IOT_BUFFERED_MQTT_PORT ?? 1885), gateway: Number(process.env.IOT_GATEWAY_MQTT_PORT ?? 1886) },
};

/** One message a simulated device sent, and what became of it. */
export interface Sent {
  pattern: PatternName;
  /** The device, gateway, camera, vendor cloud or partner that sent it. */
  sender: string;
  /** 'reading' and friends for honest traffic; for bad actors, what they tried. */
  kind: string;
  bad: boolean;
  at: number;
  /** Honest readings: device id to its values (one entry per device the message carries). */
  readings?: Array<{ device: string; at: number } & Partial<Reading>>;
  /** What the message was about, when not readings (a button press, an inspection). */
  detail?: Record<string, unknown>;
  /** Acknowledged: a 2xx over HTTP, a PUBACK at MQTT QoS 1 (for bad actors: let in). */
  accepted: boolean;
  /**
   * HTTP status, or MQTT puback, CONNACK or disconnect, with the flow's code when it gave one;
   * 'waiting' while the answer has not come, 'no puback' or 'no answer' when it never came.
   */
  status?: number | string;
  /** HTTP: how many times it was sent (more than once after a 503, a 429 or a lost connection). */
  attempts?: number;
  code?: string;
  /** What the flow answered (record ids, say). */
  answer?: unknown;
}

export interface ScenarioOptions {
  devices: number;
  bad: boolean;
  random: Random;
  keys: DeviceKeys;
  target: Target;
  record(sent: Sent): void;
  log(line: string): void;
  /** Steps at which device i overheats (tests and demos want an alert early). */
  overheatAt?: Record<number, number>;
  /** Steps at which device i goes silent. */
  silentAt?: Record<number, number>;
  /** Aborted when the simulation stops waiting: senders stop trying again. */
  signal: AbortSignal;
  /** Changes to the devices' physics (a test about something else may turn their silences off). */
  model?: Partial<DeviceModelOptions>;
  /**
   * Buttons and cameras act once in this many rounds (1: every round): people press an easy button
   * now and then, and a camera inspects a few times an hour, while sensors report every round.
   */
  occasionalEvery: number;
}

export interface Scenario {
  readonly pattern: PatternName;
  start(): Promise<void>;
  /**
   * One round: every device sends what it has. The round's readings are taken at once (so rounds
   * may overlap); the promise settles once every message of the round has its answer, or none.
   */
  step(index: number): Promise<void>;
  /** The bad actors, after the honest traffic. */
  misbehave(): Promise<void>;
  /** Messages sent again because they were not acknowledged. */
  resent(): number;
  stop(): Promise<void>;
}

const LOCATIONS = ['Lobby', 'Plant 2, line 3', 'Warehouse door', 'Cafeteria', 'Visitor desk'];
const NAMES = ['Jo Rivera', 'Sam Okafor', 'Ana Lima', 'Lee Chen', 'Max Weber'];

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** A partner platform's signature: HMAC of `{timestamp}.{body}`, the time in its own header. */
export function partnerHeaders(keys: DeviceKeys, partner: string, body: string, at = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(at / 1000));
  return { 'x-partner-timestamp': timestamp, 'x-partner-signature': keys.webhook(partner, `${timestamp}.${body}`) };
}

/** The vendor cloud's signature (Cloudy): HMAC of `{timestamp}.{body}` with a `sha256=` prefix. */
export function vendorHeaders(keys: DeviceKeys, body: string, at = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(at / 1000));
  return { 'x-vendor-timestamp': timestamp, 'x-vendor-signature': `sha256=${keys.webhook('vendor-cloud', `${timestamp}.${body}`)}` };
}

/** The vendor cloud's callback for one device message (Sigfox style): its time in seconds, the reading packed. */
export function vendorCallback(device: string, reading: Reading, at: number, sequence: number): string {
  return JSON.stringify({ device, time: Math.floor(at / 1000), data: packReading(reading, sequence), seqNumber: sequence });
}

/** What a scenario has in common: the options, devices made from the seed, recording. */
abstract class BaseScenario implements Scenario {
  abstract readonly pattern: PatternName;
  protected readonly models: DeviceModel[];

  constructor(
    protected readonly o: ScenarioOptions,
    prefix: string,
  ) {
    this.models = Array.from({ length: o.devices }, (_, i) => new DeviceModel(`${prefix}-${pad(i + 1)}`, o.random, { ...DEFAULT_MODEL, ...o.model }));
  }

  protected resentCount = 0;

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  abstract step(index: number): Promise<void>;

  abstract misbehave(): Promise<void>;

  resent(): number {
    return this.resentCount;
  }

  /** Advances every device one step (with the scripted events) and returns the readings of those not silent. */
  protected readingsAt(index: number): Array<{ model: DeviceModel; reading: Reading }> {
    return this.models.flatMap((model, i) => {
      if (this.o.overheatAt?.[i] === index) model.overheat();
      if (this.o.silentAt?.[i] === index) model.goSilent();
      const reading = model.step();
      return reading ? [{ model, reading }] : [];
    });
  }

  /** Records a message as sent, waiting for its answer; settle it when the answer comes. */
  protected begin(sent: Omit<Sent, 'pattern' | 'accepted' | 'status' | 'code' | 'answer'>): Sent {
    const record: Sent = { pattern: this.pattern, ...sent, accepted: false, status: 'waiting' };
    this.o.record(record);
    return record;
  }

  /** An honest HTTP message, sent until it is acknowledged or refused (`request` builds and signs each attempt). */
  protected async sendHttp(path: string, sent: Omit<Sent, 'pattern' | 'accepted' | 'status' | 'code' | 'answer'>, request: () => Promise<{ body: string; headers: Record<string, string> }>): Promise<void> {
    const record = this.begin(sent);
    this.settleHttp(record, await deliver(this.url(path), request, this.o.signal));
  }

  /** A message sent once (a bad actor's), with what came back. */
  protected recordHttp(sent: Omit<Sent, 'pattern' | 'accepted' | 'status' | 'code' | 'answer'>, answer: Answer): void {
    this.settleHttp(this.begin(sent), { answer, attempts: 1 });
  }

  private settleHttp(record: Sent, delivery: Delivery): void {
    record.attempts = delivery.attempts;
    this.resentCount += Math.max(0, delivery.attempts - 1);
    const answer = delivery.answer;
    if (!answer) {
      Object.assign(record, { status: 'no answer', code: delivery.error });
      return;
    }
    const body = answer.body as { error?: string; code?: string } | undefined;
    const accepted = answer.status >= 200 && answer.status < 300;
    const code = accepted ? undefined : (body?.code ?? body?.error ?? (typeof answer.body === 'string' ? answer.body : undefined));
    Object.assign(record, { accepted, status: answer.status, answer: answer.body }, code ? { code: String(code) } : {});
    if (record.bad) this.o.log(`${this.pattern}: bad actor ${record.sender} (${record.kind}): ${answer.status}${accepted ? ' ACCEPTED' : ''}`);
  }

  protected url(path: string): string {
    return `${this.o.target.http}${path}`;
  }
}

// 1 Anonymous: buttons post presses with no credentials ----------------------------------------
class AnonymousScenario extends BaseScenario {
  readonly pattern = 'anonymous';

  constructor(o: ScenarioOptions) {
    super(o, 'button');
  }

  /** One press every few rounds (`occasionalEvery`), the buttons taking turns: people press buttons now and then. */
  async step(index: number): Promise<void> {
    if (index % this.o.occasionalEvery !== 0) return;
    const i = (index / this.o.occasionalEvery) % this.models.length;
    const button = this.models[i].id;
    const lead = this.o.random.chance(0.2);
    const press = {
      kind: lead ? 'lead' : 'case',
      button,
      location: LOCATIONS[i % LOCATIONS.length],
      name: NAMES[index % NAMES.length],
      email: `visitor${index}@example.com`,
      ...(lead ? { company: 'Visiting Co' } : { note: 'the coffee machine is leaking' }),
    };
    const body = JSON.stringify(press);
    await this.sendHttp('/anonymous/button', { sender: button, kind: press.kind, bad: false, at: Date.now(), detail: press }, async () => ({ body, headers: {} }));
  }

  async misbehave(): Promise<void> {
    const press = { kind: 'case', button: 'button-x', location: 'Nowhere', name: 'Flood', email: 'flood@example.com' };
    const oversized = { ...press, note: 'x'.repeat(5000) };
    this.recordHttp({ sender: 'button-x', kind: 'oversized', bad: true, at: Date.now(), detail: oversized }, await post(this.url('/anonymous/button'), JSON.stringify(oversized)));
    this.recordHttp({ sender: 'button-x', kind: 'malformed', bad: true, at: Date.now() }, await post(this.url('/anonymous/button'), '{"kind": "case", "button": '));
    // A flood from one address: the rate limit lets a burst through, then refuses.
    const flood = await Promise.all(Array.from({ length: 20 }, () => post(this.url('/anonymous/button'), JSON.stringify(press))));
    for (const answer of flood) this.recordHttp({ sender: 'button-x', kind: 'flood', bad: true, at: Date.now(), detail: press }, answer);
  }
}

// 2 Direct: devices sign daily reports, by HMAC or JWT -----------------------------------------
class DirectScenario extends BaseScenario {
  readonly pattern = 'direct';

  constructor(o: ScenarioOptions) {
    super(o, 'pump');
  }

  async step(index: number): Promise<void> {
    await Promise.all(
      this.readingsAt(index).map(async ({ model, reading }, i) => {
        const at = Date.now();
        const body = JSON.stringify({ ...reading, reportedAt: new Date(at).toISOString() });
        const sign = async () => (i % 2 === 0 ? this.o.keys.hmacHeaders(model.id, 'POST', '/direct/report', body) : { authorization: `Bearer ${await this.o.keys.jwt(model.id)}` });
        await this.sendHttp('/direct/report', { sender: model.id, kind: i % 2 === 0 ? 'hmac report' : 'jwt report', bad: false, at, readings: [{ device: model.id, at, ...reading }] }, async () => ({ body, headers: await sign() }));
      }),
    );
  }

  async misbehave(): Promise<void> {
    const path = '/direct/report';
    const body = JSON.stringify({ temperature: 99.9, battery: 3.1, reportedAt: new Date().toISOString() });
    const id = this.models[0]?.id ?? 'pump-01';
    const forged = { ...this.o.keys.hmacHeaders(id, 'POST', path, body), 'x-signature': 'ab'.repeat(32) };
    this.recordHttp({ sender: id, kind: 'forged signature', bad: true, at: Date.now() }, await post(this.url(path), body, forged));
    const signed = this.o.keys.hmacHeaders(id, 'POST', path, body);
    const at = Date.now();
    this.recordHttp({ sender: id, kind: 'hmac report (before its replay)', bad: false, at, readings: [{ device: id, at, temperature: 99.9, battery: 3.1 }] }, await post(this.url(path), body, signed));
    this.recordHttp({ sender: id, kind: 'replayed request', bad: true, at: Date.now() }, await post(this.url(path), body, signed));
    this.recordHttp({ sender: id, kind: 'stale timestamp', bad: true, at: Date.now() }, await post(this.url(path), body, this.o.keys.hmacHeaders(id, 'POST', path, body, Date.now() - 3_600_000)));
    this.recordHttp({ sender: id, kind: 'expired token', bad: true, at: Date.now() }, await post(this.url(path), body, { authorization: `Bearer ${await this.o.keys.jwt(id, { issuedAt: Date.now() - 7_200_000, lifetimeSeconds: 600 })}` }));
    this.recordHttp({ sender: id, kind: 'wrong audience', bad: true, at: Date.now() }, await post(this.url(path), body, { authorization: `Bearer ${await this.o.keys.jwt(id, { audience: 'someone-else' })}` }));
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: id, aud: 'iot-patterns', exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`;
    this.recordHttp({ sender: id, kind: 'alg none', bad: true, at: Date.now() }, await post(this.url(path), body, { authorization: `Bearer ${none}` }));
    this.recordHttp({ sender: 'intruder_1', kind: 'unknown device', bad: true, at: Date.now() }, await post(this.url(path), body, this.o.keys.hmacHeaders('intruder_1', 'POST', path, body)));
    const huge = JSON.stringify({ temperature: 20, battery: 3.5, padding: 'x'.repeat(70_000) });
    this.recordHttp({ sender: id, kind: 'oversized', bad: true, at: Date.now() }, await post(this.url(path), huge, this.o.keys.hmacHeaders(id, 'POST', path, huge)));
  }
}

/**
 * MQTT devices: one connection each, to the pattern's broker, with the device's derived API key,
 * kept as devices keep theirs (reconnecting, resending what was not acknowledged). Bad actors try
 * once.
 */
abstract class MqttScenario extends BaseScenario {
  protected links = new Map<string, MqttLink>();

  protected async link(id: string, port: number): Promise<void> {
    this.links.set(id, await MqttLink.open(`mqtt://${this.o.target.brokerHost}:${port}`, { clientId: id, username: id, password: this.o.keys.apiKey(id) }));
  }

  /** A QoS 1 publish of an honest device, recorded as sent and settled by its PUBACK (or none). */
  protected async publish(device: string, topic: string, payload: string, sent: Omit<Sent, 'pattern' | 'accepted' | 'status' | 'code' | 'answer'>): Promise<void> {
    const record = this.begin(sent);
    const acknowledged = await (this.links.get(device) as MqttLink).publish(topic, payload);
    Object.assign(record, { accepted: acknowledged, status: acknowledged ? 'puback' : 'no puback' });
  }

  override resent(): number {
    return [...this.links.values()].reduce((n, link) => n + link.resent, 0);
  }

  /** A connection that gives up at the first refusal: for bad actors. */
  private connect(id: string, password: string, port: number) {
    return mqtt.connectAsync(`mqtt://${this.o.target.brokerHost}:${port}`, { clientId: id, username: id, password, clean: false, reconnectPeriod: 0, connectTimeout: 10_000 });
  }

  /** A connection attempt that should be refused, recorded with what the broker said. */
  protected async refusedConnect(sender: string, kind: string, password: string, port: number): Promise<void> {
    try {
      const client = await this.connect(sender, password, port);
      await client.endAsync();
      this.o.record({ pattern: this.pattern, sender, kind, bad: true, at: Date.now(), accepted: true, status: 'connected' });
      this.o.log(`${this.pattern}: bad actor ${sender} (${kind}): CONNECTED`);
    } catch (err) {
      const code = (err as { code?: number }).code;
      this.o.record({ pattern: this.pattern, sender, kind, bad: true, at: Date.now(), accepted: false, status: `connack ${code ?? '?'}`, code: (err as Error).message });
      this.o.log(`${this.pattern}: bad actor ${sender} (${kind}): refused (${(err as Error).message})`);
    }
  }

  /** A publish on a topic the device may not use: the broker closes the connection. */
  protected async trespass(sender: string, topic: string, port: number): Promise<void> {
    const client = await this.connect(sender, this.o.keys.apiKey(sender), port);
    const closed = new Promise<boolean>((resolve) => {
      client.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 3_000);
    });
    client.publish(topic, JSON.stringify({ temperature: 99, battery: 3 }), { qos: 1 });
    const wasClosed = await closed;
    client.end(true);
    this.o.record({ pattern: this.pattern, sender, kind: `publish on ${topic}`, bad: true, at: Date.now(), accepted: !wasClosed, status: wasClosed ? 'disconnected' : 'still connected' });
    this.o.log(`${this.pattern}: bad actor ${sender} (publish on ${topic}): ${wasClosed ? 'disconnected' : 'NOT DISCONNECTED'}`);
  }

  override async stop(): Promise<void> {
    await Promise.all([...this.links.values()].map((link) => link.close()));
  }
}

// 3 Buffered: devices publish readings over MQTT -------------------------------------------------
class BufferedScenario extends MqttScenario {
  readonly pattern = 'buffered';

  constructor(o: ScenarioOptions) {
    super(o, 'pump');
  }

  private get port(): number {
    return this.o.target.brokerPorts.buffered;
  }

  override async start(): Promise<void> {
    for (const model of this.models) await this.link(model.id, this.port);
  }

  async step(index: number): Promise<void> {
    await Promise.all(
      this.readingsAt(index).map(({ model, reading }) => {
        const at = Date.now();
        return this.publish(model.id, `devices/${model.id}/readings`, JSON.stringify({ ...reading, timestamp: at }), { sender: model.id, kind: 'reading', bad: false, at, readings: [{ device: model.id, at, ...reading }] });
      }),
    );
  }

  async misbehave(): Promise<void> {
    const victim = this.models[0]?.id ?? 'pump-01';
    await this.refusedConnect(victim, 'wrong password', 'not-the-key', this.port);
    await this.refusedConnect('intruder_1', 'unknown device', this.o.keys.apiKey('intruder_1'), this.port);
    const trespasser = this.models[1]?.id ?? 'pump-02';
    await this.trespass(trespasser, `devices/${victim}/readings`, this.port);
  }
}

// 4 Gateway: gateways publish batches from their sensors ----------------------------------------
class GatewayScenario extends MqttScenario {
  readonly pattern = 'gateway';
  private readonly gateways: GatewayModel[];
  private readonly intervalMs: number;

  constructor(o: ScenarioOptions, intervalMs: number) {
    super(o, 'gw');
    this.intervalMs = intervalMs;
    this.gateways = Array.from({ length: o.devices }, (_, i) => new GatewayModel(`gw-${pad(i + 1)}`, 8, o.random, { ...DEFAULT_MODEL, ...o.model }));
  }

  private get port(): number {
    return this.o.target.brokerPorts.gateway;
  }

  override async start(): Promise<void> {
    for (const g of this.gateways) await this.link(g.id, this.port);
  }

  async step(index: number): Promise<void> {
    await Promise.all(
      this.gateways.map((gateway, i) => {
        if (this.o.overheatAt?.[i] === index) gateway.sensors[0].overheat();
        const now = Date.now();
        const batch = gateway.batch(now, this.intervalMs);
        return this.publish(gateway.id, `devices/${gateway.id}/batch`, JSON.stringify({ readings: batch.readings }), {
          sender: gateway.id,
          kind: 'batch',
          bad: false,
          at: now,
          readings: batch.readings.map((r) => ({ device: r.sensor, at: r.timestamp, temperature: r.temperature, battery: r.battery })),
        });
      }),
    );
  }

  async misbehave(): Promise<void> {
    const gateway = this.gateways[0]?.id ?? 'gw-01';
    await this.refusedConnect(gateway, 'wrong password', 'not-the-key', this.port);
    // A batch naming a sensor of another gateway: that reading is refused, the rest go on.
    const at = Date.now();
    const readings = [
      { sensor: `${gateway}:s-01`, timestamp: at, temperature: 21.5, battery: 3.4 },
      { sensor: 'gw-99:s-01', timestamp: at, temperature: 99.9, battery: 3.4 },
    ];
    await this.publish(gateway, `devices/${gateway}/batch`, JSON.stringify({ readings }), { sender: gateway, kind: 'batch with a foreign sensor', bad: true, at, readings: [{ device: `${gateway}:s-01`, at, temperature: 21.5, battery: 3.4 }], detail: { foreign: 'gw-99:s-01' } });
    this.o.log(`gateway: bad actor ${gateway} (batch with the foreign sensor gw-99:s-01): published; the flow must refuse that reading`);
  }
}

// 5 Cloudy: the vendor cloud calls the webhook ----------------------------------------------------
class CloudyScenario extends BaseScenario {
  readonly pattern = 'cloudy';
  private sequence = 0;

  constructor(o: ScenarioOptions) {
    super(o, 'sfx');
  }

  private signed(body: string, at = Date.now()): Record<string, string> {
    return vendorHeaders(this.o.keys, body, at);
  }

  private callback(device: string, reading: Reading, at: number): string {
    return vendorCallback(device, reading, at, ++this.sequence);
  }

  async step(index: number): Promise<void> {
    await Promise.all(
      this.readingsAt(index).map(async ({ model, reading }) => {
        const at = Date.now();
        const body = this.callback(model.id, reading, at);
        // The packed payload carries the battery in 20 mV steps: the flow sees that value.
        const stored = { temperature: reading.temperature, battery: Math.round(reading.battery * 50) / 50 };
        // The vendor names its device by its own name; the flow makes it the vendor's (vendor-cloud:sfx-01).
        await this.sendHttp('/cloudy/callback', { sender: 'vendor-cloud', kind: 'callback', bad: false, at, readings: [{ device: `vendor-cloud:${model.id}`, at: Math.floor(at / 1000) * 1000, ...stored }] }, async () => ({ body, headers: this.signed(body) }));
      }),
    );
  }

  async misbehave(): Promise<void> {
    const body = this.callback('sfx-99', { temperature: 99.9, battery: 3.3 }, Date.now());
    const path = this.url('/cloudy/callback');
    this.recordHttp({ sender: 'vendor-cloud', kind: 'unsigned', bad: true, at: Date.now() }, await post(path, body));
    this.recordHttp({ sender: 'vendor-cloud', kind: 'wrong signature', bad: true, at: Date.now() }, await post(path, body, { ...this.signed(body), 'x-vendor-signature': `sha256=${'00'.repeat(32)}` }));
    const at = Date.now();
    const headers = this.signed(body, at);
    const measuredAt = (JSON.parse(body) as { time: number }).time * 1000;
    this.recordHttp({ sender: 'vendor-cloud', kind: 'callback (before its replay)', bad: false, at, readings: [{ device: 'vendor-cloud:sfx-99', at: measuredAt, temperature: 99.9, battery: 3.3 }] }, await post(path, body, headers));
    this.recordHttp({ sender: 'vendor-cloud', kind: 'replayed callback', bad: true, at: Date.now() }, await post(path, body, headers));
    this.recordHttp({ sender: 'vendor-cloud', kind: 'stale timestamp', bad: true, at: Date.now() }, await post(path, body, this.signed(body, Date.now() - 3_600_000)));
    const garbage = JSON.stringify({ device: 'sfx-98', time: Math.floor(Date.now() / 1000), data: 'zz' });
    this.recordHttp({ sender: 'vendor-cloud', kind: 'undecodable payload', bad: true, at: Date.now() }, await post(path, garbage, this.signed(garbage)));
  }
}

// 6 Direct (Augmented): cameras send inspection photos --------------------------------------------
class AugmentedScenario extends BaseScenario {
  readonly pattern = 'augmented';

  constructor(o: ScenarioOptions) {
    super(o, 'cam');
  }

  /** 16 x 16 RGB pixels: grey concrete, with rust-coloured patches covering `rust` of it. */
  private photo(rust: number): string {
    const pixels = Buffer.alloc(16 * 16 * 3);
    for (let p = 0; p < 256; p++) {
      const rusty = p < Math.round(rust * 256);
      const [r, g, b] = rusty ? [170 + (p % 30), 70 + (p % 20), 40] : [120 + (p % 40), 120 + (p % 40), 125 + (p % 40)];
      pixels.writeUInt8(r, p * 3);
      pixels.writeUInt8(g, p * 3 + 1);
      pixels.writeUInt8(b, p * 3 + 2);
    }
    return pixels.toString('base64');
  }

  /** Every camera inspects once every few rounds (`occasionalEvery`). */
  async step(index: number): Promise<void> {
    if (index % this.o.occasionalEvery !== 0) return;
    await Promise.all(
      this.models.map(async (model, i) => {
        const rust = this.o.overheatAt?.[i] === index || this.o.random.chance(0.3) ? 0.25 + this.o.random.next() * 0.3 : this.o.random.next() * 0.1;
        const at = Date.now();
        const inspection = { inspection: randomUUID(), site: LOCATIONS[i % LOCATIONS.length], takenAt: at, image: this.photo(rust) };
        const body = JSON.stringify(inspection);
        await this.sendHttp('/augmented/inspection', { sender: model.id, kind: 'inspection', bad: false, at, detail: { inspection: inspection.inspection, site: inspection.site, rust: Math.round(rust * 100) } }, async () => ({
          body,
          headers: { authorization: `Bearer ${await this.o.keys.jwt(model.id)}` },
        }));
      }),
    );
  }

  async misbehave(): Promise<void> {
    const id = this.models[0]?.id ?? 'cam-01';
    const body = JSON.stringify({ inspection: randomUUID(), site: 'Nowhere', takenAt: Date.now(), image: this.photo(0.5) });
    const path = this.url('/augmented/inspection');
    this.recordHttp({ sender: id, kind: 'no token', bad: true, at: Date.now() }, await post(path, body));
    this.recordHttp({ sender: id, kind: 'expired token', bad: true, at: Date.now() }, await post(path, body, { authorization: `Bearer ${await this.o.keys.jwt(id, { issuedAt: Date.now() - 7_200_000, lifetimeSeconds: 600 })}` }));
    const wrongKey = new DeviceKeys(Buffer.alloc(32, 7));
    this.recordHttp({ sender: id, kind: 'token signed with another key', bad: true, at: Date.now() }, await post(path, body, { authorization: `Bearer ${await wrongKey.jwt(id)}` }));
  }
}

// 7 Buffered by Partners: a partner platform reports its devices ----------------------------------
class PartnersScenario extends BaseScenario {
  readonly pattern = 'partners';
  private readonly raised = new Set<string>();

  constructor(o: ScenarioOptions) {
    super(o, 'fc');
  }

  async step(index: number): Promise<void> {
    const devices = this.readingsAt(index).map(({ model, reading }) => {
      const hot = reading.temperature > 85;
      const alerts = [];
      if (hot && !this.raised.has(model.id)) {
        this.raised.add(model.id);
        alerts.push({ id: `${model.id}-overheat`, reading: 'temperature', severity: 'major', state: 'raised', value: reading.temperature, threshold: 85, text: 'temperature above 85' });
      } else if (!hot && reading.temperature < 80 && this.raised.delete(model.id)) {
        alerts.push({ id: `${model.id}-overheat`, reading: 'temperature', severity: 'major', state: 'cleared', value: reading.temperature, threshold: 80, text: 'temperature back below 80' });
      }
      return { id: model.id, status: hot ? 'alarm' : 'ok', temperature: { min: reading.temperature, max: reading.temperature, mean: reading.temperature, last: reading.temperature }, battery: reading.battery, alerts };
    });
    const at = Date.now();
    const body = JSON.stringify({ partner: 'fleetco', sentAt: new Date(at).toISOString(), devices });
    await this.sendHttp('/partners/callback', { sender: 'partner-fleetco', kind: 'report', bad: false, at, detail: { devices } }, async () => ({ body, headers: partnerHeaders(this.o.keys, 'partner-fleetco', body) }));
  }

  async misbehave(): Promise<void> {
    const body = JSON.stringify({ partner: 'fleetco', sentAt: new Date().toISOString(), devices: [{ id: 'fc-99', status: 'alarm', battery: 3, alerts: [{ id: 'fake', reading: 'temperature', severity: 'critical', text: 'fake alarm' }] }] });
    const path = this.url('/partners/callback');
    this.recordHttp({ sender: 'partner-fleetco', kind: 'unsigned', bad: true, at: Date.now() }, await post(path, body));
    this.recordHttp({ sender: 'partner-fleetco', kind: 'wrong signature', bad: true, at: Date.now() }, await post(path, body, { ...partnerHeaders(this.o.keys, 'partner-fleetco', body), 'x-partner-signature': '11'.repeat(32) }));
  }
}

// 8 Double Buffered: a partner forwards its devices' readings in batches ---------------------------
class DoubleScenario extends BaseScenario {
  readonly pattern = 'double';

  constructor(o: ScenarioOptions) {
    super(o, 'rc');
  }

  async step(index: number): Promise<void> {
    const at = Date.now();
    const readings = this.readingsAt(index).map(({ model, reading }) => ({ device: model.id, time: at, ...reading }));
    if (readings.length === 0) return;
    const body = JSON.stringify({ partner: 'relayco', readings });
    // The partner names its devices by its own names; the flow makes them the partner's (partner-relayco:rc-01).
    await this.sendHttp('/double/readings', { sender: 'partner-relayco', kind: 'batch', bad: false, at, readings: readings.map((r) => ({ device: `partner-relayco:${r.device}`, at, temperature: r.temperature, battery: r.battery })) }, async () => ({
      body,
      headers: partnerHeaders(this.o.keys, 'partner-relayco', body),
    }));
  }

  async misbehave(): Promise<void> {
    const time = Date.now();
    const body = JSON.stringify({ partner: 'relayco', readings: [{ device: 'rc-99', time, temperature: 99.9, battery: 3 }] });
    const path = this.url('/double/readings');
    this.recordHttp({ sender: 'partner-relayco', kind: 'wrong signature', bad: true, at: Date.now() }, await post(path, body, { ...partnerHeaders(this.o.keys, 'partner-relayco', body), 'x-partner-signature': '22'.repeat(32) }));
    const headers = partnerHeaders(this.o.keys, 'partner-relayco', body);
    const first = await post(path, body, headers);
    this.recordHttp({ sender: 'partner-relayco', kind: 'batch (before its replay)', bad: false, at: time, readings: [{ device: 'partner-relayco:rc-99', at: time, temperature: 99.9, battery: 3 }] }, first);
    this.recordHttp({ sender: 'partner-relayco', kind: 'replayed batch', bad: true, at: Date.now() }, await post(path, body, headers));
  }
}

export function scenarioFor(pattern: PatternName, options: ScenarioOptions, intervalMs: number): Scenario {
  switch (pattern) {
    case 'anonymous':
      return new AnonymousScenario(options);
    case 'direct':
      return new DirectScenario(options);
    case 'buffered':
      return new BufferedScenario(options);
    case 'gateway':
      return new GatewayScenario(options, intervalMs);
    case 'cloudy':
      return new CloudyScenario(options);
    case 'augmented':
      return new AugmentedScenario(options);
    case 'partners':
      return new PartnersScenario(options);
    case 'double':
      return new DoubleScenario(options);
  }
}
