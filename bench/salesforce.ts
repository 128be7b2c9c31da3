/**
 * iot-salesforce-out against the local Salesforce sandbox (in its own process, over HTTP):
 * alerts upserted as Cases through the node in Node-RED, batched, beside the same number of
 * records upserted one call each with plain jsforce (10 calls at a time, jsforce's own default
 * for parallel requests). Figures: API calls per 1,000 records and records per second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Connection } from 'jsforce';
import { startRuntime, type BenchNode } from './embedded-runtime';
import { format, type Figure } from './measure';

const RECORDS = 20_000;
const WARM_UP = 2_000;
const PEER_PARALLEL = 10;
const USERNAME = 'bench@sandbox.iot-patterns.local';

interface Sandbox {
  url: string;
  stats(): Promise<{ apiCalls: number }>;
  stop(): void;
}

/** The sandbox in a child process, so that it does not share this process's event loop. */
async function startSandbox(dir: string, consumerKey: string, consumerSecret: string, publicKey: string): Promise<Sandbox> {
  const server = resolve(__dirname, '..', 'sandbox', 'salesforce', 'server.js');
  const options = { dataFile: join(dir, 'records.jsonl'), apiAllowance: 10_000_000, apps: [{ consumerKey, consumerSecret, certificate: publicKey, runAs: USERNAME }], users: [{ username: USERNAME }] };
  const script = `require(${JSON.stringify(server)}).startSalesforceSandbox(${JSON.stringify(options)}).then((s) => console.log('URL ' + s.url))`;
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((done, fail) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /URL (\S+)/.exec(output);
      if (match) done(match[1]);
    });
    child.once('exit', (code) => fail(new Error(`the sandbox exited with code ${code}`)));
  });
  return {
    url,
    stats: async () => (await fetch(`${url}/_sandbox/stats`).then((r) => r.json())) as { apiCalls: number },
    stop: () => child.kill(),
  };
}

function alert(i: number, run: string): object {
  const key = `pump-${i % 1000}`;
  return {
    topic: key,
    device: { id: key, meta: {} },
    alert: { id: `${run}-${i}`, key, reading: 'temperature', rule: 'above', severity: i % 4 === 0 ? 'critical' : 'warning', state: 'raised', change: 'raised', value: 80 + (i % 20), threshold: 80, since: 1_795_300_000_000 + i, at: 1_795_300_000_000 + i, text: `temperature above 80 on ${key} (${80 + (i % 20)})` },
  };
}

/** Feeds count alerts to the node and waits for every result. Returns records per second. */
async function throughNode(out: BenchNode, results: { count: number }, count: number, run: string): Promise<number> {
  const target = results.count + count;
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) out.receive(alert(i, run));
  while (results.count < target) await new Promise((r) => setTimeout(r, 2));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** The same records, one upsert call each with plain jsforce, PEER_PARALLEL at a time. */
async function throughJsforce(conn: Connection, count: number, run: string): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const a = (alert(i, run) as { alert: { id: string; text: string } }).alert;
      await conn.sobject('Case').upsert({ IoT_Alert_Id__c: encodeURIComponent(a.id), Subject: a.text, Priority: 'Medium', Origin: 'IoT' } as never, 'IoT_Alert_Id__c');
    }
  };
  await Promise.all(Array.from({ length: PEER_PARALLEL }, worker));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

export async function benchSalesforce(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'iot-bench-sf-'));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const keyFile = join(dir, 'bench.key');
  writeFileSync(keyFile, privateKey, { mode: 0o600 });
  const consumerKey = `3MVG9Bench${randomBytes(6).toString('hex')}`;
  const consumerSecret = randomBytes(16).toString('hex');
  const sandbox = await startSandbox(dir, consumerKey, consumerSecret, publicKey);
  const runtime = await startRuntime([
    { id: 'bench.tab', type: 'tab', label: 'bench' },
    { id: 'bench.conn', type: 'iot-salesforce-connection', loginUrl: sandbox.url, authMethod: 'jwt', consumerKey, username: USERNAME, privateKeyFile: keyFile },
    { id: 'bench.out', type: 'iot-salesforce-out', z: 'bench.tab', connection: 'bench.conn', operation: 'upsert', object: 'Case', recordFrom: 'alert', externalIdField: 'IoT_Alert_Id__c', wires: [['bench.sink'], ['bench.sink']] },
    { id: 'bench.sink', type: 'debug', z: 'bench.tab', active: false, wires: [] },
  ]);
  try {
    const results = { count: 0 };
    runtime.node('bench.sink').on('input', () => results.count++);
    const out = runtime.node('bench.out');
    await throughNode(out, results, WARM_UP, 'warm');
    const before = (await sandbox.stats()).apiCalls;
    const nodeRate = await throughNode(out, results, RECORDS, 'node');
    const nodeCalls = (await sandbox.stats()).apiCalls - before;

    const conn = new Connection({ loginUrl: sandbox.url, version: '62.0', oauth2: { clientId: consumerKey, clientSecret: consumerSecret, loginUrl: sandbox.url } });
    await conn.authorize({ grant_type: 'client_credentials' });
    await throughJsforce(conn, WARM_UP, 'peer-warm');
    const peerBefore = (await sandbox.stats()).apiCalls;
    const peerRate = await throughJsforce(conn, RECORDS, 'peer');
    const peerCalls = (await sandbox.stats()).apiCalls - peerBefore;
    return [
      {
        name: `salesforce out: API calls per 1,000 records (${format(RECORDS)} alerts upserted as Cases, batches of up to 200)`,
        value: (nodeCalls * 1000) / RECORDS,
        unit: 'calls',
        goal: { op: '<=', value: 6 },
        note: `${format(nodeCalls)} calls; plain jsforce, one upsert per record: ${format((peerCalls * 1000) / RECORDS)} calls per 1,000`,
      },
      {
        name: 'salesforce out: records per second into the local sandbox (batched, 2 calls at a time)',
        value: nodeRate,
        unit: 'records/s',
        goal: { op: '>=', value: 5_000 },
        note: `plain jsforce, one upsert per call, ${PEER_PARALLEL} at a time: ${format(peerRate)} records/s; ratio ${(nodeRate / peerRate).toFixed(1)}`,
      },
    ];
  } finally {
    await runtime.stop();
    sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
