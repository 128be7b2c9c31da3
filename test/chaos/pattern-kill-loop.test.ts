/**
 * Accepted means durable, under kill -9 (issue 11 item 1): each buffering pattern flow as shipped,
 * fed by the simulator's devices (which resend whatever was not acknowledged, as devices do), is
 * killed with SIGKILL ten times at random moments and started again on the same ports and data.
 * In the end every reading a device was told was delivered is in the store, once: at least once
 * through the queue, and the store keeps one point per device and time.
 *
 * Buffered by Partners is left out: its sink, the Salesforce sandbox, runs inside the process
 * that is killed, so a kill takes records the flow had written (and been told were written).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceKeys, masterSecret } from '../../simulator/credentials';
import { Simulation } from '../../simulator/run';
import type { PatternName } from '../../simulator/scenarios';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';
import { readingsPerDevice, sorted } from '../support/patterns';
import { exportSeries, freePort, startVictoriaMetrics, type ManagedServer } from '../support/services';
import { sleep } from '../support/wait';

const KILLS = 10;

const CASES: Array<{ pattern: PatternName; file: string; devices: number; rate: number }> = [
  { pattern: 'buffered', file: 'pattern-3-buffered.json', devices: 20, rate: 5 },
  { pattern: 'gateway', file: 'pattern-4-gateway.json', devices: 4, rate: 5 },
  // The vendor gives times in whole seconds: one callback per device every two seconds keeps them apart.
  { pattern: 'cloudy', file: 'pattern-5-cloudy.json', devices: 40, rate: 0.5 },
  { pattern: 'double', file: 'pattern-8-double-buffered.json', devices: 20, rate: 5 },
];

const started: NodeRedProcess[] = [];
let store: ManagedServer | undefined;
afterEach(async () => {
  // The first process owns the data folder: it is disposed last.
  for (const node of started.splice(0).reverse()) await node.dispose();
  await store?.dispose();
  store = undefined;
});

describe.each(CASES)('$pattern killed with SIGKILL again and again while its devices report', ({ pattern, file, devices, rate }) => {
  it(`keeps every reading it acknowledged, over ${KILLS} kills`, async () => {
    store = await startVictoriaMetrics();
    const ports = { PORT: await freePort(), IOT_BUFFERED_MQTT_PORT: await freePort(), IOT_GATEWAY_MQTT_PORT: await freePort() };
    const env = { INFLUX_URL: store.url, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };
    const flows = JSON.parse(readFileSync(join(repoRoot, 'flows', file), 'utf8')) as unknown[];
    let node = await NodeRedProcess.start({ flows, env });
    started.push(node);
    const dataDir = node.dataDir;
    const simulation = new Simulation({
      patterns: [pattern],
      devices,
      rate,
      duration: Infinity,
      bad: false,
      seed: 23,
      model: { silenceChance: 0 },
      keys: new DeviceKeys(masterSecret(dataDir)),
      target: { http: `http://127.0.0.1:${ports.PORT}`, brokerHost: '127.0.0.1', brokerPorts: { buffered: ports.IOT_BUFFERED_MQTT_PORT, gateway: ports.IOT_GATEWAY_MQTT_PORT } },
      // Senders resend through every restart: what was not acknowledged by the end may take a while.
      settleMs: 180_000,
    });
    const running = simulation.run();
    const kills: string[] = [];
    for (let kill = 1; kill <= KILLS; kill++) {
      const after = 3_000 + Math.floor(Math.random() * 7_000);
      await sleep(after);
      kills.push(`kill ${kill} after ${after} ms, ${simulation.sent.filter((s) => s.accepted).length} messages acknowledged`);
      await node.crash();
      node = await NodeRedProcess.start({ dataDir, env });
      started.push(node);
    }
    await sleep(5_000);
    simulation.stop();
    const report = await running;
    console.log(`[kill loop] ${pattern}: ${kills.join('; ')}`);

    expect(report.sent.filter((s) => !s.accepted).map((s) => `${s.sender} at ${new Date(s.at).toISOString()}: ${String(s.status)}`)).toEqual([]);
    const expected = new Map([...readingsPerDevice(report)].map(([device, list]) => [device, list.length]));
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    const series = await exportSeries(store, 'readings_temperature', total, 180_000);
    const stored = new Map<string, number>();
    for (const s of series) stored.set(s.metric.device, (stored.get(s.metric.device) ?? 0) + s.values.length);
    expect(sorted(stored)).toEqual(sorted(expected));
  });
});
