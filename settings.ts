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
 *   NODE_RED_ADMIN_USER         who may use the editor and the admin API, and the bcrypt hash of
 *   NODE_RED_ADMIN_PASSWORD_HASH  their password (`npx node-red admin hash-pw`); required when
 *                               NODE_RED_HOST is not a loopback address
 *   IOT_HTTP_MAX_BODY           the most an http in endpoint reads of a request body, in bytes
 *                               (default 1048576); npm start answers 413 past it
 *   NODE_RED_HTTPS_KEY_FILE     with NODE_RED_HTTPS_CERT_FILE: serve the editor and the HTTP
 *   NODE_RED_HTTPS_CERT_FILE    endpoints over https, asking clients for a certificate (devices
 *                               with X.509 identities; browsers without one are served as usual)
 *   IOT_BENCH_PEERS             1 loads the benchmark peers' nodes (node-red-contrib-influxdb), which
 *                               the palette otherwise leaves out (npm run bench patterns sets it)
 */
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
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

/** 127.0.0.0/8, ::1 and localhost: only this machine can reach a server listening there. */
function isLoopback(host: string): boolean {
  const address = host.replace(/^\[|\]$/g, '').toLowerCase();
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return address === 'localhost' || address === '::1' || (isIPv4(v4) && v4.startsWith('127.'));
}

/**
 * Node-RED's adminAuth from NODE_RED_ADMIN_USER and NODE_RED_ADMIN_PASSWORD_HASH (full rights);
 * none when neither is set. Listening beyond loopback without it would give anyone on the network
 * the editor (and with it the flows' secrets and the machine: function nodes run code).
 */
function adminAuth(host: string): object | undefined {
  const username = process.env.NODE_RED_ADMIN_USER ?? '';
  const password = process.env.NODE_RED_ADMIN_PASSWORD_HASH ?? '';
  const how = 'set NODE_RED_ADMIN_USER and NODE_RED_ADMIN_PASSWORD_HASH (a bcrypt hash, made with: npx node-red admin hash-pw)';
  if (username === '' && password === '') {
    if (isLoopback(host)) return undefined;
    throw new Error(`NODE_RED_HOST=${host} is not a loopback address: the editor would be open to the network without a login; ${how}`);
  }
  if (username === '' || password === '') throw new Error(`adminAuth needs both variables: ${how}`);
  // Node-RED compares a login with bcrypt: a password that is not a hash would never match.
  if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(password)) throw new Error(`NODE_RED_ADMIN_PASSWORD_HASH is not a bcrypt hash; ${how}`);
  return { type: 'credentials', users: [{ username, password, permissions: '*' }] };
}

/** A whole number of bytes from the environment, or the default. */
function bytesFromEnv(variable: string, fallback: number): number {
  const value = process.env[variable];
  if (value === undefined || value === '') return fallback;
  const bytes = Number(value);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`${variable} must be a number of bytes, not "${value}"`);
  return bytes;
}

mkdirSync(userDir, { recursive: true });

const uiHost = process.env.NODE_RED_HOST ?? '127.0.0.1';

/**
 * https for the editor and the endpoints, when a key and certificate are given. Client
 * certificates are asked for, not required, and not judged here: iot-device-auth hands them to
 * the device registry, whose fleets decide what each is worth.
 */
function httpsSettings(): { key: Buffer; cert: Buffer; requestCert: true; rejectUnauthorized: false } | undefined {
  const keyFile = process.env.NODE_RED_HTTPS_KEY_FILE;
  const certFile = process.env.NODE_RED_HTTPS_CERT_FILE;
  if (!keyFile && !certFile) return undefined;
  if (!keyFile || !certFile) throw new Error('NODE_RED_HTTPS_KEY_FILE and NODE_RED_HTTPS_CERT_FILE go together: set both for https, or neither');
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), requestCert: true, rejectUnauthorized: false };
}
const https = httpsSettings();

const settings = {
  uiHost,
  uiPort: Number(process.env.PORT ?? 1880),
  userDir,
  flowFile: 'flows.json',
  flowFilePretty: true,
  credentialSecret,
  ...(https ? { https } : {}),
  /** This package is loaded as a module from here, with its examples/ folder. */
  nodesDir: [packageRoot],
  httpAdminRoot: '/',
  httpNodeRoot: '/',
  adminAuth: adminAuth(uiHost),
  /** The most the admin API reads of a body (Node-RED's default, 5 MB): a deploy of large flows. */
  apiMaxLength: 5 * 1024 * 1024,
  /**
   * The most an http in endpoint reads of a body. Node-RED has no such setting (an http in node
   * with "Do not parse" reads the whole body, however large, before any middleware of the
   * settings runs), so npm start applies it in front of Node-RED (scripts/http-front.ts).
   */
  httpNodeMaxLength: bytesFromEnv('IOT_HTTP_MAX_BODY', 1024 * 1024),
  /**
   * Node-RED's admin API sets `Access-Control-Allow-Origin: *` on every answer (the endpoints'
   * too, since they share its root) just before this runs: taken off again. npm start refuses
   * cross-origin requests outright (scripts/http-front.ts).
   */
  httpAdminMiddleware: (_req: unknown, res: { removeHeader(name: string): void }, next: () => void) => {
    res.removeHeader('Access-Control-Allow-Origin');
    next();
  },
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
