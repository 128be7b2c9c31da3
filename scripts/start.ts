/**
 * `npm start`: Node-RED with this pack on 127.0.0.1:1880, an embedded MQTT broker on
 * 127.0.0.1:1883 (unless MQTT_URL names another), the local Salesforce sandbox on
 * 127.0.0.1:1882 (unless SF_LOGIN_URL names an org), a time-series store (INFLUX_URL, or a
 * managed victoria-metrics on 127.0.0.1:8428), and on first start the example flows deployed as
 * tabs. Ctrl-C (SIGINT) or SIGTERM stops everything cleanly.
 *
 * `npm start -- --simulate` also runs the device simulator against the pattern flows (see
 * scripts/simulate.ts), so that Cases and points appear within a minute.
 *
 * PORT, MQTT_PORT, SF_SANDBOX_PORT and INFLUX_PORT may be 0 for free ports (the tests do this); the URLs
 * printed are the real ones. NODE_RED_HOST moves the editor and the endpoints only: the broker,
 * the sandbox and the store stay on loopback (none of them has a login of its own).
 * NODE_RED_PATH runs another Node-RED than the development dependency (the Node-RED 5 leg).
 */
import type { Server } from 'node:http';
import type { ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { SalesforceSandbox } from '../sandbox/salesforce/server';
import { DeviceKeys, masterSecret } from '../simulator/credentials';
import { Simulation } from '../simulator/run';
import { DEFAULT_TARGET, PATTERNS } from '../simulator/scenarios';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker';
import { HttpFront, type RuntimeEvents } from './http-front';
import { startLocalSalesforce } from './salesforce-sandbox';
import { startTimeSeriesStore, type TimeSeriesStore } from './timeseries-store';
import { seedFlows } from './seed-flows';

/** The fleet dashboard example runs on FlowFuse Dashboard 2.0, a development dependency. */
function dashboardInstalled(): boolean {
  try {
    createRequire(__filename).resolve('@flowfuse/node-red-dashboard/package.json');
    return true;
  } catch {
    return false;
  }
}

interface NodeRedRuntime {
  events: RuntimeEvents & { once(event: string, listener: () => void): void };
  init(server: Server, settings: object): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: unknown;
  httpNode: unknown;
}

const root = resolve(__dirname, '..', '..');
/** Where the broker, the sandbox and the store listen, whatever NODE_RED_HOST says. */
const LOOPBACK = '127.0.0.1';

/** What is running, so that a signal at any moment stops exactly that. */
interface Running {
  broker?: EmbeddedBroker;
  salesforce?: SalesforceSandbox;
  timeSeries?: TimeSeriesStore;
  server?: Server;
  RED?: NodeRedRuntime;
  simulation?: { simulation: Simulation; done: Promise<unknown> };
}

async function startAll(running: Running): Promise<void> {
  // Settings read the environment: set what the flows need before loading them.
  const settings = require('../settings') as {
    uiHost: string;
    uiPort: number;
    userDir: string;
    flowFile: string;
    httpAdminRoot: string;
    httpNodeRoot: string;
    apiMaxLength: number;
    httpNodeMaxLength: number;
    https?: ServerOptions;
  };
  const host = settings.uiHost;

  if (!process.env.MQTT_URL) {
    running.broker = await startEmbeddedBroker(LOOPBACK, Number(process.env.MQTT_PORT ?? 1883));
    process.env.MQTT_URL = running.broker.url;
  }
  const mqtt = new URL(process.env.MQTT_URL as string);
  process.env.MQTT_HOST ??= mqtt.hostname;
  process.env.MQTT_PORT = mqtt.port || '1883';

  const dataDir = resolve(process.env.IOT_DATA_DIR ?? join(root, '.data'));
  if (!process.env.SF_LOGIN_URL) {
    running.salesforce = await startLocalSalesforce(LOOPBACK, Number(process.env.SF_SANDBOX_PORT ?? 1882), dataDir);
  }
  running.timeSeries = await startTimeSeriesStore(LOOPBACK, dataDir);

  const seed = seedFlows(join(root, 'flows'), settings.userDir, settings.flowFile);
  if (seed.seeded) console.log(`First start: deployed ${seed.tabs.length} example flow(s) as tabs: ${seed.tabs.join(', ')}`);

  const nodeRedPath = process.env.NODE_RED_PATH ?? require.resolve('node-red');
  const fromNodeRed = createRequire(nodeRedPath);
  const RED = fromNodeRed(nodeRedPath) as NodeRedRuntime;
  const express = fromNodeRed('express') as () => { use(...handlers: unknown[]): void };
  const app = express();
  const front = new HttpFront({ nodeMaxBytes: settings.httpNodeMaxLength, apiMaxBytes: settings.apiMaxLength });
  const server = front.createServer(app as never, settings.https);
  RED.init(server, settings);
  app.use(settings.httpAdminRoot, RED.httpAdmin);
  app.use(settings.httpNodeRoot, RED.httpNode);
  app.use(front.notRunning);
  app.use(front.errors);
  front.watch(RED.events);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(settings.uiPort, host, () => done());
  });
  running.server = server;
  // RED.start() resolves before the flows run: the URLs are printed once they do.
  const flowsStarted = new Promise<void>((done) => RED.events.once('flows:started', done));
  running.RED = RED;
  await RED.start();
  front.started();
  await flowsStarted;
  const port = (server.address() as AddressInfo).port;
  const editor = `${settings.https ? 'https' : 'http'}://${reachable(host)}:${port}`;

  const urls = { editor: `${editor}/`, CRM: running.salesforce ? `${running.salesforce.url}/` : undefined, store: running.timeSeries?.url, dashboard: dashboardInstalled() ? `${editor}/dashboard` : undefined };
  console.log('');
  console.log(`Node-RED editor: ${urls.editor}`);
  console.log(`MQTT broker:     ${process.env.MQTT_URL}${running.broker ? ' (embedded)' : ''}`);
  console.log(running.salesforce ? `Salesforce:      ${urls.CRM} (local sandbox: its Cases, Leads and events)` : `Salesforce:      ${process.env.SF_LOGIN_URL}`);
  console.log(`Time series:     ${running.timeSeries?.url} (${running.timeSeries?.description})`);
  if (urls.dashboard) console.log(`Fleet dashboard: ${urls.dashboard}`);
  console.log(`User directory:  ${settings.userDir}`);
  if (process.argv.includes('--simulate')) running.simulation = simulate(editor, dataDir, urls);
  console.log('Press Ctrl-C to stop.');
}

/** A host to put in a URL: a wildcard address (all interfaces) is reached on loopback. */
function reachable(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return LOOPBACK;
  return host.includes(':') ? `[${host}]` : host;
}

/** Devices for every pattern flow, until Ctrl-C: one of each pattern runs hot early on. */
function simulate(http: string, dataDir: string, urls: Record<string, string | undefined>): Running['simulation'] {
  const simulation = new Simulation({
    patterns: PATTERNS,
    devices: 3,
    rate: 0.5,
    duration: Infinity,
    bad: false,
    seed: Date.now() % 100_000,
    keys: new DeviceKeys(masterSecret(dataDir)),
    target: { ...DEFAULT_TARGET, http, brokerPorts: { buffered: Number(process.env.IOT_BUFFERED_MQTT_PORT), gateway: Number(process.env.IOT_GATEWAY_MQTT_PORT) } },
    overheatAt: { 0: 3 },
    log: (line) => console.log(`[simulate] ${line}`),
    urls,
    // Ctrl-C stops the flows soon after: what is not acknowledged by then is not waited for.
    settleMs: 3_000,
  });
  console.log(`Simulating:      ${PATTERNS.length} patterns, 3 devices each, a message every 2 s; a summary every 30 s (npm run simulate for more)`);
  const done = simulation.run().catch((err: Error) => console.error(`[simulate] stopped: ${err.message}`));
  return { simulation, done };
}

async function stopAll(running: Running): Promise<void> {
  if (running.simulation) {
    running.simulation.simulation.stop();
    await Promise.race([running.simulation.done, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  }
  await running.RED?.stop();
  if (running.server) {
    const server = running.server;
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  }
  await running.broker?.close();
  await running.salesforce?.close();
  await running.timeSeries?.close();
}

function main(): void {
  const running: Running = {};
  const startup = startAll(running);
  let stopping = false;
  // Handlers go in first: a signal during start-up waits for it, then stops what started.
  const stop = (signal: string): void => {
    if (stopping) {
      console.log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: stopping`);
    startup
      .catch(() => undefined)
      .then(() => stopAll(running))
      .then(
        () => {
          console.log('Stopped.');
          process.exit(0);
        },
        (err: Error) => {
          console.error(`Could not stop cleanly: ${err.message}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  startup.catch((err: Error & { code?: string }) => {
    const hint = err.code === 'EADDRINUSE' ? ' (is another Node-RED, MQTT broker or Salesforce sandbox running? set PORT or MQTT_PORT, or SF_SANDBOX_PORT)' : '';
    console.error(`Could not start: ${err.message}${hint}`);
    stopAll(running).finally(() => process.exit(1));
  });
}

main();
