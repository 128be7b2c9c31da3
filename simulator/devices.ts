/**
 * What simulated devices measure, step by step: temperatures that drift and now and then run
 * hot, batteries of four kinds (declining steadily, declining fast, swapped for a new one when
 * nearly flat, or flat but noisy), devices that go silent for a while, gateways that collect many
 * low-power sensors, and the packed binary payload a vendor cloud forwards (Sigfox style).
 * Everything is driven by a seeded random generator, so a run can be repeated exactly.
 */

/** A small, fast, seedable generator (mulberry32). */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  between(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** A generator of its own, seeded from this one: its draws leave this one's sequence alone. */
  fork(): Random {
    return new Random(Math.floor(this.next() * 4_294_967_296));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }
}

export interface Reading {
  temperature: number;
  battery: number;
}

/**
 * steady: declines at the model's drain. fast: declines five times as fast. swapped: declines
 * fast until nearly flat, is swapped for a new battery, then declines steadily. flat: holds its
 * voltage, read with noise. The battery forecast of the Buffered pattern meets all four.
 */
export type BatteryKind = 'steady' | 'fast' | 'swapped' | 'flat';

/** How much faster a fast (or not yet swapped) battery declines. */
const FAST_DRAIN = 5;
/** A swapped battery is replaced when it reaches this voltage, just above the usual 3.3 V alert. */
export const SWAP_AT = 3.32;
/** A flat battery's readings scatter this far (V) around its voltage. */
const FLAT_NOISE = 0.02;

export interface DeviceModelOptions {
  /** Where the temperature settles when nothing happens (°C). */
  normal: number;
  /** How high it runs during an excursion (°C). */
  hot: number;
  /** Chance per step that an excursion starts. */
  excursionChance: number;
  /** Steps an excursion lasts. */
  excursionSteps: number;
  /** Chance per step that the device goes silent. */
  silenceChance: number;
  /** Steps a silence lasts. */
  silenceSteps: number;
  /** Battery volts at the start and lost per step. */
  battery: number;
  batteryDrain: number;
  /** The share of devices whose battery is fast, swapped or flat; the rest are steady. */
  batteryKinds: Record<Exclude<BatteryKind, 'steady'>, number>;
}

export const DEFAULT_MODEL: DeviceModelOptions = {
  normal: 62,
  hot: 92,
  excursionChance: 0.02,
  excursionSteps: 12,
  silenceChance: 0.005,
  silenceSteps: 20,
  battery: 3.6,
  batteryDrain: 0.0005,
  batteryKinds: { fast: 0.25, swapped: 0.2, flat: 0.15 },
};

/** One device's physics. step() gives its next reading, or undefined while it is silent. */
export class DeviceModel {
  readonly batteryKind: BatteryKind;
  private temperature: number;
  private battery: number;
  private swaps = 0;
  private excursionLeft = 0;
  private silenceLeft = 0;
  /** The battery's own draws, so that its kind changes nothing else a seed gives. */
  private readonly batteryRandom: Random;

  constructor(
    readonly id: string,
    private readonly random: Random,
    private readonly options: DeviceModelOptions = DEFAULT_MODEL,
  ) {
    this.temperature = options.normal + random.between(-3, 3);
    this.batteryRandom = random.fork();
    this.batteryKind = pickKind(this.batteryRandom.next(), options.batteryKinds);
    this.battery = options.battery - this.batteryRandom.between(0, 0.1);
  }

  /** How many times the battery was swapped so far. */
  get batterySwaps(): number {
    return this.swaps;
  }

  get silent(): boolean {
    return this.silenceLeft > 0;
  }

  step(): Reading | undefined {
    const o = this.options;
    if (this.silenceLeft > 0) {
      this.silenceLeft--;
      return undefined;
    }
    if (this.random.chance(o.silenceChance)) {
      this.silenceLeft = o.silenceSteps;
      return undefined;
    }
    if (this.excursionLeft > 0) this.excursionLeft--;
    else if (this.random.chance(o.excursionChance)) this.excursionLeft = o.excursionSteps;
    const target = this.excursionLeft > 0 ? o.hot : o.normal;
    this.temperature += (target - this.temperature) * 0.3 + this.random.between(-0.8, 0.8);
    return { temperature: round(this.temperature, 1), battery: round(this.nextBattery(), 3) };
  }

  private nextBattery(): number {
    const o = this.options;
    const random = this.batteryRandom;
    if (this.batteryKind === 'flat') return this.battery + random.between(-FLAT_NOISE, FLAT_NOISE);
    const fast = this.batteryKind === 'fast' || (this.batteryKind === 'swapped' && this.swaps === 0);
    this.battery = Math.max(2.5, this.battery - o.batteryDrain * (fast ? FAST_DRAIN : 1) * random.between(0.5, 1.5));
    if (this.batteryKind === 'swapped' && this.swaps === 0 && this.battery <= SWAP_AT) {
      this.battery = o.battery - random.between(0, 0.05);
      this.swaps++;
    }
    return this.battery;
  }

  /** Forces an excursion now (tests and demos want one early). */
  overheat(): void {
    this.excursionLeft = this.options.excursionSteps;
  }

  /** Forces a silence now. */
  goSilent(steps = this.options.silenceSteps): void {
    this.silenceLeft = steps;
  }
}

/** A gateway's batch: readings of its sensors, each with the time it was measured. */
export interface GatewayBatch {
  gateway: string;
  readings: Array<{ sensor: string; timestamp: number } & Reading>;
}

/**
 * A gateway collecting low-power sensors and sending them up in batches. Sensor ids name their
 * gateway: `gw-01:s-03` (the example registry's gateway separator is `:`).
 */
export class GatewayModel {
  readonly sensors: DeviceModel[];

  constructor(
    readonly id: string,
    sensorCount: number,
    random: Random,
    options: DeviceModelOptions = DEFAULT_MODEL,
  ) {
    this.sensors = Array.from({ length: sensorCount }, (_, i) => new DeviceModel(`${id}:s-${String(i + 1).padStart(2, '0')}`, random, options));
  }

  /** One batch: every sensor that is not silent, measured `intervalMs` apart before `now`. */
  batch(now: number, intervalMs: number): GatewayBatch {
    const readings: GatewayBatch['readings'] = [];
    this.sensors.forEach((sensor, i) => {
      const reading = sensor.step();
      if (reading) readings.push({ sensor: sensor.id, timestamp: now - (this.sensors.length - 1 - i) * Math.floor(intervalMs / this.sensors.length), ...reading });
    });
    return { gateway: this.id, readings };
  }
}

/**
 * The vendor cloud's packed payload, as Sigfox-style callbacks carry it: 6 bytes as hex.
 *   byte 0     format version (1)
 *   bytes 1-2  temperature in tenths of °C, signed 16-bit big-endian
 *   byte 3     battery in 20 mV steps (3.30 V = 165)
 *   bytes 4-5  sequence number, unsigned 16-bit big-endian
 */
export const PACKED_FORMAT_VERSION = 1;

export function packReading(reading: Reading, sequence: number): string {
  const bytes = Buffer.alloc(6);
  bytes.writeUInt8(PACKED_FORMAT_VERSION, 0);
  bytes.writeInt16BE(Math.round(reading.temperature * 10), 1);
  bytes.writeUInt8(Math.max(0, Math.min(255, Math.round(reading.battery * 50))), 3);
  bytes.writeUInt16BE(sequence & 0xffff, 4);
  return bytes.toString('hex');
}

/** The inverse of packReading: what the Cloudy flow's decoder does. */
export function unpackReading(hex: string): Reading & { sequence: number } {
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length !== 6 || bytes.readUInt8(0) !== PACKED_FORMAT_VERSION) throw new Error(`not a version ${PACKED_FORMAT_VERSION} payload: ${hex}`);
  return { temperature: bytes.readInt16BE(1) / 10, battery: bytes.readUInt8(3) / 50, sequence: bytes.readUInt16BE(4) };
}

function pickKind(draw: number, shares: DeviceModelOptions['batteryKinds']): BatteryKind {
  let below = 0;
  for (const kind of ['fast', 'swapped', 'flat'] as const) {
    below += shares[kind];
    if (draw < below) return kind;
  }
  return 'steady';
}

function round(n: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(n * f) / f;
}
