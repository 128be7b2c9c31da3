/**
 * Node-RED settings for `npm start` and for the tests that run a whole Node-RED. Everything a
 * deployment changes comes from the environment:
 *
 *   PORT                        editor and HTTP endpoints (default 1880)
 *   NODE_RED_HOST               interface to listen on (default 127.0.0.1)
 *   IOT_DATA_DIR                where runtime data lives (default .data/ in the repository)
 *   NODE_RED_USER_DIR           the Node-RED user directory (default $IOT_DATA_DIR/node-red)
 *   NODE_RED_CREDENTIAL_SECRET  key that encrypts node credentials (default: generated once,
 *                               kept in $IOT_DATA_DIR/credential-secret)
 *   NODE_RED_LOG_LEVEL          fatal, error, warn, info (default), debug, trace
 *   IOT_DEVICE_MASTER_SECRET    the master secret the example flows derive device keys from
 *                               (default: generated once, kept in $IOT_DATA_DIR/device-master-secret)
 *   IOT_DEVICES_MQTT_PORT       the example flows' device brokers: device-auth (1884),
 *   IOT_BUFFERED_MQTT_PORT      Buffered pattern (1885) and Gateway pattern (1886)
 *   IOT_GATEWAY_MQTT_PORT
 *   IOT_BENCH_PEERS             1 loads the benchmark peers' nodes (node-red-contrib-influxdb), which
 *                               the palette otherwise leaves out (npm run bench patterns sets it)
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository (this file compiles to dist/settings.js). */
const packageRoot = resolve(__dirname, '..');
const dataDir = resolve(process.env.IOT_DATA_DIR ?? join(packageRoot, '.data'));
const userDir = resolve(process.env.NODE_RED_USER_DIR ?? join(dataDir, 'node-red'));

/** A secret from the environment, else generated once and kept in a private file, with a warning. */
function keptSecret(variable: string, file: string, make: () => string, why: string): string {
  const fromEnv = process.env[variable];
  if (fromEnv) return fromEnv;
  const path = join(dataDir, file);
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = make();
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  console.warn(`[settings] ${variable} is not set: generated one and stored it in ${path}. ${why}`);
  return secret;
}

const credentialSecret = keptSecret(
  'NODE_RED_CREDENTIAL_SECRET',
  'credential-secret',
  () => randomBytes(32).toString('hex'),
  'Keep that file, or set the variable, or credentials saved with it cannot be read.',
);

// The example flows' devices have keys derived from this (iot-device-registry, derived keys).
process.env.IOT_DEVICE_MASTER_SECRET = keptSecret(
  'IOT_DEVICE_MASTER_SECRET',
  'device-master-secret',
  () => `hex:${randomBytes(32).toString('hex')}`,
  'The example devices (and npm run simulate) derive their keys from it.',
);

// Ports of the example flows' authenticating MQTT brokers (iot-mqtt-broker nodes).
process.env.IOT_DEVICES_MQTT_PORT ??= '1884';
process.env.IOT_BUFFERED_MQTT_PORT ??= '1885';
process.env.IOT_GATEWAY_MQTT_PORT ??= '1886';

mkdirSync(userDir, { recursive: true });

const settings = {
  uiHost: process.env.NODE_RED_HOST ?? '127.0.0.1',
  uiPort: Number(process.env.PORT ?? 1880),
  userDir,
  flowFile: 'flows.json',
  flowFilePretty: true,
  credentialSecret,
  /** This package is loaded as a module from here, with its examples/ folder. */
  nodesDir: [packageRoot],
  httpAdminRoot: '/',
  httpNodeRoot: '/',
  functionExternalModules: false,
  diagnostics: { enabled: true, ui: true },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },
  externalModules: {
    autoInstall: false,
    palette: {
      // Development dependencies with nodes of their own (benchmark peers) stay out of the palette,
      // except for the pattern benchmark's peer chain (IOT_BENCH_PEERS=1), which runs on them.
      denyList: process.env.IOT_BENCH_PEERS === '1' ? [] : ['node-red-contrib-influxdb'],
    },
    modules: { allowInstall: false },
  },
  editorTheme: {
    page: { title: 'IoT patterns · Node-RED' },
    header: { title: 'IoT patterns' },
    projects: { enabled: false },
    tours: false,
    // The machine is offline: no online catalogue, so the palette manager shows no error.
    palette: { catalogues: [] },
  },
  logging: {
    console: { level: process.env.NODE_RED_LOG_LEVEL ?? 'info', metrics: false, audit: false },
  },
};

export = settings;
