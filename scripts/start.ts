/**
 * `npm start`: Node-RED with this pack on 127.0.0.1:1880, an embedded MQTT broker on
 * 127.0.0.1:1883 (unless MQTT_URL names another), and on first start the example flows deployed
 * as tabs. Ctrl-C (SIGINT) or SIGTERM stops everything cleanly.
 *
 * PORT and MQTT_PORT may be 0 for free ports (the tests do this); the URLs printed are the real ones.
 * NODE_RED_PATH runs another Node-RED than the development dependency (the Node-RED 5 leg).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker';
import { seedFlows } from './seed-flows';

interface NodeRedRuntime {
  events: { once(event: string, listener: () => void): void };
  init(server: Server, settings: object): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: unknown;
  httpNode: unknown;
}

const root = resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  // Settings read the environment: set what the flows need before loading them.
  const settings = require('../settings') as { uiHost: string; uiPort: number; userDir: string; flowFile: string; httpAdminRoot: string; httpNodeRoot: string };
  const host = settings.uiHost;

  let broker: EmbeddedBroker | undefined;
  if (!process.env.MQTT_URL) {
    broker = await startEmbeddedBroker(host, Number(process.env.MQTT_PORT ?? 1883));
    process.env.MQTT_URL = broker.url;
  }
  const mqtt = new URL(process.env.MQTT_URL as string);
  process.env.MQTT_HOST ??= mqtt.hostname;
  process.env.MQTT_PORT = mqtt.port || '1883';

  const seed = seedFlows(join(root, 'flows'), settings.userDir, settings.flowFile);
  if (seed.seeded) console.log(`First start: deployed ${seed.tabs.length} example flow(s) as tabs: ${seed.tabs.join(', ')}`);

  const nodeRedPath = process.env.NODE_RED_PATH ?? require.resolve('node-red');
  const fromNodeRed = createRequire(nodeRedPath);
  const RED = fromNodeRed(nodeRedPath) as NodeRedRuntime;
  const express = fromNodeRed('express') as () => { use(path: string, handler: unknown): void };
  const app = express();
  const server = createServer(app as never);
  RED.init(server, settings);
  app.use(settings.httpAdminRoot, RED.httpAdmin);
  app.use(settings.httpNodeRoot, RED.httpNode);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(settings.uiPort, host, () => done());
  });
  // RED.start() resolves before the flows run: the URLs are printed once they do.
  const flowsStarted = new Promise<void>((done) => RED.events.once('flows:started', done));
  await RED.start();
  await flowsStarted;
  const port = (server.address() as AddressInfo).port;

  console.log('');
  console.log(`Node-RED editor: http://${host}:${port}/`);
  console.log(`MQTT broker:     ${process.env.MQTT_URL}${broker ? ' (embedded)' : ''}`);
  console.log(`User directory:  ${settings.userDir}`);
  console.log('Press Ctrl-C to stop.');

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      console.log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: stopping`);
    try {
      await RED.stop();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      await broker?.close();
      console.log('Stopped.');
      process.exit(0);
    } catch (err) {
      console.error(`Could not stop cleanly: ${(err as Error).message}`);
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err: Error & { code?: string }) => {
  const hint = err.code === 'EADDRINUSE' ? ' (is another Node-RED or MQTT broker running? set PORT or MQTT_PORT)' : '';
  console.error(`Could not start: ${err.message}${hint}`);
  process.exit(1);
});
