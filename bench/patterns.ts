/**
 * `npm run bench patterns`: every shipped pattern flow end to end, beside the machine's ceiling
 * and the peer chain an integrator builds from core nodes, on the same readings in one run.
 *
 * - ceiling: bare mqtt.js devices (QoS 1) on Debian's mosquitto, a bare mqtt.js subscriber in a
 *   process of its own feeding the @influxdata/influxdb-client WriteApi (bench/bare-subscriber.ts);
 *   no authentication, no durability;
 * - peer: the same devices and broker, Node-RED with mqtt in -> json -> join (arrays of up to 5,000
 *   points, or what came in 1 s) -> node-red-contrib-influxdb "influxdb batch" (the devices publish the batch node's point objects, so the chain needs no
 *   function node: the peer is spared that work);
 * - each pattern flow as shipped: its JSON read from flows/ at run time, in a whole Node-RED
 *   process (npm start's, test/support/node-red-process.ts), driven with the pattern's own
 *   transport and authentication (device keys derived from the master secret, HMAC-signed
 *   webhooks) by the senders of bench/pattern-load.ts.
 *
 * Every chain gets a fresh victoria-metrics (-dedup.minScrapeInterval=1ms, as the managed store)
 * and a fresh Salesforce sandbox (in this process, so that Node-RED's figures are Node-RED's own).
 * A chain's time runs from its first send until its last reading is in the store: the store's
 * ingestion counter is sampled every 100 ms and the end is the first sample that saw the final
 * writes. Every reading is then read back (victoria-metrics /api/v1/export; for a flow without a
 * time-series writer, the CRM's record changes, from the sandbox's records file) and counted
 * exactly: a reading missing, or stored that was never sent, is a failure of the run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSandboxOrg } from '../scripts/salesforce-sandbox';
import { DeviceKeys } from '../simulator/credentials';
import { partnerHeaders, vendorCallback, vendorHeaders } from '../simulator/scenarios';
import { NodeRedProcess, repoRoot } from '../test/support/node-red-process';
import { exportSeries, startMosquitto, startVictoriaMetrics, type ManagedServer } from '../test/support/services';
import { format, type Figure } from './measure';
import {
  Acknowledgements,
  BATCH_WINDOW,
  CALLBACK_CONCURRENCY,
  Deadline,
  Fleet,
  GATEWAY_SENSORS,
  HttpSender,
  MQTT_WINDOW,
  MqttDevice,
  pad3,
  READINGS_MEASUREMENT,
  READINGS_TOPIC,
  REPORT_STREAMS,
  sendWindowed,
  type MqttMessage,
  type Reading,
} from './pattern-load';
import { cpuSeconds, peakResidentBytes } from './process-usage';
import { summarizeProfile } from './profile-summary';

export const CHAINS = ['ceiling', 'peer', 'buffered', 'gateway', 'cloudy', 'partners', 'double'] as const;
export type ChainName = (typeof CHAINS)[number];
type PatternName = Exclude<ChainName, 'ceiling' | 'peer'>;

const PATTERN_FLOWS: Record<PatternName, { file: string; label: string }> = {
  buffered: { file: 'pattern-3-buffered.json', label: 'Buffered' },
  gateway: { file: 'pattern-4-gateway.json', label: 'Gateway' },
  cloudy: { file: 'pattern-5-cloudy.json', label: 'Cloudy' },
  partners: { file: 'pattern-7-buffered-by-partners.json', label: 'Buffered by Partners' },
  double: { file: 'pattern-8-double-buffered.json', label: 'Double Buffered' },
};

/** The issue's figure: "sustained over at least 200,000 readings". */
export const SPEC_READINGS = 200_000;
/** A chain that stores no new reading and gets no new acknowledgement for this long has stalled. */
const STALL_MS = 60_000;
/** mosquitto for the bare chains: nothing dropped for a slow subscriber, a window as wide as the devices'. */
const MOSQUITTO_SETTINGS = ['max_queued_messages 0', 'max_inflight_messages 1000'];
const SAMPLE_MS = 100;
const COUNT_EVERY_MS = 500;

export interface PatternBenchOptions {
  /** Readings per chain (rounded up to a whole number per device). */
  readings: number;
  chains?: readonly ChainName[];
  /** Write a --cpu-prof of each Node-RED process into this folder (one subfolder per chain). */
  profileDir?: string;
  log?: (line: string) => void;
}

export interface ReadBack {
  /** Where the readings were read back from. */
  where: string;
  /** Readings the store holds (distinct points of the readings' series; for the CRM, those its Assets account for). */
  stored: number;
  missing: number;
  extra: number;
  /** Whether the store keeps each reading at the device's own time. */
  deviceTimes: boolean;
}

export interface ChainResult {
  chain: ChainName;
  label: string;
  /** Readings sent (every device's, whole). */
  readings: number;
  acknowledged: number;
  refused: number;
  refusals: string[];
  retries: number;
  reconnections: number;
  /** Readings per second, from the first send until the last reading was in the store. */
  rate: number;
  seconds: number;
  /** Readings per second acknowledged to the senders (until the last acknowledgement). */
  acknowledgedRate: number;
  /** CPU seconds per reading of the measured process (Node-RED, or the bare subscriber). */
  cpuPerReading: number;
  /** The same of the chain's separate MQTT broker (mosquitto), when it has one. */
  brokerCpuPerReading?: number;
  /** Peak resident memory of the measured process, bytes. */
  peakRss: number;
  readBack?: ReadBack;
  /** Errors and warnings Node-RED logged while measured: how many, and the first few kinds. */
  logged: { count: number; first: string[] };
  /** Why the chain could not be measured. */
  error?: string;
  /** The process ids of everything the chain started (stopped when it ended). */
  processes: number[];
}

/** Cleanups run in reverse order, each whatever the others did. */
class Cleanup {
  /** Those of the chains under way, for an interrupted run (Node-RED has a process group of its own: a Ctrl-C does not reach it). */
  static readonly active = new Set<Cleanup>();

  private readonly steps: Array<() => Promise<unknown> | unknown> = [];

  add<T>(value: T, step: (value: T) => Promise<unknown> | unknown): T {
    this.steps.push(() => step(value));
    return value;
  }

  async run(): Promise<void> {
    // Taken at once: an interrupt may run it while the chain's own end does.
    for (const step of this.steps.splice(0).reverse()) await Promise.resolve().then(step).catch((err: Error) => console.error(`[bench patterns] cleanup: ${err.message}`));
  }
}

// ---- where the readings land, and how they are read back ----------------------------------------

interface ReadingStore {
  /** Readings stored so far (asked twice a second). */
  count(): Promise<number>;
  /** A number that grows with every write the store takes (sampled every 100 ms). */
  progress(): Promise<number>;
  readBack(): Promise<ReadBack>;
}

/** victoria-metrics: the readings' temperature series, one per device (its `device` label). */
function timeSeriesStore(vm: ManagedServer, fleet: Fleet, label: (device: number) => string): ReadingStore {
  const series = `${READINGS_MEASUREMENT}_temperature`;
  return {
    async count() {
      // New series are searchable only after a flush; a point counts once per series and time.
      await fetch(`${vm.url}/internal/force_flush`);
      const query = encodeURIComponent(`sum(count_over_time(${series}[30d]))`);
      const answer = (await (await fetch(`${vm.url}/api/v1/query?query=${query}&time=${Math.floor(Date.now() / 1000) + 3600}`)).json()) as { data: { result: Array<{ value: [number, string] }> } };
      return Number(answer.data.result[0]?.value[1] ?? 0);
    },
    async progress() {
      const metrics = await (await fetch(`${vm.url}/metrics`)).text();
      return Number(/^vm_rows_inserted_total\{type="influx"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    },
    async readBack() {
      const times = new Map<string, Set<number>>();
      for (const s of await exportSeries(vm, series, 0, 60_000)) {
        const device = s.metric.device ?? '(no device label)';
        const set = times.get(device) ?? new Set<number>();
        for (const t of s.timestamps) set.add(t);
        times.set(device, set);
      }
      let stored = 0;
      let matched = 0;
      for (const set of times.values()) {
        stored += set.size;
        for (const t of set) if (fleet.isReadingTime(t)) matched++;
      }
      const expected = new Set(Array.from({ length: fleet.devices }, (_, d) => label(d)));
      // Matched times count only under the right device.
      for (const [device, set] of times) if (!expected.has(device)) for (const t of set) if (fleet.isReadingTime(t)) matched--;
      const where = `victoria-metrics, series ${series}`;
      if (matched === 0 && stored > 0) {
        // The flow stamps points with its own time: count per device.
        let missing = 0;
        let extra = 0;
        for (const device of expected) {
          const n = times.get(device)?.size ?? 0;
          missing += Math.max(0, fleet.perDevice - n);
          extra += Math.max(0, n - fleet.perDevice);
        }
        for (const [device, set] of times) if (!expected.has(device)) extra += set.size;
        return { where, stored, missing, extra, deviceTimes: false };
      }
      return { where, stored, missing: fleet.total - matched, extra: stored - matched, deviceTimes: matched === stored };
    },
  };
}

/**
 * The CRM's Assets, for a flow that keeps no time series but writes each reading as its device's
 * latest state (Buffered by Partners): every change the sandbox made, read from its records file
 * as it grows. iot-salesforce-out keeps a device's changes in order and merges those waiting
 * together (the later wins), so an Asset holding a device's reading k accounts for its readings
 * 0 to k: the last change of each device must carry its last reading. A change with values no
 * reading of that device had is extra.
 */
function crmAssetStore(recordsFile: string, fleet: Fleet, label: (device: number) => string): ReadingStore {
  const key = (device: unknown, temperature: unknown, battery: unknown) => `${String(device)}|${String(temperature)}|${String(battery)}`;
  const readingOf = new Map<string, { device: number; k: number }>();
  for (let d = 0; d < fleet.devices; d++) {
    for (let k = 0; k < fleet.perDevice; k++) {
      const r = fleet.reading(d, k);
      readingOf.set(key(label(d), r.temperature, r.battery), { device: d, k });
    }
  }
  /** Per device, the readings its latest Asset change accounts for. */
  const accounted = new Array<number>(fleet.devices).fill(0);
  let changes = 0;
  let extra = 0;
  let offset = 0;
  let partial = '';
  const readNew = () => {
    const size = statSync(recordsFile).size;
    if (size <= offset) return;
    const chunk = Buffer.alloc(size - offset);
    const fd = openSync(recordsFile, 'r');
    try {
      readSync(fd, chunk, 0, chunk.length, offset);
    } finally {
      closeSync(fd);
    }
    offset = size;
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('"Asset"')) continue;
      const record = (JSON.parse(line) as { r?: { type: string; fields: Record<string, unknown> } }).r;
      if (record?.type !== 'Asset') continue;
      changes++;
      const reading = readingOf.get(key(record.fields.IoT_Device_Id__c, record.fields.Last_Temperature__c, record.fields.Last_Battery__c));
      if (reading) accounted[reading.device] = reading.k + 1;
      else extra++;
    }
  };
  const total = () => accounted.reduce((a, b) => a + b, 0);
  return {
    async count() {
      readNew();
      return total();
    },
    async progress() {
      return statSync(recordsFile).size;
    },
    async readBack() {
      readNew();
      const stored = total();
      return { where: `the CRM's Assets (${format(changes)} changes; each device's last one must hold its last reading)`, stored, missing: fleet.total - stored, extra, deviceTimes: true };
    },
  };
}

// ---- the chains -----------------------------------------------------------------------------

interface Context {
  fleet: Fleet;
  deadline: Deadline;
  log: (line: string) => void;
  profileDir?: string;
  cleanup: Cleanup;
  /** Every process the chain started (all stopped when it ends). */
  processes: number[];
}

/** A chain started, its devices connected, ready to send. */
interface Prepared {
  /** The process whose CPU time and memory count. */
  pid: number;
  /** The chain's separate MQTT broker, noted beside. */
  brokerPid?: number;
  store: ReadingStore;
  acks: Acknowledgements;
  send(): Promise<void>;
  reconnections(): number;
  /** Stops the measured process so that its profile is written (when profiling). */
  finish?(): Promise<void>;
  /** Everything Node-RED has printed so far. */
  output?(): string;
}

const mqttReading = (r: Reading) => JSON.stringify({ temperature: r.temperature, battery: r.battery, timestamp: r.time });

/** MQTT devices (or gateways), connected before the clock starts; each publishes its messages in order. */
async function mqttSenders(ctx: Context, url: string, senders: Array<{ id: string; password?: string; messages: MqttMessage[] }>): Promise<Omit<Prepared, 'pid' | 'store' | 'brokerPid'>> {
  const acks = new Acknowledgements();
  const devices: MqttDevice[] = [];
  ctx.cleanup.add(devices, (list) => Promise.all(list.map((d) => d.close())));
  // Twenty at a time: a broker that checks credentials takes a moment per CONNECT.
  for (let i = 0; i < senders.length; i += 20) {
    const group = senders.slice(i, i + 20);
    devices.push(...(await Promise.all(group.map((s) => MqttDevice.connect(url, s.id, s.password === undefined ? undefined : { username: s.id, password: s.password }, ctx.deadline)))));
  }
  return {
    acks,
    send: () => Promise.all(senders.map((s, i) => devices[i].publishAll(s.messages, MQTT_WINDOW, acks, ctx.deadline))).then(() => undefined),
    reconnections: () => devices.reduce((n, d) => n + d.reconnections, 0),
  };
}

/** The plain devices of the bare chains: one reading a publish on devices/<id>/readings. */
function plainDevices(fleet: Fleet, body: (id: string, r: Reading) => string) {
  return Array.from({ length: fleet.devices }, (_, d) => {
    const id = `pump-${pad3(d + 1)}`;
    return { id, messages: Array.from({ length: fleet.perDevice }, (_, k) => ({ topic: `devices/${id}/readings`, body: body(id, fleet.reading(d, k)), readings: 1 })) };
  });
}

/** A server the chain owns: disposed when it ends. */
async function owned(ctx: Context, server: ManagedServer): Promise<ManagedServer> {
  ctx.cleanup.add(server, (s) => s.dispose());
  ctx.processes.push(server.pid as number);
  return server;
}

const bareBroker = async (ctx: Context) => owned(ctx, await startMosquitto(MOSQUITTO_SETTINGS));
const freshStore = async (ctx: Context) => owned(ctx, await startVictoriaMetrics());

async function prepareCeiling(ctx: Context): Promise<Prepared> {
  const vm = await freshStore(ctx);
  const broker = await bareBroker(ctx);
  const subscriber: ChildProcess = spawn(process.execPath, [join(repoRoot, 'dist', 'bench', 'bare-subscriber.js'), broker.url, vm.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  ctx.cleanup.add(subscriber, async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  });
  ctx.processes.push(subscriber.pid as number);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the bare subscriber did not start within 30 s: ${output}`)), 30_000);
    subscriber.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    subscriber.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    subscriber.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the bare subscriber exited with code ${code}: ${output}`));
    });
  });
  const senders = await mqttSenders(ctx, broker.url, plainDevices(ctx.fleet, (_, r) => mqttReading(r)));
  return { ...senders, pid: subscriber.pid as number, brokerPid: broker.pid, store: timeSeriesStore(vm, ctx.fleet, (d) => `pump-${pad3(d + 1)}`) };
}

/** Node-RED as npm start runs it, with the given flows, the store and a sandbox org of its own. */
async function startNodeRed(ctx: Context, chain: ChainName, flows: unknown[], env: Record<string, string>): Promise<{ node: NodeRedProcess; recordsFile: string }> {
  const dir = ctx.cleanup.add(mkdtempSync(join(tmpdir(), 'iot-bench-patterns-')), (d) => rmSync(d, { recursive: true, force: true }));
  const { sandbox, env: salesforce, recordsFile } = await startSandboxOrg('127.0.0.1', 0, dir);
  ctx.cleanup.add(sandbox, (s) => s.close());
  const nodeArgs = ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(ctx.profileDir, chain)}`] : [];
  const node = await NodeRedProcess.start({ flows, nodeArgs, env: { ...salesforce, ...env } });
  ctx.cleanup.add(node, (n) => n.dispose());
  ctx.processes.push(node.child.pid as number);
  ctx.log(`${chain}: Node-RED ${node.editorUrl} (pid ${node.child.pid})`);
  return { node, recordsFile };
}

/** The profile is written when Node-RED exits by itself: stop it with SIGINT, as Ctrl-C does. */
function finishProfiled(ctx: Context, node: NodeRedProcess): Prepared['finish'] {
  if (!ctx.profileDir) return undefined;
  return async () => {
    await Promise.race([node.stop('SIGINT'), sleep(30_000)]);
  };
}

async function preparePeer(ctx: Context): Promise<Prepared> {
  const vm = await freshStore(ctx);
  const broker = await bareBroker(ctx);
  const flows = [
    { id: 'peer.tab', type: 'tab', label: 'peer chain' },
    { id: 'peer.broker', type: 'mqtt-broker', name: 'mosquitto', broker: '127.0.0.1', port: String(broker.port), clientid: 'bench-peer-chain', autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true },
    { id: 'peer.in', type: 'mqtt in', z: 'peer.tab', name: '', topic: READINGS_TOPIC, qos: '1', datatype: 'utf8', broker: 'peer.broker', nl: false, rap: true, rh: 0, inputs: 0, wires: [['peer.json']] },
    { id: 'peer.json', type: 'json', z: 'peer.tab', name: '', property: 'payload', action: 'obj', pretty: false, wires: [['peer.join']] },
    // "influxdb batch" flushes each message as one HTTP write: one per reading exhausted the sockets
    // (connect EMFILE). An integrator batches first, as the pack's sinks do (5,000 or 1 s).
    { id: 'peer.join', type: 'join', z: 'peer.tab', name: 'points', mode: 'custom', build: 'array', property: 'payload', propertyType: 'msg', key: 'topic', joiner: '\\n', joinerType: 'str', useparts: false, accumulate: false, timeout: '1', count: '5000', reduceRight: false, reduceExp: '', reduceInit: '', reduceInitType: '', reduceFixup: '', wires: [['peer.batch']] },
    { id: 'peer.store', type: 'influxdb', hostname: '127.0.0.1', port: String(vm.port), protocol: 'http', database: 'iot', name: 'victoria-metrics', usetls: false, influxdbVersion: '2.0', url: vm.url, timeout: 10, rejectUnauthorized: true },
    { id: 'peer.batch', type: 'influxdb batch', z: 'peer.tab', influxdb: 'peer.store', precision: '', retentionPolicy: '', name: '', database: '', precisionV18FluxV20: 'ms', retentionPolicyV18Flux: '', org: 'iot', bucket: 'bench', wires: [] },
  ];
  const { node } = await startNodeRed(ctx, 'peer', flows, { INFLUX_URL: vm.url, IOT_BENCH_PEERS: '1' });
  // One of the batch node's points; the join gathers them into its input, an array of points.
  const point = (id: string, r: Reading) => JSON.stringify({ measurement: READINGS_MEASUREMENT, tags: { device: id }, fields: { temperature: r.temperature, battery: r.battery }, timestamp: r.time });
  const senders = await mqttSenders(ctx, broker.url, plainDevices(ctx.fleet, point));
  return { ...senders, pid: node.child.pid as number, brokerPid: broker.pid, store: timeSeriesStore(vm, ctx.fleet, (d) => `pump-${pad3(d + 1)}`), finish: finishProfiled(ctx, node), output: () => node.output };
}

/** The flow as shipped, and whether it keeps a time series (else its readings end in the CRM's Assets). */
function shippedFlow(pattern: PatternName): { flows: Array<{ type: string }>; timeSeries: boolean } {
  const flows = JSON.parse(readFileSync(join(repoRoot, 'flows', PATTERN_FLOWS[pattern].file), 'utf8')) as Array<{ type: string; object?: string }>;
  const timeSeries = flows.some((n) => n.type === 'iot-timeseries-out');
  if (!timeSeries && !flows.some((n) => n.type === 'iot-salesforce-out' && n.object === 'Asset')) throw new Error(`${PATTERN_FLOWS[pattern].file} stores its readings in neither a time series nor the CRM's Assets: nothing to read back`);
  return { flows, timeSeries };
}

/** How each pattern's senders talk to it, and what its store calls each device. */
function patternLoad(pattern: PatternName, ctx: Context, node: NodeRedProcess, keys: DeviceKeys): { label: (d: number) => string; prepare(): Promise<Omit<Prepared, 'pid' | 'store' | 'brokerPid'>> } {
  const { fleet, deadline } = ctx;
  const rounds = Array.from({ length: fleet.perDevice }, (_, k) => k);
  const every = Array.from({ length: fleet.devices }, (_, d) => d);
  /** HTTP senders: lanes sent side by side, each in order with `window` requests open. */
  type Body = { body: string; readings: number };
  const http = (path: string, lanes: Body[][], window: number, sign: (body: string) => Record<string, string>) => async () => {
    const sender = ctx.cleanup.add(new HttpSender(node.editorUrl, lanes.length * window), (s) => s.close());
    const acks = new Acknowledgements();
    const sendLane = (bodies: Body[]) => sendWindowed(bodies.length, window, deadline, (i) => sender.deliver(path, bodies[i].body, bodies[i].readings, sign, acks, deadline));
    return { acks, send: () => Promise.all(lanes.map(sendLane)).then(() => undefined), reconnections: () => 0 };
  };
  switch (pattern) {
    case 'buffered': {
      const label = (d: number) => `pump-${pad3(d + 1)}`;
      const url = `mqtt://127.0.0.1:${node.brokerPorts.buffered}`;
      return {
        label,
        prepare: () =>
          mqttSenders(ctx, url, every.map((d) => ({ id: label(d), password: keys.apiKey(label(d)), messages: rounds.map((k) => ({ topic: `devices/${label(d)}/readings`, body: mqttReading(fleet.reading(d, k)), readings: 1 })) }))),
      };
    }
    case 'gateway': {
      // The fleet's devices are sensors, GATEWAY_SENSORS behind each gateway; a gateway publishes its sensors' k-th readings as one batch.
      const gateway = (g: number) => `gw-${pad3(g + 1)}`;
      const label = (d: number) => `${gateway(Math.floor(d / GATEWAY_SENSORS))}:s-${String((d % GATEWAY_SENSORS) + 1).padStart(2, '0')}`;
      const url = `mqtt://127.0.0.1:${node.brokerPorts.gateway}`;
      const gateways = Array.from({ length: Math.ceil(fleet.devices / GATEWAY_SENSORS) }, (_, g) => g);
      return {
        label,
        prepare: () =>
          mqttSenders(
            ctx,
            url,
            gateways.map((g) => {
              const sensors = every.filter((d) => Math.floor(d / GATEWAY_SENSORS) === g);
              return {
                id: gateway(g),
                password: keys.apiKey(gateway(g)),
                messages: rounds.map((k) => ({
                  topic: `devices/${gateway(g)}/batch`,
                  body: JSON.stringify({ readings: sensors.map((d) => ({ sensor: label(d), ...JSON.parse(mqttReading(fleet.reading(d, k))) })) }),
                  readings: sensors.length,
                })),
              };
            }),
          ),
      };
    }
    case 'cloudy': {
      // One callback a device message, as Sigfox-style vendor clouds forward them.
      // The vendor's id in its callback; stored under the vendor cloud that speaks for it.
      const id = (d: number) => `sfx-${pad3(d + 1)}`;
      const label = (d: number) => `vendor-cloud:${id(d)}`;
      const bodies = rounds.flatMap((k) => every.map((d) => ({ body: vendorCallback(id(d), fleet.reading(d, k), fleet.reading(d, k).time, ((k * fleet.devices + d) % 65_535) + 1), readings: 1 })));
      return { label, prepare: http('/cloudy/callback', [bodies], CALLBACK_CONCURRENCY, (body) => vendorHeaders(keys, body)) };
    }
    case 'partners': {
      // Reports of each device's state, its reading as the latest one: REPORT_STREAMS at once,
      // each for its share of the devices one report after another, so that each device's states
      // arrive in order (requests open at the same time have none, and an Asset keeps the last).
      // Stored under the partner that reports for the device.
      const label = (d: number) => `partner-fleetco:fc-${pad3(d + 1)}`;
      const report = (k: number, devices: number[]) =>
        JSON.stringify({
          partner: 'fleetco',
          sentAt: new Date(fleet.reading(0, k).time).toISOString(),
          devices: devices.map((d) => {
            const r = fleet.reading(d, k);
            return { id: `fc-${pad3(d + 1)}`, status: 'ok', temperature: { min: r.temperature, max: r.temperature, mean: r.temperature, last: r.temperature }, battery: r.battery, alerts: [] };
          }),
        });
      const lanes = Array.from({ length: REPORT_STREAMS }, (_, lane) => every.filter((d) => d % REPORT_STREAMS === lane)).map((devices) => rounds.map((k) => ({ body: report(k, devices), readings: devices.length })));
      return { label, prepare: http('/partners/callback', lanes, 1, (body) => partnerHeaders(keys, 'partner-fleetco', body)) };
    }
    case 'double': {
      // A batch a round with every device's reading, forwarded by the partner as the simulator
      // does; each reading carries its own time, so batches need no order.
      // The partner's id in its batch; stored under the partner that speaks for it.
      const id = (d: number) => `rc-${pad3(d + 1)}`;
      const label = (d: number) => `partner-relayco:${id(d)}`;
      const batches = rounds.map((k) => ({
        body: JSON.stringify({ partner: 'relayco', readings: every.map((d) => ({ device: id(d), time: fleet.reading(d, k).time, temperature: fleet.reading(d, k).temperature, battery: fleet.reading(d, k).battery })) }),
        readings: fleet.devices,
      }));
      return { label, prepare: http('/double/readings', [batches], BATCH_WINDOW, (body) => partnerHeaders(keys, 'partner-relayco', body)) };
    }
  }
}

async function preparePattern(pattern: PatternName, ctx: Context): Promise<Prepared> {
  const { flows, timeSeries } = shippedFlow(pattern);
  const vm = await freshStore(ctx);
  const secret = randomBytes(32);
  const { node, recordsFile } = await startNodeRed(ctx, pattern, flows, { INFLUX_URL: vm.url, IOT_DEVICE_MASTER_SECRET: `hex:${secret.toString('hex')}` });
  const load = patternLoad(pattern, ctx, node, new DeviceKeys(secret));
  const store = timeSeries ? timeSeriesStore(vm, ctx.fleet, load.label) : crmAssetStore(recordsFile, ctx.fleet, load.label);
  const senders = await load.prepare();
  return { ...senders, pid: node.child.pid as number, store, finish: finishProfiled(ctx, node), output: () => node.output };
}

// ---- one chain measured ---------------------------------------------------------------------

/** Node-RED's error and warning lines: how many, and the first three different ones (without their time). */
function loggedProblems(output: string): ChainResult['logged'] {
  const lines = output.split('\n').filter((line) => /\[(error|warn)\]/.test(line));
  const first = [...new Set(lines.map((line) => line.replace(/^.*?\[(error|warn)\]\s*/, '[$1] ').slice(0, 200)))].slice(0, 3);
  return { count: lines.length, first };
}

/**
 * The profile Node-RED wrote as it stopped, summed up over the measured time only (performance.now()
 * is turned into the monotonic clock the profile uses), into summary.txt beside it.
 */
function profileSummary(dir: string, fromMs: number, toMs: number, log: (line: string) => void): void {
  // Only Node-RED is profiled (not the ceiling's subscriber).
  if (!existsSync(dir)) return;
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return log(`no profile in ${dir}`);
  const offsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
  const lines = summarizeProfile(join(dir, file), { fromUs: fromMs * 1000 + offsetUs, toUs: toMs * 1000 + offsetUs });
  writeFileSync(join(dir, 'summary.txt'), `${lines.join('\n')}\n`);
  log(`profile: ${join(dir, file)}; summary in ${join(dir, 'summary.txt')}:`);
  for (const line of lines.slice(0, 14)) log(`  ${line}`);
}

const PREPARE: Record<ChainName, (ctx: Context) => Promise<Prepared>> = {
  ceiling: prepareCeiling,
  peer: preparePeer,
  buffered: (ctx) => preparePattern('buffered', ctx),
  gateway: (ctx) => preparePattern('gateway', ctx),
  cloudy: (ctx) => preparePattern('cloudy', ctx),
  partners: (ctx) => preparePattern('partners', ctx),
  double: (ctx) => preparePattern('double', ctx),
};

export function chainLabel(chain: ChainName): string {
  if (chain === 'ceiling') return 'the ceiling: bare mqtt.js on mosquitto -> influx client WriteApi';
  if (chain === 'peer') return 'the peer chain: core mqtt in -> json -> join -> node-red-contrib-influxdb "influxdb batch"';
  return PATTERN_FLOWS[chain].label;
}

interface Sample {
  at: number;
  progress: number;
  cpu: number;
  brokerCpu: number;
}

/** Time allowed a chain: a minute to start, then at least 100 readings a second. */
const deadlineMs = (readings: number) => 60_000 + readings * 10;

async function measureChain(chain: ChainName, fleet: Fleet, options: PatternBenchOptions): Promise<ChainResult> {
  const log = options.log ?? (() => undefined);
  const deadline = new Deadline(deadlineMs(fleet.total));
  const cleanup = new Cleanup();
  Cleanup.active.add(cleanup);
  const ctx: Context = { fleet, deadline, log, profileDir: options.profileDir, cleanup, processes: [] };
  const result: ChainResult = { chain, label: chainLabel(chain), readings: fleet.total, acknowledged: 0, refused: 0, refusals: [], retries: 0, reconnections: 0, rate: NaN, seconds: NaN, acknowledgedRate: NaN, cpuPerReading: NaN, peakRss: NaN, logged: { count: 0, first: [] }, processes: ctx.processes };
  let sampler: NodeJS.Timeout | undefined;
  try {
    const chainReady = await PREPARE[chain](ctx);
    const { pid, brokerPid, store, acks } = chainReady;
    const brokerCpu = () => (brokerPid === undefined ? 0 : cpuSeconds(brokerPid));
    const samples: Sample[] = [];
    let sampling = false;
    const sample = async () => {
      if (sampling) return;
      sampling = true;
      try {
        const progress = await store.progress();
        samples.push({ at: performance.now(), progress, cpu: cpuSeconds(pid), brokerCpu: brokerCpu() });
      } catch {
        // A sample missed (the store busy): the next one counts.
      } finally {
        sampling = false;
      }
    };
    const start: Sample = { at: performance.now(), progress: await store.progress(), cpu: cpuSeconds(pid), brokerCpu: brokerCpu() };
    const outputBefore = chainReady.output?.().length ?? 0;
    log(`${chain}: sending ${format(fleet.total)} readings`);
    sampler = setInterval(() => void sample(), SAMPLE_MS);
    let sent = false;
    const sending = chainReady.send().finally(() => (sent = true));

    // Until every reading is stored, or nothing moves for STALL_MS, or the deadline.
    let stored = 0;
    let movedAt = performance.now();
    let lastAcks = 0;
    let stalled = '';
    let lastLog = performance.now();
    for (;;) {
      await sleep(COUNT_EVERY_MS);
      const count = await store.count();
      if (count >= fleet.total && sent) break;
      if (count > stored || acks.readings > lastAcks) movedAt = performance.now();
      stored = Math.max(stored, count);
      lastAcks = acks.readings;
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`${chain}: ${format(acks.readings)} acknowledged, ${format(count)} stored of ${format(fleet.total)}`);
      }
      if (deadline.passed || performance.now() - movedAt > STALL_MS) {
        stalled = deadline.passed ? `the deadline (${format(deadlineMs(fleet.total) / 1000)} s) passed` : `nothing stored or acknowledged for ${STALL_MS / 1000} s`;
        deadline.expire();
        break;
      }
    }
    const finalProgress = await store.progress();
    clearInterval(sampler);
    await sample();
    // A sender stopped early may still wait for an answer that will not come.
    await Promise.race([sending, sleep(10_000)]);
    const end = samples.find((s) => s.progress >= finalProgress) ?? samples[samples.length - 1];
    result.seconds = (end.at - start.at) / 1000;
    result.rate = fleet.total / result.seconds;
    result.acknowledged = acks.readings;
    result.acknowledgedRate = acks.readings / ((acks.lastAt - start.at) / 1000);
    result.refused = acks.refusedReadings;
    result.refusals = acks.refusals;
    result.retries = acks.retries;
    result.reconnections = chainReady.reconnections();
    result.cpuPerReading = (end.cpu - start.cpu) / fleet.total;
    if (brokerPid !== undefined) result.brokerCpuPerReading = (end.brokerCpu - start.brokerCpu) / fleet.total;
    result.peakRss = peakResidentBytes(pid);
    result.logged = loggedProblems(chainReady.output?.().slice(outputBefore) ?? '');
    result.readBack = await store.readBack();
    if (stalled) result.error = `stopped: ${stalled} (${format(stored)} of ${format(fleet.total)} stored, ${format(acks.readings)} acknowledged)`;
    log(`${chain}: ${format(result.rate)} readings/s over ${format(result.seconds)} s; ${format(result.readBack.stored)} stored, ${result.readBack.missing} missing, ${result.readBack.extra} extra`);
    await chainReady.finish?.();
    if (options.profileDir) profileSummary(join(options.profileDir, chain), start.at, end.at, log);
  } catch (err) {
    result.error = (err as Error).message;
    log(`${chain}: FAILED ${result.error}`);
  } finally {
    if (sampler) clearInterval(sampler);
    await cleanup.run();
    Cleanup.active.delete(cleanup);
  }
  return result;
}

/** Runs the chains one after another on the same readings. */
export async function runPatternBench(options: PatternBenchOptions): Promise<ChainResult[]> {
  const results: ChainResult[] = [];
  for (const chain of options.chains ?? CHAINS) results.push(await measureChain(chain, new Fleet(options.readings), options));
  return results;
}

// ---- figures --------------------------------------------------------------------------------

/** Goals from the issue (13): on this 2-core machine, with durable acknowledgement. */
const GOALS: Partial<Record<PatternName, { perSecond?: number; ofCeiling?: number }>> = {
  buffered: { perSecond: 15_000, ofCeiling: 0.6 },
  gateway: { perSecond: 15_000, ofCeiling: 0.6 },
  double: { ofCeiling: 0.5 },
};
const OF_PEER = 1.5;
const RSS_OF_BARE = 2;

const mb = (bytes: number) => `${format(bytes / 1_048_576)} MB`;
const micros = (seconds: number) => `${format(seconds * 1e6)} µs`;

/** What a chain's figures say beside the number: its costs, its senders' view, what went wrong. */
function details(r: ChainResult): string {
  if (r.error && !r.readBack) return `FAILED: ${r.error}`;
  const parts = [
    `CPU ${micros(r.cpuPerReading)} a reading in ${r.chain === 'ceiling' ? 'the subscriber' : 'Node-RED'}${r.brokerCpuPerReading === undefined ? '' : ` (+ ${micros(r.brokerCpuPerReading)} in mosquitto)`}`,
    `peak RSS ${mb(r.peakRss)}`,
    `acknowledged at ${format(r.acknowledgedRate)}/s`,
  ];
  if (r.retries > 0) parts.push(`${format(r.retries)} resent`);
  if (r.reconnections > 0) parts.push(`${format(r.reconnections)} reconnections`);
  if (r.refused > 0) parts.push(`${format(r.refused)} readings refused (${r.refusals.join('; ')})`);
  if (r.logged.count > 0) parts.push(`Node-RED logged ${format(r.logged.count)} errors or warnings (${r.logged.first.join('; ')})`);
  if (r.readBack && !r.readBack.deviceTimes) parts.push('stored at the flow\'s own time, not the device\'s');
  if (r.error) parts.push(`FAILED: ${r.error}`);
  return parts.join('; ');
}

export function patternFigures(results: ChainResult[]): Figure[] {
  const ceiling = results.find((r) => r.chain === 'ceiling');
  const peer = results.find((r) => r.chain === 'peer');
  const readings = results[0]?.readings ?? 0;
  const figures: Figure[] = [];
  const ratio = (a: number, b: number | undefined) => (b === undefined ? NaN : a / b);
  for (const r of results) {
    if (r.chain === 'ceiling' || r.chain === 'peer') {
      const note = r.chain === 'peer' && ceiling ? `${format(ratio(r.rate, ceiling.rate))} of the ceiling; ${details(r)}` : details(r);
      figures.push({ name: `${r.label} (no authentication, no durability): readings per second, ${format(readings)} readings from 200 devices at QoS 1`, value: r.rate, unit: 'readings/s', note });
      continue;
    }
    const goals = GOALS[r.chain] ?? {};
    figures.push({ name: `${r.label} as shipped: readings per second (${format(readings)} readings)`, value: r.rate, unit: 'readings/s', goal: goals.perSecond === undefined ? undefined : { op: '>=', value: goals.perSecond }, note: details(r) });
    figures.push({ name: `${r.label}: ratio to the ceiling`, value: ratio(r.rate, ceiling?.rate), unit: '', goal: goals.ofCeiling === undefined ? undefined : { op: '>=', value: goals.ofCeiling } });
    figures.push({ name: `${r.label}: ratio to the peer chain`, value: ratio(r.rate, peer?.rate), unit: '', goal: { op: '>=', value: OF_PEER } });
    figures.push({
      name: `${r.label}: Node-RED's peak RSS, ratio to the bare chain's`,
      value: ratio(r.peakRss, ceiling?.peakRss),
      unit: '',
      goal: { op: '<=', value: RSS_OF_BARE },
      note: `${mb(r.peakRss)} against ${ceiling ? mb(ceiling.peakRss) : 'no ceiling measured'}`,
    });
  }
  const lost = results.map((r) => (r.readBack ? r.readBack.missing + r.readBack.extra : r.readings));
  figures.push({
    name: 'readings missing or extra in the store, all chains (every reading read back and counted)',
    value: lost.reduce((a, b) => a + b, 0),
    unit: 'readings',
    goal: { op: '<=', value: 0 },
    note: results.map((r) => `${r.chain}: ${r.readBack ? `${format(r.readBack.stored)} stored, ${r.readBack.missing} missing, ${r.readBack.extra} extra` : 'not read back'}`).join('; '),
  });
  return figures;
}

function option(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/**
 * `npm run bench patterns [-- --readings=N --chains=buffered,peer --profile=DIR]`. A run with
 * fewer readings than the issue's 200,000 prints its figures but does not write them into the README.
 */
export async function benchPatterns(): Promise<{ figures: Figure[]; notRecorded?: string }> {
  const readings = Number(option('readings') ?? SPEC_READINGS);
  if (!Number.isInteger(readings) || readings < 1) throw new Error(`--readings must be a whole number, not ${option('readings')}`);
  const chains = option('chains')?.split(',') ?? [...CHAINS];
  const unknown = chains.filter((c) => !(CHAINS as readonly string[]).includes(c));
  if (unknown.length > 0) throw new Error(`unknown chain(s) ${unknown.join(', ')}; known: ${CHAINS.join(', ')}`);
  const interrupted = (signal: NodeJS.Signals) => {
    console.log(`\n${signal}: stopping what the benchmark started`);
    Promise.all([...Cleanup.active].map((c) => c.run())).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const results = await runPatternBench({ readings, chains: chains as ChainName[], profileDir: option('profile'), log: (line) => console.log(`  ${line}`) });
  process.off('SIGINT', interrupted);
  process.off('SIGTERM', interrupted);
  const small = readings < SPEC_READINGS || chains.length < CHAINS.length;
  return { figures: patternFigures(results), notRecorded: small ? `a partial run (${format(readings)} readings, chains ${chains.join(', ')}): figures not written to README.md` : undefined };
}
