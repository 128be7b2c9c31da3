/**
 * For the end-to-end test of each pattern flow: a whole Node-RED (npm start) running only that
 * flow, with the local Salesforce sandbox, a real victoria-metrics and real MQTT brokers; the
 * simulator driving it; and what the outcome must be, computed from what the simulator sent.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ThresholdEngine } from '../../nodes/threshold/engine';
import type { RuleConfig } from '../../nodes/threshold/rules';
import { DeviceKeys, masterSecret } from '../../simulator/credentials';
import { Simulation, type Report, type SimulationOptions } from '../../simulator/run';
import type { PatternName, Sent } from '../../simulator/scenarios';
import type { FlowNode } from './buffer-flow';
import { NodeRedProcess, repoRoot } from './node-red-process';
import { exportSeries, startVictoriaMetrics, type ManagedServer } from './services';
import { eventually } from './wait';

export type SalesforceRecord = Record<string, unknown> & { Id: string };

export class PatternRun {
  private constructor(
    readonly node: NodeRedProcess,
    readonly store: ManagedServer,
  ) {}

  /**
   * Node-RED with only the pattern's flow file, its store and the sandbox, ready for traffic.
   * `change` alters a node of the flow first, for a test about a setting.
   */
  static async start(flowFile: string, change?: (node: FlowNode) => void): Promise<PatternRun> {
    const store = await startVictoriaMetrics();
    const flows = JSON.parse(readFileSync(join(repoRoot, 'flows', flowFile), 'utf8')) as FlowNode[];
    if (change) flows.forEach(change);
    const node = await NodeRedProcess.start({ flows, env: { INFLUX_URL: store.url } });
    return new PatternRun(node, store);
  }

  /** Drives the flow with the simulator (seeded, so a run repeats), bad actors at the end. */
  simulate(pattern: PatternName, options: Partial<SimulationOptions> = {}): Promise<Report> {
    return this.simulation(pattern, options).run();
  }

  /** The simulation simulate() runs, to watch while it runs (`sent` fills as it goes). */
  simulation(pattern: PatternName, options: Partial<SimulationOptions> = {}): Simulation {
    return new Simulation({
      patterns: [pattern],
      devices: 3,
      rate: 2,
      duration: 6,
      bad: true,
      seed: 7,
      // A button press and a camera's inspection every round: the tests count them.
      occasionalMs: 0,
      keys: new DeviceKeys(masterSecret(this.node.dataDir)),
      target: { http: this.node.editorUrl, brokerHost: '127.0.0.1', brokerPorts: { buffered: this.node.brokerPorts.buffered, gateway: this.node.brokerPorts.gateway } },
      ...options,
    });
  }

  /** Salesforce (the sandbox) answers every API call 503 for this long. */
  async salesforceOutage(ms: number): Promise<void> {
    const response = await fetch(`${this.node.salesforceUrl}/_sandbox/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ unavailableForMs: ms }) });
    if (!response.ok) throw new Error(`sandbox faults: ${response.status}`);
  }

  /** The sandbox's records of an object. */
  async records(type: string): Promise<SalesforceRecord[]> {
    const response = await fetch(`${this.node.salesforceUrl}/_sandbox/records?type=${encodeURIComponent(type)}`);
    if (!response.ok) throw new Error(`sandbox records of ${type}: ${response.status}`);
    return (await response.json()) as SalesforceRecord[];
  }

  /** Waits until the records of a type satisfy `done`, and returns them. */
  recordsWhen(type: string, what: string, done: (records: SalesforceRecord[]) => boolean, timeoutMs = 30_000): Promise<SalesforceRecord[]> {
    return eventually(`${what} (${type})`, async () => {
      const records = await this.records(type);
      return done(records) ? records : undefined;
    }, timeoutMs, 250);
  }

  /** Points stored per device for a field of the `readings` measurement, once `expected` are there. */
  async storedPerDevice(field: string, expected: number, timeoutMs = 30_000): Promise<Map<string, number>> {
    const series = await exportSeries(this.store, `readings_${field}`, expected, timeoutMs);
    const counts = new Map<string, number>();
    for (const s of series) counts.set(s.metric.device, (counts.get(s.metric.device) ?? 0) + s.values.length);
    return counts;
  }

  async dispose(): Promise<void> {
    await this.node.dispose();
    await this.store.dispose();
  }
}

/** Honest messages the flow accepted. */
export function accepted(report: Report): Sent[] {
  return report.sent.filter((s) => s.accepted && !s.bad);
}

/**
 * Accepted readings per device, in the order they were sent: those of honest messages, and the
 * good readings a bad actor's message carried beside its bad ones (a gateway batch with a stranger).
 */
export function readingsPerDevice(report: Report): Map<string, Array<{ at: number; temperature?: number; battery?: number }>> {
  const perDevice = new Map<string, Array<{ at: number; temperature?: number; battery?: number }>>();
  for (const sent of report.sent.filter((s) => s.accepted)) {
    for (const r of sent.readings ?? []) {
      const list = perDevice.get(r.device) ?? [];
      list.push(r);
      perDevice.set(r.device, list);
    }
  }
  return perDevice;
}

/** The temperature rule of the pattern flows: warning above 80 (clear below 75), critical above 90 (clear below 85). */
export function temperatureRule(raiseAfterReadings: number): RuleConfig {
  return {
    rule: 'above',
    measure: 'value',
    rateUnitMs: 60_000,
    hysteresis: 'explicit',
    deadband: 0,
    levels: [
      { severity: 'warning', value: 80, clear: 75 },
      { severity: 'critical', value: 90, clear: 85 },
    ],
    raise: raiseAfterReadings > 1 ? { mode: 'count', count: raiseAfterReadings } : { mode: 'immediate' },
    clear: { mode: 'immediate' },
  };
}

/** The Direct pattern's battery rule: warning below 3.3 V, clearing 0.05 V above it. */
export const BATTERY_RULE: RuleConfig = {
  rule: 'below',
  measure: 'value',
  rateUnitMs: 60_000,
  hysteresis: 'deadband',
  deadband: 0.05,
  levels: [{ severity: 'warning', value: 3.3 }],
  raise: { mode: 'immediate' },
  clear: { mode: 'immediate' },
};

type Readings = Map<string, Array<{ at: number; temperature?: number; battery?: number }>>;

/**
 * Alert episodes per device (each becomes one Case, upserted on its alert id) for readings fed in
 * order to the threshold engine with the flow's rules: the flow must have exactly these.
 */
export function expectedEpisodes(readings: Readings, ...rules: Array<[field: 'temperature' | 'battery', rule: RuleConfig]>): Map<string, number> {
  return episodesEnding(readings, 'raised', rules);
}

/** Of those episodes, the ones that cleared, per device: their Cases must be closed. */
export function expectedClears(readings: Readings, ...rules: Array<[field: 'temperature' | 'battery', rule: RuleConfig]>): Map<string, number> {
  return episodesEnding(readings, 'cleared', rules);
}

function episodesEnding(readings: Readings, change: 'raised' | 'cleared', rules: Array<[field: 'temperature' | 'battery', rule: RuleConfig]>): Map<string, number> {
  const episodes = new Map<string, number>();
  for (const [field, rule] of rules) {
    const engine = new ThresholdEngine(rule, 'expectation', {
      alert: (event) => {
        if (event.change === change) episodes.set(event.key, (episodes.get(event.key) ?? 0) + 1);
      },
    });
    for (const [device, list] of readings) for (const r of list) if (r[field] !== undefined) engine.read(device, r[field], r.at);
  }
  return episodes;
}

/** Records counted per value of a field. */
export function countBy(records: SalesforceRecord[], field: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(String(r[field]), (counts.get(String(r[field])) ?? 0) + 1);
  return counts;
}

export function sorted(map: Map<string, number>): Array<[string, number]> {
  return [...map].sort(([a], [b]) => a.localeCompare(b));
}

/** Waits until the clock passes the next whole minute (plus a margin): every minute window has closed. */
/**
 * How long to wait for the summaries once the minute is over. Windows go by arrival time: on a
 * loaded machine the last readings can reach the summary node just after that minute, and then
 * close with the next one.
 */
export const SUMMARY_WAIT_MS = 75_000;

export async function afterMinuteBoundary(marginMs = 3_000): Promise<void> {
  const wait = 60_000 - (Date.now() % 60_000) + marginMs;
  await new Promise((resolve) => setTimeout(resolve, wait));
}
