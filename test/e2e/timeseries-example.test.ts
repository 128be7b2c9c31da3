/**
 * The timeseries-readings example in a whole Node-RED (npm start): with INFLUX_URL set it writes
 * the simulated gateway's readings into victoria-metrics; a token typed into the connection is
 * kept out of flows.json; with no store reachable the flow still deploys and logs the problem
 * once, not once a reading; without INFLUX_URL it writes into the store npm start manages (a
 * missing URL outside npm start is covered by the node tests).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRedProcess } from '../support/node-red-process';
import { exportSeries, freePort, startVictoriaMetrics, type ManagedServer } from '../support/services';
import { sleep } from '../support/wait';

const TOKEN = 'example-token-that-must-stay-secret';
let vm: ManagedServer;
const running: NodeRedProcess[] = [];

beforeAll(async () => {
  vm = await startVictoriaMetrics();
});
afterAll(async () => {
  for (const node of running) await node.dispose();
  await vm?.dispose();
});

async function started(env: Record<string, string>): Promise<NodeRedProcess> {
  const node = await NodeRedProcess.start({ env });
  running.push(node);
  return node;
}

/** Log lines of the example's writer and its connection. */
const writerLines = (output: string) => output.split('\n').filter((line) => /iot-timeseries-out|iot-influxdb/.test(line));

describe('the timeseries-readings example', () => {
  it('writes the gateway readings into the database INFLUX_URL names, and keeps the token out of flows.json', async () => {
    const node = await started({ INFLUX_URL: vm.url });
    const series = await exportSeries(vm, 'climate_temperature', 6, 30_000);
    expect(series.map((s) => s.metric.sensor).sort()).toEqual(['t-1', 't-2', 't-3']);
    for (const s of series) {
      expect(s.metric).toMatchObject({ __name__: 'climate_temperature', device: 'gateway-1' });
      expect(Math.abs(s.timestamps[0] - Date.now())).toBeLessThan(60_000);
    }
    expect(await exportSeries(vm, 'climate_rssi', 3)).toHaveLength(3);

    // The user types a token into the connection and deploys.
    const flows = (await fetch(`${node.editorUrl}/flows`).then((r) => r.json())) as Array<Record<string, unknown>>;
    const store = flows.find((n) => n.id === 'timeseries.store') as Record<string, unknown>;
    store.credentials = { token: TOKEN };
    await node.deploy(flows);
    await sleep(2500);
    const userDir = join(node.dataDir, 'node-red');
    expect(readFileSync(join(userDir, 'flows.json'), 'utf8')).not.toContain(TOKEN);
    expect(readFileSync(join(userDir, 'flows_cred.json'), 'utf8')).not.toContain(TOKEN);
    expect(node.output).not.toContain(TOKEN);
    const before = (await exportSeries(vm, 'climate_temperature', 6)).reduce((n, s) => n + s.values.length, 0);
    await exportSeries(vm, 'climate_temperature', before + 3, 10_000);
    expect(writerLines(node.output)).toEqual([]);
  });

  it('deploys cleanly with no store reachable: one log line, not one a reading', async () => {
    const closed = await freePort();
    const node = await started({ INFLUX_URL: `http://127.0.0.1:${closed}` });
    await sleep(8000);
    const lines = writerLines(node.output);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\[warn\] \[iot-timeseries-out:climate\] writes to http:\/\/127\.0\.0\.1:\d+ v2 bucket readings \(org iot\) fail, trying again in [\d.]+ s \(\d+ points pending\): .*ECONNREFUSED/);
    expect(node.output).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
  });

  it('writes into the store npm start manages when INFLUX_URL is not set', async () => {
    const node = await started({ INFLUX_URL: '' });
    expect(node.output).toMatch(/Time series: .*managed victoria-metrics/);
    const series = await exportSeries({ url: node.timeSeriesUrl }, 'climate_temperature', 6, 30_000);
    expect(series.map((s) => s.metric.sensor).sort()).toEqual(['t-1', 't-2', 't-3']);
    expect(writerLines(node.output)).toEqual([]);
  });
});
