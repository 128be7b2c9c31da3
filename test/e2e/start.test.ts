/**
 * `npm start` as a newcomer meets it: Node-RED with the pack, the example flows as tabs on first
 * start, the user's edits kept afterwards, an embedded MQTT broker (or the one MQTT_URL names),
 * the local Salesforce sandbox with its CRM page (unless SF_LOGIN_URL names an org), and a clean
 * stop on Ctrl-C.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { disposedAfterAll } from '../support/node-red-after-all';
import { NodeRedProcess } from '../support/node-red-process';
import { exportSeries, freePort, pointsNow, startMosquitto, writeAndReadBack, type ManagedServer } from '../support/services';
import { eventually, sleep } from '../support/wait';

const PACKAGE = '@iot-patterns/node-red-enterprise-iot';
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});
// Registered after the cleanup above, so run before it: the processes stop before the servers they use.
const started = disposedAfterAll();

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  expect(response.ok, `${init?.method ?? 'GET'} ${url}: ${response.status}`).toBe(true);
  return (await response.json()) as T;
}

/** The CRM page of the local Salesforce sandbox, as npm start prints it (just after the editor URL). */
function salesforceUrl(node: NodeRedProcess): Promise<string> {
  return eventually(`the Salesforce sandbox URL in:\n${node.output}`, () => /Salesforce:\s+(http\S+?)\/? \(local sandbox/.exec(node.output)?.[1], 5_000, 20);
}

describe('npm start', () => {
  it('starts Node-RED with the pack and the examples deployed as tabs, then stops cleanly on Ctrl-C', async () => {
    const node = await started();
    expect(node.output).toMatch(/First start: deployed \d+ example flow\(s\) as tabs/);
    expect(node.editorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(node.mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(node.output).toContain('(embedded)');

    const editor = await fetch(`${node.editorUrl}/`).then((r) => r.text());
    expect(editor).toContain('<title>IoT patterns · Node-RED</title>');

    const modules = await json<Array<{ module: string; types: string[]; enabled: boolean }>>(`${node.editorUrl}/nodes`, { headers: { Accept: 'application/json' } });
    const pack = modules.filter((m) => m.module === PACKAGE);
    const declared = Object.keys(JSON.parse(readFileSync('package.json', 'utf8'))['node-red'].nodes);
    expect(pack.flatMap((m) => m.types).sort()).toEqual(expect.arrayContaining(declared.map((name) => name)));
    expect(pack.every((m) => m.enabled)).toBe(true);
    expect(modules.some((m) => m.module === 'node-red-contrib-influxdb')).toBe(false);

    const flows = await json<Array<{ type: string; label?: string }>>(`${node.editorUrl}/flows`);
    const tabs = flows.filter((n) => n.type === 'tab').map((n) => n.label);
    expect(tabs).toContain('Threshold alerts');

    const examples = await json<Array<{ fn: string }>>(`${node.editorUrl}/library/examples/flows/${PACKAGE}`);
    expect(examples.map((e) => e.fn)).toContain('threshold-alerts');

    expect(tabs).toContain('Salesforce: alert to Case');
    const salesforce = await salesforceUrl(node);
    expect(salesforce).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const page = await fetch(`${salesforce}/`).then((r) => r.text());
    expect(page).toContain('<title>Salesforce sandbox');

    const client = await mqtt.connectAsync(node.mqttUrl);
    await client.subscribeAsync('start/test');
    const got = new Promise<string>((resolve) => client.on('message', (_t, payload) => resolve(payload.toString())));
    await client.publishAsync('start/test', 'hello');
    expect(await got).toBe('hello');
    await client.endAsync();

    expect(await node.stop('SIGINT')).toBe(0);
    expect(node.output).toContain('SIGINT: stopping');
    expect(node.output).toContain('Stopped.');
    expect(node.output).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
  });

  it('keeps the user edits on later starts, and stops on SIGTERM too', async () => {
    const first = await started();
    const flows = await json<Array<Record<string, unknown>>>(`${first.editorUrl}/flows`);
    const tab = flows.find((n) => n.type === 'tab') as Record<string, unknown>;
    tab.label = 'My edited tab';
    const deployed = await fetch(`${first.editorUrl}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    expect(deployed.status).toBe(204);
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await started({ dataDir: first.dataDir });
    expect(second.output).not.toContain('First start');
    const again = await json<Array<Record<string, unknown>>>(`${second.editorUrl}/flows`);
    expect(again.filter((n) => n.type === 'tab').map((n) => n.label)).toContain('My edited tab');
    expect(await second.stop()).toBe(0);
  });

  it('uses the broker MQTT_URL names instead of starting one', async () => {
    const mosquitto: ManagedServer = await startMosquitto();
    cleanup.push(() => mosquitto.dispose());
    const node = await started({ env: { MQTT_URL: mosquitto.url } });
    expect(node.mqttUrl).toBe(mosquitto.url);
    expect(node.output).not.toContain('(embedded)');
    expect(await node.stop()).toBe(0);
  });

  it('runs the local Salesforce sandbox: the example flow opens a Case there, kept across restarts', async () => {
    const first = await started();
    const salesforce = await salesforceUrl(first);
    for (const inject of ['salesforce.raise', 'salesforce.escalate', 'salesforce.clear']) {
      const pressed = await fetch(`${first.editorUrl}/inject/${inject}`, { method: 'POST' });
      expect(pressed.status).toBe(200);
      // Each change after the previous one is written, as a person would press them.
      await eventually(`${inject} written`, async () => {
        const cases = await json<Array<Record<string, unknown>>>(`${salesforce}/_sandbox/records?type=Case`);
        const done = { 'salesforce.raise': 'Medium', 'salesforce.escalate': 'High', 'salesforce.clear': 'High' }[inject];
        return cases.length === 1 && cases[0].Priority === done && (inject !== 'salesforce.clear' || String(cases[0].Description).includes('Cleared:')) ? true : undefined;
      });
    }
    const view = await json<{ cases: { total: number; rows: Array<Record<string, unknown>> } }>(`${salesforce}/_sandbox/view`);
    expect(view.cases.total).toBe(1);
    expect(view.cases.rows[0]).toMatchObject({ Subject: 'temperature above 90 on pump-17', Priority: 'High', Origin: 'IoT', IoT_Device_Id__c: 'pump-17', IoT_Alert_Id__c: 'pump-17-temperature-1795300000000' });
    expect(statSync(join(first.dataDir, 'salesforce', 'connected-app.key')).mode & 0o777).toBe(0o600);
    expect(await first.stop()).toBe(0);

    const second = await started({ dataDir: first.dataDir });
    const secondUrl = await salesforceUrl(second);
    const cases = await json<Array<Record<string, unknown>>>(`${secondUrl}/_sandbox/records?type=Case`);
    expect(cases.map((c) => c.IoT_Alert_Id__c)).toEqual(['pump-17-temperature-1795300000000']);
    // The same connected app: the flow logs in again and updates the same Case.
    await fetch(`${second.editorUrl}/inject/salesforce.raise`, { method: 'POST' });
    await eventually('the Case updated after the restart', async () => {
      const again = await json<Array<Record<string, unknown>>>(`${secondUrl}/_sandbox/records?type=Case`);
      return again.length === 1 && again[0].Priority === 'Medium' ? true : undefined;
    });
    expect(await second.stop()).toBe(0);
  });

  it('uses the org SF_LOGIN_URL names instead of starting the sandbox', async () => {
    const node = await started({ env: { SF_LOGIN_URL: 'https://login.salesforce.com' } });
    await eventually('the Salesforce line', () => (node.output.includes('User directory:') ? true : undefined), 5_000, 20);
    expect(node.output).toMatch(/Salesforce:\s+https:\/\/login\.salesforce\.com\n/);
    expect(node.output).not.toContain('local sandbox');
    expect(await node.stop()).toBe(0);
  });

  it('runs a managed victoria-metrics for the flows, and stops it, even after a kill -9', async () => {
    const port = await freePort();
    const first = await started({ env: { INFLUX_PORT: String(port) } });
    expect(first.timeSeriesUrl).toBe(`http://127.0.0.1:${port}`);
    expect(first.output).toMatch(/Time series: .*managed victoria-metrics/);
    expect((await fetch(`${first.timeSeriesUrl}/health`)).status).toBe(200);
    await first.crash();
    // The store a killed npm start left behind is stopped by the next one, which takes its port.
    const second = await started({ dataDir: first.dataDir, env: { INFLUX_PORT: String(port) } });
    expect((await fetch(`${second.timeSeriesUrl}/health`)).status).toBe(200);
    expect(await second.stop()).toBe(0);
    await expect(fetch(`${second.timeSeriesUrl}/health`)).rejects.toThrow();
  });

  it('keeps every point the store showed before a kill -9 of npm start: the next start lets the leftover store write them', async () => {
    const first = await started();
    const store = { url: first.timeSeriesUrl };
    const from = Date.now() - 3_600_000;
    // The series exists already (a new one becomes searchable only after about ten seconds).
    expect((await fetch(`${store.url}/write?db=iot&precision=ms`, { method: 'POST', body: `crash_probe,device=probe v=-1 ${from}` })).status).toBe(204);
    await exportSeries(store, 'crash_probe_v', 1);
    // A thousand points answered 204 and read back: a flow's buffer would have released them.
    await writeAndReadBack(store, from, 1_000, 1_001);
    await first.crash();
    const second = await started({ dataDir: first.dataDir });
    let after = 0;
    await eventually('the points after the restart', async () => ((after = await pointsNow({ url: second.timeSeriesUrl }, 'crash_probe_v')) >= 1_001 ? true : undefined), 10_000).catch(() => undefined);
    expect(after).toBe(1_001);
    expect(second.output).toMatch(/Stopping the victoria-metrics a killed npm start left running \(pid \d+\)/);
    expect(await second.stop()).toBe(0);
  });

  it('on a Ctrl-C in the terminal, stops the managed store only after the flows have written to it', async () => {
    const node = await started({ env: { NODE_RED_LOG_LEVEL: 'info' } });
    expect(node.output).toMatch(/Time series: .*managed victoria-metrics/);
    // The time-series example writes a reading a second, sent once a second: whatever is not yet
    // sent when Ctrl-C comes is written as the flows stop, so the store must still be there.
    await sleep(3_500);
    expect(await node.interrupt()).toBe(0);
    expect(node.output).toContain('Stopped flows');
    expect(node.output).not.toMatch(/\[error\]/);
    await expect(fetch(`${node.timeSeriesUrl}/health`)).rejects.toThrow();
  });

  it('uses the store INFLUX_URL names instead of starting one', async () => {
    const node = await started({ env: { INFLUX_URL: 'http://127.0.0.1:9' } });
    expect(node.timeSeriesUrl).toBe('http://127.0.0.1:9');
    expect(node.output).toContain('(from INFLUX_URL)');
    expect(await node.stop()).toBe(0);
  });

  it('with --simulate, shows Cases on the CRM page and points in the store within a minute', async () => {
    const node = await started({ args: ['--simulate'] });
    const startedAt = Date.now();
    expect(node.output).toContain('Simulating:');
    const cases = await eventually(
      'Cases in the sandbox',
      async () => {
        const records = (await fetch(`${node.salesforceUrl}/_sandbox/records?type=Case`).then((r) => r.json())) as unknown[];
        return records.length > 0 ? records : undefined;
      },
      60_000,
      1_000,
    );
    expect(cases.length).toBeGreaterThan(0);
    const points = await exportSeries({ url: node.timeSeriesUrl }, 'readings_temperature', 1, 60_000 - (Date.now() - startedAt));
    expect(points.length).toBeGreaterThan(0);
    expect(Date.now() - startedAt).toBeLessThan(60_000);
    const page = await fetch(`${node.salesforceUrl}/`).then((r) => r.text());
    expect(page).toContain('Cases');
    // The terminal: one summary line every 30 s, the addresses repeated at its end (they never scroll away).
    await eventually('the first summary line', () => (/\[simulate\] \d/.test(node.output) ? true : undefined), 45_000, 500);
    const simulated = node.output.split('\n').filter((line) => line.startsWith('[simulate]'));
    expect(simulated.length).toBeLessThanOrEqual(Math.floor((Date.now() - startedAt) / 30_000) + 1);
    for (const line of simulated) {
      expect(line).toMatch(/^\[simulate\] \d\d:\d\d:\d\d · \d+ sent, \d+ acknowledged, 0 refused, .*\d+ resent · /);
      expect(line).toContain(` · editor ${node.editorUrl}/ · CRM ${node.salesforceUrl}/ · store ${node.timeSeriesUrl}`);
    }
    expect(await node.stop()).toBe(0);
    expect(node.output).not.toMatch(/\[error\]/);
  });

  it('says what is wrong, and exits, when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', () => done()));
    cleanup.push(() => new Promise<void>((done) => blocker.close(() => done())));
    const port = String((blocker.address() as AddressInfo).port);
    await expect(NodeRedProcess.start({ env: { PORT: port } })).rejects.toThrow(/exited with code 1 at start[\s\S]*Could not start: .*EADDRINUSE.*set PORT or MQTT_PORT/);
  });

  it('generates the credential secret once, keeps it private, and warns', async () => {
    const first = await started({ env: { NODE_RED_CREDENTIAL_SECRET: '' } });
    expect(first.output).toContain('NODE_RED_CREDENTIAL_SECRET is not set');
    const file = join(first.dataDir, 'credential-secret');
    const secret = readFileSync(file, 'utf8');
    expect(secret.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await first.stop();
    const second = await started({ dataDir: first.dataDir, env: { NODE_RED_CREDENTIAL_SECRET: '' } });
    expect(second.output).not.toContain('NODE_RED_CREDENTIAL_SECRET is not set');
    expect(readFileSync(file, 'utf8')).toBe(secret);
    await second.stop();
  });
});
