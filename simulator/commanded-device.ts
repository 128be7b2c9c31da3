/**
 * A simulated MQTT device that takes commands, as iot-command sends them (flows/commands-mqtt.json):
 * it subscribes to `devices/{id}/commands`, answers on `devices/{id}/replies` with
 * `{ id, status, result?, reason? }`, and executes for real:
 * - `set_interval { seconds }`: reports every that many seconds from then on;
 * - `reboot`: disconnects, stays away a while, reconnects (its persistent session kept), then answers;
 * - `set_threshold { temperature }`: readings at or above it carry `alarm: true`;
 * - `light { on?, colour? }`: switches its light and reports the new state on `devices/{id}/state`.
 * It executes an id once (a repeat is answered done without executing it again: the answer may
 * have been lost), never after its `expiresAt` (answered expired), and fails names it does not know.
 */
import { DEFAULT_MODEL, DeviceModel, Random, type DeviceModelOptions, type Reading } from './devices';
import { MqttLink } from './transport';

/** What a device receives (iot-command's WireCommand, as the device reads it). */
export interface ReceivedCommand {
  id: string;
  name: string;
  args?: unknown;
  expiresAt?: string;
}

export interface CommandReply {
  id: string;
  status: 'done' | 'failed' | 'expired';
  result?: unknown;
  reason?: string;
}

export const COMMAND_NAMES = ['set_interval', 'reboot', 'set_threshold', 'light'] as const;
type CommandName = (typeof COMMAND_NAMES)[number];

/** The shortest reporting interval a device accepts (s). */
const MIN_INTERVAL_S = 0.1;

export interface LightState {
  on: boolean;
  colour: string;
}

/** What commands change on a device. */
export interface DeviceSettings {
  intervalMs: number;
  /** Readings at or above it (°C) are flagged as alarms; undefined: none. */
  threshold?: number;
  light: LightState;
}

/** What to do with a received command: execute it, or answer at once without executing it. */
export type Decision = { execute: CommandName } | { answer: CommandReply };

/**
 * Decides about a command (pure): a repeat of an executed id is answered done without executing
 * it, a command past its expiresAt expired, an unknown name or bad arguments failed.
 */
export function decide(command: ReceivedCommand, executed: ReadonlySet<string>, now: number): Decision {
  if (executed.has(command.id)) return { answer: { id: command.id, status: 'done', result: 'executed before' } };
  if (command.expiresAt !== undefined && !(Date.parse(command.expiresAt) > now)) return { answer: { id: command.id, status: 'expired', reason: 'came after its expiry' } };
  if (!(COMMAND_NAMES as readonly string[]).includes(command.name)) return { answer: { id: command.id, status: 'failed', reason: `unknown command ${command.name} (known: ${COMMAND_NAMES.join(', ')})` } };
  const problem = argumentProblem(command.name as CommandName, command.args);
  if (problem) return { answer: { id: command.id, status: 'failed', reason: problem } };
  return { execute: command.name as CommandName };
}

function argumentProblem(name: CommandName, args: unknown): string | undefined {
  const fields = (args ?? {}) as Record<string, unknown>;
  if (name === 'set_interval' && !(typeof fields.seconds === 'number' && fields.seconds >= MIN_INTERVAL_S)) return `set_interval needs { seconds } of at least ${MIN_INTERVAL_S}`;
  if (name === 'set_threshold' && !(typeof fields.temperature === 'number' && Number.isFinite(fields.temperature))) return 'set_threshold needs { temperature } in °C';
  if (name === 'light' && ((fields.on !== undefined && typeof fields.on !== 'boolean') || (fields.colour !== undefined && typeof fields.colour !== 'string'))) return 'light takes { on: true|false, colour: "name or #rrggbb" }';
  return undefined;
}

/** A reading the broker acknowledged (PUBACK), with when it was sent. */
export interface Reported extends Reading {
  at: number;
  alarm?: boolean;
}

export interface CommandedDeviceOptions {
  id: string;
  /** mqtt://host:port of the commands broker. */
  url: string;
  apiKey: string;
  /** Reporting interval until a set_interval says otherwise. */
  intervalMs: number;
  random: Random;
  model?: Partial<DeviceModelOptions>;
  /** How long a reboot keeps the device away (default 2 s). */
  rebootMs?: number;
  log?: (line: string) => void;
}

export class CommandedDevice {
  readonly settings: DeviceSettings;
  /** Readings acknowledged by the broker, oldest first. */
  readonly reported: Reported[] = [];
  /** Command ids executed, in order: a device's memory of them survives its reboots. */
  readonly executed: string[] = [];
  /** Times it was rebooted by a command. */
  reboots = 0;
  private readonly executedIds = new Set<string>();
  private readonly model: DeviceModel;
  private link: MqttLink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Commands are executed one at a time, in the order they came. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: CommandedDeviceOptions) {
    this.settings = { intervalMs: o.intervalMs, light: { on: false, colour: 'white' } };
    this.model = new DeviceModel(o.id, o.random, { ...DEFAULT_MODEL, ...o.model });
  }

  get id(): string {
    return this.o.id;
  }

  /** Connects, subscribes to its commands and starts reporting. */
  async start(): Promise<void> {
    await this.connect();
    this.schedule();
  }

  /** Closed first, then the commands under way settled: an answer waiting for a PUBACK that never comes does not hold the stop. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const link = this.link;
    await link?.close();
    await this.queue;
    // A reboot under way may have connected again meanwhile.
    if (this.link !== link) await this.link?.close();
  }

  private async connect(): Promise<void> {
    const id = this.o.id;
    this.link = await MqttLink.open(this.o.url, { clientId: id, username: id, password: this.o.apiKey }, (topic, payload) => this.received(topic, payload));
    await this.link.client.subscribeAsync(`devices/${id}/commands`, { qos: 1 });
  }

  /** The next reading after the current interval (a new interval counts from the reading before). */
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.schedule();
      void this.report();
    }, this.settings.intervalMs);
  }

  private async report(): Promise<void> {
    const link = this.link;
    const reading = this.model.step();
    if (!link || !reading) return;
    const at = Date.now();
    const alarm = this.settings.threshold !== undefined && reading.temperature >= this.settings.threshold;
    const values: Reported = { ...reading, at, ...(alarm ? { alarm } : {}) };
    if (await link.publish(`devices/${this.o.id}/readings`, JSON.stringify({ ...reading, timestamp: at, ...(alarm ? { alarm } : {}) }))) this.reported.push(values);
  }

  private received(topic: string, payload: Buffer): void {
    if (topic !== `devices/${this.o.id}/commands`) return;
    let command: ReceivedCommand;
    try {
      command = JSON.parse(payload.toString()) as ReceivedCommand;
    } catch {
      this.o.log?.(`${this.o.id}: a command that is not JSON, ignored`);
      return;
    }
    if (typeof command?.id !== 'string' || typeof command.name !== 'string') return;
    this.queue = this.queue.then(() => this.take(command)).catch((err: Error) => this.o.log?.(`${this.o.id}: ${err.message}`));
  }

  private async take(command: ReceivedCommand): Promise<void> {
    const decision = decide(command, this.executedIds, Date.now());
    if ('answer' in decision) return this.answer(decision.answer);
    this.executedIds.add(command.id);
    this.executed.push(command.id);
    const args = (command.args ?? {}) as Record<string, unknown>;
    this.o.log?.(`${this.o.id}: executing ${command.name} ${JSON.stringify(command.args ?? {})} (${command.id})`);
    switch (decision.execute) {
      case 'set_interval':
        this.settings.intervalMs = (args.seconds as number) * 1000;
        clearTimeout(this.timer);
        this.schedule();
        return this.answer({ id: command.id, status: 'done', result: { interval_s: args.seconds } });
      case 'set_threshold':
        this.settings.threshold = args.temperature as number;
        return this.answer({ id: command.id, status: 'done', result: { threshold: this.settings.threshold } });
      case 'light': {
        const light = this.settings.light;
        if (args.on !== undefined) light.on = args.on as boolean;
        if (args.colour !== undefined) light.colour = args.colour as string;
        await this.link?.publish(`devices/${this.o.id}/state`, JSON.stringify({ light, timestamp: Date.now() }));
        return this.answer({ id: command.id, status: 'done', result: { light: { ...light } } });
      }
      case 'reboot':
        return this.reboot(command.id);
    }
  }

  /** Away for rebootMs: no readings, no connection; then back with its session, and says it is done. */
  private async reboot(id: string): Promise<void> {
    const awayMs = this.o.rebootMs ?? 2_000;
    const started = Date.now();
    clearTimeout(this.timer);
    await this.link?.close();
    this.link = undefined;
    await new Promise((resolve) => setTimeout(resolve, awayMs));
    if (this.stopped) return;
    await this.connect();
    this.reboots++;
    if (this.stopped) return;
    this.schedule();
    await this.answer({ id, status: 'done', result: { rebooted: true, away_ms: Date.now() - started } });
  }

  private async answer(reply: CommandReply): Promise<void> {
    await this.link?.publish(`devices/${this.o.id}/replies`, JSON.stringify(reply));
  }
}
