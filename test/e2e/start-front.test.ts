/**
 * What stands in front of Node-RED under `npm start`, tried as senders, attackers and a browser
 * would: an early request is told to come back (503 with Retry-After) instead of 404 and an error
 * in the log; a body over its endpoint's cap is refused at once and never read (eight 50 MB posts
 * leave the memory where it was); no cross-origin request is answered and no wildcard CORS header
 * sent; beyond loopback, no start without an admin login.
 */
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { disposedAfterAll } from '../support/node-red-after-all';
import { NodeRedProcess } from '../support/node-red-process';
import { freePort } from '../support/services';
import { sleep } from '../support/wait';

const MB = 1024 * 1024;
const started = disposedAfterAll();

/** The resident memory of a process, in MB. */
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

/**
 * Sends only the head of a POST announcing a body of `length` bytes, and waits for the answer:
 * its status line, or undefined when none came within timeoutMs (the server waits for the body).
 */
function announce(url: string, length: number, timeoutMs = 3_000): Promise<string | undefined> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    const done = (line: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(line);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('connect', () => socket.write(`POST ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.split('\r\n')[0]);
    });
    socket.on('error', () => done(answer.split('\r\n')[0] || undefined));
  });
}

/** A POST whose body is `total` bytes sent in chunks (with a length announced, or chunked): the status, and how much was sent by the time it came. */
function upload(url: string, total: number, announced: boolean): Promise<{ status?: number; sentMb: number; error?: string }> {
  const { hostname, port, pathname } = new URL(url);
  const piece = Buffer.alloc(MB, 0x78);
  return new Promise((resolve) => {
    let sent = 0;
    let status: number | undefined;
    const req = request({ host: hostname, port, path: pathname, method: 'POST', headers: { 'content-type': 'application/json', ...(announced ? { 'content-length': String(total) } : {}) } });
    const finish = (error?: string) => resolve({ status, sentMb: sent / MB, ...(error ? { error } : {}) });
    req.on('response', (res) => {
      status = res.statusCode;
      res.resume();
      res.on('end', () => finish());
    });
    // The server closed the connection after its 413: the client may see that before the answer.
    req.on('error', (err: Error & { code?: string }) => finish(err.code));
    const pump = () => {
      while (sent < total && status === undefined) {
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** Opens a WebSocket as a page of `origin` would: 'open', or how it was refused. */
function webSocket(url: string, origin: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { origin });
    socket.once('open', () => {
      socket.close();
      resolve('open');
    });
    socket.once('unexpected-response', (_req, res) => {
      resolve(`refused ${res.statusCode}`);
      socket.terminate();
    });
    socket.once('error', (err) => resolve(`error ${err.message}`));
  });
}

describe('npm start in front of Node-RED', () => {
  let node: NodeRedProcess;
  /** What an endpoint and the editor answered from the first moment the port took connections. */
  const early: string[] = [];

  beforeAll(async () => {
    const port = await freePort();
    let asking = true;
    const ask = async (path: string, init?: RequestInit) => {
      while (asking) {
        try {
          const response = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
          await response.arrayBuffer();
          early.push(`${init?.method ?? 'GET'} ${path}: ${response.status}${response.headers.has('retry-after') ? ' Retry-After' : ''}`);
        } catch {
          // Not listening yet.
        }
        await sleep(20);
      }
    };
    const askers = [ask('/cloudy/callback', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), ask('/')];
    node = await started({ env: { PORT: String(port) } });
    await sleep(2_000);
    asking = false;
    await Promise.all(askers);
  }, 120_000);

  it('tells an early sender to come back (503, Retry-After) until the flows run, never 404, and logs no error', () => {
    const kinds = [...new Set(early)];
    expect(kinds).toContain('POST /cloudy/callback: 503 Retry-After');
    // Then the flow's own answer: no credentials.
    expect(kinds).toContain('POST /cloudy/callback: 401');
    expect(kinds.filter((k) => !['POST /cloudy/callback: 503 Retry-After', 'POST /cloudy/callback: 401', 'GET /: 503 Retry-After', 'GET /: 200'].includes(k))).toEqual([]);
    expect(node.output).not.toMatch(/\[error\]/);
  });

  it('refuses a body announced over its cap at once, before a byte of it is sent: endpoints, admin API, sandbox', async () => {
    expect(await announce(`${node.editorUrl}/anonymous/button`, 50 * MB)).toBe('HTTP/1.1 413 Payload Too Large');
    expect(await announce(`${node.editorUrl}/flows`, 50 * MB)).toBe('HTTP/1.1 413 Payload Too Large');
    expect(await announce(`${node.salesforceUrl}/services/data/v62.0/sobjects/Case`, 50 * MB)).toBe('HTTP/1.1 413 Payload Too Large');
    // Up to the cap (1 MB by default), the endpoint reads the body and the flow answers (its size limit is 1 MB too).
    const within = await fetch(`${node.editorUrl}/double/readings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"x":"${'y'.repeat(MB - 10)}"}` });
    expect(within.status).toBe(401);
  });

  it('stops reading a body sent without a length at the cap', async () => {
    const answer = await upload(`${node.editorUrl}/anonymous/button`, 50 * MB, false);
    expect(answer.status ?? answer.error).toBe(413);
    expect(answer.sentMb).toBeLessThan(20);
  });

  it('takes eight 50 MB posts without its memory moving more than a few MB, and answers the next press', async () => {
    const pid = node.child.pid as number;
    const before = rssMb(pid);
    const announced = await Promise.all(Array.from({ length: 8 }, () => upload(`${node.editorUrl}/anonymous/button`, 50 * MB, true)));
    await sleep(500);
    const afterAnnounced = rssMb(pid);
    const chunked = await Promise.all(Array.from({ length: 8 }, () => upload(`${node.editorUrl}/anonymous/button`, 50 * MB, false)));
    await sleep(500);
    const afterChunked = rssMb(pid);
    for (const answer of [...announced, ...chunked]) {
      // 413, or the connection closed by the server after its 413 while the client still wrote.
      expect([413, 'EPIPE', 'ECONNRESET']).toContain(answer.status ?? answer.error);
      expect(answer.sentMb).toBeLessThan(50);
    }
    expect(afterAnnounced - before).toBeLessThan(5);
    // Without a length, each body is read up to the endpoint's cap (1 MB) before it is refused.
    expect(afterChunked - before).toBeLessThan(16);
    const press = await fetch(`${node.editorUrl}/anonymous/button`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'case', button: 'b-1', location: 'Lobby', name: 'Jo', email: 'jo@example.com' }) });
    expect(press.status).toBe(202);
  });

  it('answers no cross-origin request, and sends no wildcard CORS header', async () => {
    const plain = await fetch(`${node.editorUrl}/flows`);
    expect(plain.status).toBe(200);
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
    const sameOrigin = await fetch(`${node.editorUrl}/flows`, { headers: { origin: node.editorUrl } });
    expect(sameOrigin.status).toBe(200);
    expect(sameOrigin.headers.get('access-control-allow-origin')).toBeNull();
    const endpoint = await fetch(`${node.editorUrl}/cloudy/callback`, { method: 'POST', body: '{}' });
    expect(endpoint.headers.get('access-control-allow-origin')).toBeNull();

    const page = { origin: 'http://attacker.example' };
    expect((await fetch(`${node.editorUrl}/flows`, { headers: page })).status).toBe(403);
    const preflight = await fetch(`${node.editorUrl}/flows`, { method: 'OPTIONS', headers: { ...page, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const form = await fetch(`${node.editorUrl}/anonymous/button`, { method: 'POST', headers: { ...page, 'content-type': 'text/plain' }, body: '{"kind":"case","button":"b-1"}' });
    expect(form.status).toBe(403);
    // The editor's WebSocket (debug messages, statuses): the editor's own page only.
    const comms = `${node.editorUrl.replace(/^http/, 'ws')}/comms`;
    expect(await webSocket(comms, page.origin)).toBe('refused 403');
    expect(await webSocket(comms, node.editorUrl)).toBe('open');
  });
});

describe('npm start beyond loopback', () => {
  it('refuses to start without an admin login, or with a password that is not a bcrypt hash', async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: nothing would listen there anyway.
    await expect(NodeRedProcess.start({ env: { NODE_RED_HOST: '192.0.2.1' } })).rejects.toThrow(/exited with code 1 at start[\s\S]*Could not start: NODE_RED_HOST=192\.0\.2\.1 is not a loopback address[\s\S]*NODE_RED_ADMIN_USER and NODE_RED_ADMIN_PASSWORD_HASH/);
    await expect(NodeRedProcess.start({ env: { NODE_RED_HOST: '192.0.2.1', NODE_RED_ADMIN_USER: 'admin', NODE_RED_ADMIN_PASSWORD_HASH: 'plain-password' } })).rejects.toThrow(/Could not start: NODE_RED_ADMIN_PASSWORD_HASH is not a bcrypt hash/);
  });

  it('asks for the login NODE_RED_ADMIN_USER and NODE_RED_ADMIN_PASSWORD_HASH give, and keeps the device endpoints open', async () => {
    const bcrypt = createRequire(createRequire(__filename).resolve('node-red'))('bcryptjs') as { hashSync(password: string, rounds: number): string };
    const password = 'correct horse battery staple';
    const node = await started({ env: { NODE_RED_ADMIN_USER: 'operator', NODE_RED_ADMIN_PASSWORD_HASH: bcrypt.hashSync(password, 8) } });
    expect((await fetch(`${node.editorUrl}/flows`)).status).toBe(401);
    const token = await fetch(`${node.editorUrl}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'operator', password }),
    });
    expect(token.status).toBe(200);
    const { access_token } = (await token.json()) as { access_token: string };
    expect((await fetch(`${node.editorUrl}/flows`, { headers: { authorization: `Bearer ${access_token}` } })).status).toBe(200);
    const wrong = await fetch(`${node.editorUrl}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'operator', password: 'guess' }),
    });
    expect(wrong.status).toBe(403);
    expect((await fetch(`${node.editorUrl}/cloudy/callback`, { method: 'POST', body: '{}' })).status).toBe(401);
    expect(node.output).not.toContain(password);
    expect(await node.stop()).toBe(0);
  });
});
