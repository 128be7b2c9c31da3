/**
 * The local Salesforce sandbox `npm start` runs when no org is configured (SF_LOGIN_URL unset):
 * in this process, its records under $IOT_DATA_DIR/salesforce/, with a connected app whose key
 * pair is made on first start (the private key stays in a file, mode 600). It sets the
 * environment the example flows read:
 *
 *   SF_LOGIN_URL, SF_CONSUMER_KEY, SF_USERNAME, SF_PRIVATE_KEY_FILE  (JWT bearer flow)
 *   SF_CLIENT_SECRET                                                (client credentials flow)
 *   SF_ORG_ID                                                       (Web-to-Case and Web-to-Lead)
 *   SF_ACCOUNT_ID                                                   (the demo customer's Account)
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSalesforceSandbox, type SalesforceSandbox } from '../sandbox/salesforce/server';

const USERNAME = 'integration@sandbox.iot-patterns.local';

interface SandboxApp {
  consumerKey: string;
  consumerSecret: string;
  publicKey: string;
}

/** The sandbox's connected app: made once, kept with its records. */
function sandboxApp(dir: string): { app: SandboxApp; privateKeyFile: string } {
  const appFile = join(dir, 'connected-app.json');
  const privateKeyFile = join(dir, 'connected-app.key');
  if (!existsSync(appFile) || !existsSync(privateKeyFile)) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    writeFileSync(privateKeyFile, privateKey, { mode: 0o600 });
    chmodSync(privateKeyFile, 0o600);
    const app: SandboxApp = { consumerKey: `3MVG9IoTSandbox${randomBytes(12).toString('hex')}`, consumerSecret: randomBytes(24).toString('hex'), publicKey };
    writeFileSync(appFile, `${JSON.stringify(app, null, 2)}\n`, { mode: 0o600 });
  }
  return { app: JSON.parse(readFileSync(appFile, 'utf8')) as SandboxApp, privateKeyFile };
}

export async function startLocalSalesforce(host: string, port: number, dataDir: string): Promise<SalesforceSandbox> {
  const { sandbox, env } = await startSandboxOrg(host, port, dataDir);
  Object.assign(process.env, env);
  return sandbox;
}

/**
 * The sandbox with its connected app and demo customer, the environment the flows read for it, and
 * its records file (JSON lines, one for every change: the benchmarks count writes in it).
 */
export async function startSandboxOrg(host: string, port: number, dataDir: string): Promise<{ sandbox: SalesforceSandbox; env: Record<string, string>; recordsFile: string }> {
  const dir = join(dataDir, 'salesforce');
  mkdirSync(dir, { recursive: true });
  const { app, privateKeyFile } = sandboxApp(dir);
  const recordsFile = join(dir, 'records.jsonl');
  const sandbox = await startSalesforceSandbox({
    host,
    port,
    dataFile: recordsFile,
    apps: [{ consumerKey: app.consumerKey, consumerSecret: app.consumerSecret, certificate: app.publicKey, runAs: USERNAME }],
    users: [{ username: USERNAME }],
  });
  // The customer the example devices belong to: their Assets need an Account.
  const accountId = sandbox.ensureRecord('Account', { Name: 'Acme Water (demo customer)', Industry: 'Utilities' }, 'Name');
  const env = {
    SF_LOGIN_URL: sandbox.url,
    SF_CONSUMER_KEY: app.consumerKey,
    SF_USERNAME: USERNAME,
    SF_PRIVATE_KEY_FILE: privateKeyFile,
    SF_CLIENT_SECRET: app.consumerSecret,
    SF_ORG_ID: sandbox.orgId,
    SF_ACCOUNT_ID: accountId,
  };
  return { sandbox, env, recordsFile };
}
