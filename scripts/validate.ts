/**
 * `npm run validate`: the flow library's scorecard (`npx node-red-dev validate`) on this package,
 * on a machine that reaches the npm registry but not catalogue.nodered.org.
 *
 * node-red-dev fetches the flow library catalogue to look for packages with the same name (P08)
 * and node types used elsewhere (N01); offline that fetch fails and the whole run stops with an
 * error. So the run goes through a small local proxy: requests for the catalogue get a catalogue
 * built from what the npm registry says of this package's unscoped name (so P08 still finds a
 * package of the same name; N01 has no other packages' node types to compare with offline), and
 * everything else is passed through.
 * Every check of the scorecard must pass; the scorecard is printed.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string };

interface Check {
  test: boolean;
  packages?: string[];
  [detail: string]: unknown;
}

/**
 * Scorecard warnings this package accepts on purpose, and why. A check listed here may fail only
 * for the packages named; anything else fails the run.
 */
const ACCEPTED: Record<string, { packages: string[]; why: string }> = {
  D03: { packages: ['jsforce'], why: 'jsforce is held at 3.10.16: releases from 3.10.19 crash on Node 20 (inside undici)' },
};

function accepted(code: string, check: Check): boolean {
  const rule = ACCEPTED[code];
  return rule !== undefined && Array.isArray(check.packages) && check.packages.every((p) => rule.packages.includes(p));
}

/** The catalogue as far as the registry can tell: a package with this unscoped name, if there is one. */
async function offlineCatalogue(): Promise<string> {
  const unscoped = pkg.name.split('/').pop() as string;
  const existing = await fetch(`https://registry.npmjs.org/${encodeURIComponent(unscoped)}`, { method: 'HEAD' });
  const modules = existing.ok ? [{ id: unscoped, types: [] as string[] }] : [];
  return JSON.stringify({ name: 'offline catalogue (npm registry)', updated_at: new Date().toISOString(), modules });
}

async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await new Promise<Buffer>((done) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => done(Buffer.concat(chunks)));
  });
  const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'proxy-connection'].includes(k))) as Record<string, string>;
  const upstream = await fetch(req.url as string, { method: req.method, headers, body: body.length > 0 ? new Uint8Array(body) : undefined });
  const payload = Buffer.from(await upstream.arrayBuffer());
  res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream', 'content-length': payload.length });
  res.end(payload);
}

async function startProxy(): Promise<{ url: string; close(): void }> {
  const catalogue = await offlineCatalogue();
  const server = createServer((req, res) => {
    const target = new URL(req.url ?? '/', 'http://invalid');
    if (target.hostname === 'catalogue.nodered.org') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(catalogue);
      return;
    }
    forward(req, res).catch((err: Error) => {
      res.writeHead(502);
      res.end(err.message);
    });
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port) || 443, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

async function main(): Promise<number> {
  const proxy = await startProxy();
  const out = mkdtempSync(join(tmpdir(), 'scorecard-'));
  const scorecardFile = join(out, 'scorecard.json');
  try {
    const cli = join(root, 'node_modules', 'node-red-dev', 'bin', 'run');
    const env = { ...process.env, HTTPS_PROXY: proxy.url, https_proxy: proxy.url, HTTP_PROXY: proxy.url, http_proxy: proxy.url };
    const output = await new Promise<{ code: number | null; text: string }>((done) => {
      const child = spawn(process.execPath, [cli, 'validate', '-p', root, '-o', scorecardFile], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (c: Buffer) => (text += c.toString()));
      child.stderr.on('data', (c: Buffer) => (text += c.toString()));
      child.on('exit', (code) => done({ code, text }));
    });
    console.log(output.text.trim());
    if (/\bError\b/.test(output.text) || output.code !== 0) {
      console.error(`node-red-dev validate reported an error (exit ${output.code})`);
      return 1;
    }
    const scorecard = JSON.parse(readFileSync(scorecardFile, 'utf8')) as Record<string, Check | unknown>;
    const failing = Object.entries(scorecard).filter(([, v]) => typeof v === 'object' && v !== null && (v as Check).test === false) as Array<[string, Check]>;
    for (const [code, check] of failing.filter(([c, v]) => accepted(c, v))) {
      console.log(`${code} accepted on purpose for ${check.packages?.join(', ')}: ${ACCEPTED[code].why}`);
    }
    const failed = failing.filter(([c, v]) => !accepted(c, v));
    console.log(`\nscorecard: ${Object.keys(scorecard).filter((k) => k !== 'package').join(' ')}`);
    if (failed.length > 0) {
      console.error(`failing checks: ${failed.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join('; ')}`);
      return 1;
    }
    console.log(failing.length > 0 ? 'every other check passes' : 'every check passes');
    return 0;
  } finally {
    proxy.close();
    rmSync(out, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`validate: ${err.message}`);
    process.exit(1);
  },
);
