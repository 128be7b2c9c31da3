/**
 * The local Salesforce sandbox for tests: started in this process on a free loopback port with
 * a connected app that has a certificate (JWT bearer), a consumer secret (client credentials),
 * an integration user and a second user. Keys are made once per test process.
 *
 *   const sf = await startTestSandbox();            // in beforeAll
 *   sf.sandbox.faults.inject({ unavailable: 2 })
 *   await sf.sandbox.close();                       // in afterAll
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, importPKCS8 } from 'jose';
import { startSalesforceSandbox, type SalesforceSandbox, type SandboxOptions } from '../../sandbox/salesforce/server';

export const CONSUMER_KEY = '3MVG9IoTpatternsTestConsumerKey';
export const CONSUMER_SECRET = 'test-consumer-secret-8b1c2f0e';
export const USERNAME = 'integration@iot-patterns.example';
export const OTHER_USER = 'service@iot-patterns.example';
export const OTHER_PASSWORD = 'correct horse battery staple';

export interface TestKeys {
  privateKey: string;
  publicKey: string;
  certificate: string;
}

let keys: TestKeys | undefined;

/** An RSA key pair and a self-signed certificate for it (made with openssl, as an admin would). */
export function testKeys(): TestKeys {
  if (keys) return keys;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const dir = mkdtempSync(join(tmpdir(), 'iot-sf-keys-'));
  try {
    writeFileSync(join(dir, 'key.pem'), privateKey);
    execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=iot-patterns-test', '-days', '2', '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    keys = { privateKey, publicKey, certificate: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return keys;
}

export interface TestSandbox {
  sandbox: SalesforceSandbox;
  keys: TestKeys;
  dataDir: string;
  close(): Promise<void>;
}

/** A sandbox with the test app and users; options override the defaults. */
export async function startTestSandbox(options: SandboxOptions = {}): Promise<TestSandbox> {
  const k = testKeys();
  const dataDir = mkdtempSync(join(tmpdir(), 'iot-sf-sandbox-'));
  const sandbox = await startSalesforceSandbox({
    dataFile: join(dataDir, 'records.jsonl'),
    apps: [{ consumerKey: CONSUMER_KEY, consumerSecret: CONSUMER_SECRET, certificate: k.certificate, runAs: USERNAME }],
    users: [{ username: USERNAME }, { username: OTHER_USER, password: OTHER_PASSWORD }],
    webTo: { delayMs: 20 },
    ...options,
  });
  return {
    sandbox,
    keys: k,
    dataDir,
    close: async () => {
      await sandbox.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A JWT bearer assertion signed with the test key. */
export async function testAssertion(audience: string, claims: { iss?: string; sub?: string; expiresIn?: string | number; key?: string } = {}): Promise<string> {
  const key = await importPKCS8(claims.key ?? testKeys().privateKey, 'RS256');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer(claims.iss ?? CONSUMER_KEY)
    .setSubject(claims.sub ?? USERNAME)
    .setAudience(audience)
    .setExpirationTime(claims.expiresIn ?? '3m')
    .sign(key);
}
