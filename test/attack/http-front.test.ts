/**
 * Attacks on what `npm start` serves before any flow sees a request: huge bodies (each endpoint
 * must stop reading at its cap and answer 413 at once, the process's memory must not move while
 * the simulator's devices keep reporting), and a web page the operator visits (no wildcard CORS
 * on the admin API, no cross-origin deploy or inject, no start beyond loopback without a login).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { announce, honestFailures, rssMb, send, source, upload, whileDevicesReport } from '../support/attacker';
import { disposedAfterAll } from '../support/node-red-after-all';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually, sleep } from '../support/wait';

const MB = 1024 * 1024;
const started = disposedAfterAll();
let node: NodeRedProcess;

/** Every body-reading endpoint of npm start: the pattern flows', the examples', the admin API's and the sandbox's. */
function endpoints(): string[] {
  return [
    ...['/anonymous/button', '/direct/report', '/cloudy/callback', '/augmented/inspection', '/partners/callback', '/double/readings', '/devices/readings', '/flows', '/flow', '/nodes'].map((path) => `${node.editorUrl}${path}`),
    ...['/services/data/v62.0/sobjects/Case', '/services/data/v62.0/composite/sobjects', '/services/oauth2/token', '/servlet/servlet.WebToCase'].map((path) => `${node.salesforceUrl}${path}`),
  ];
}

beforeAll(async () => {
  node = await started();
  await eventually('the pattern flows answering', async () => ((await send(`${node.editorUrl}/cloudy/callback`, { body: '{}' })).status === 401 ? true : undefined), 60_000, 250);
}, 120_000);

describe('bodies read whole before the cap', () => {
  it('answers 413 to a 50 MB body at every endpoint as soon as its head arrives, without reading it', async () => {
    const answers: Record<string, string | undefined> = {};
    for (const url of endpoints()) answers[url] = await announce(url, 50 * MB, 3_000, source(30));
    const not413 = Object.entries(answers).filter(([, line]) => line !== 'HTTP/1.1 413 Payload Too Large');
    expect(not413).toEqual([]);
  });

  it('takes eight 50 MB posts to the Anonymous endpoint, announced and chunked, without its memory moving, while devices keep reporting', async () => {
    const pid = node.child.pid as number;
    const before = rssMb(pid);
    let after = { announced: 0, chunked: 0 };
    const answers: Array<{ status?: number; sentMb: number; error?: string }> = [];
    const report = await whileDevicesReport(node, ['direct', 'cloudy', 'buffered'], async () => {
      answers.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => upload(`${node.editorUrl}/anonymous/button`, 50 * MB, true, source(31 + i))))));
      await sleep(500);
      after.announced = rssMb(pid);
      answers.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => upload(`${node.editorUrl}/anonymous/button`, 50 * MB, false, source(41 + i))))));
      await sleep(500);
      after.chunked = rssMb(pid);
    });
    // 413, or the connection closed by the server after its 413 while the client still wrote.
    expect(answers.filter((a) => ![413, 'EPIPE', 'ECONNRESET'].includes(a.status ?? String(a.error)))).toEqual([]);
    expect(answers.filter((a) => a.sentMb >= 50)).toEqual([]);
    after = { announced: Math.round(after.announced - before), chunked: Math.round(after.chunked - before) };
    // Announced: never read. Chunked: each read up to the 1 MB cap at most, then cut.
    expect(after.announced).toBeLessThan(5);
    expect(after.chunked).toBeLessThan(16);
    expect(honestFailures(report)).toEqual([]);
  });
});

describe('the editor and a web page the operator visits', () => {
  const page = 'http://attacker.example';

  it('sends no wildcard CORS header on /flows, to anyone', async () => {
    for (const origin of [undefined, page, node.editorUrl, 'null']) {
      const answer = await send(`${node.editorUrl}/flows`, { method: 'GET', headers: origin ? { origin } : {} });
      expect({ origin, allowOrigin: answer.headers['access-control-allow-origin'] }).toEqual({ origin, allowOrigin: undefined });
    }
    const preflight = await send(`${node.editorUrl}/flows`, { method: 'OPTIONS', headers: { origin: page, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,node-red-deployment-type' } });
    expect({ status: preflight.status, allowOrigin: preflight.headers['access-control-allow-origin'] }).toEqual({ status: 403, allowOrigin: undefined });
  });

  it('refuses a cross-origin deploy, inject and read, and changes nothing', async () => {
    const flows = (await fetch(`${node.editorUrl}/flows`, { headers: { 'node-red-api-version': 'v2' } }).then((r) => r.json())) as { rev: string; flows: Array<Record<string, unknown>> };
    const hostile = [{ id: 'evil.tab', type: 'tab', label: 'pwned' }, { id: 'evil.exec', type: 'exec', z: 'evil.tab', command: 'touch /tmp/pwned', wires: [] }];
    // A form or fetch() with a "simple" content type needs no preflight: the browser sends it as is.
    const answers = {
      deploy: (await send(`${node.editorUrl}/flows`, { headers: { origin: page, 'content-type': 'text/plain' }, body: JSON.stringify(hostile) })).status,
      'deploy, JSON': (await send(`${node.editorUrl}/flows`, { headers: { origin: page, 'node-red-deployment-type': 'full' }, body: JSON.stringify(hostile) })).status,
      'add a tab': (await send(`${node.editorUrl}/flow`, { headers: { origin: page, 'content-type': 'text/plain' }, body: JSON.stringify({ label: 'pwned', nodes: [] }) })).status,
      inject: (await send(`${node.editorUrl}/inject/salesforce.raise`, { headers: { origin: page } })).status,
      'from a sandboxed frame': (await send(`${node.editorUrl}/flows`, { headers: { origin: 'null', 'content-type': 'text/plain' }, body: JSON.stringify(hostile) })).status,
      read: (await send(`${node.editorUrl}/flows`, { method: 'GET', headers: { origin: page } })).status,
      'read the settings': (await send(`${node.editorUrl}/settings`, { method: 'GET', headers: { origin: page } })).status,
    };
    expect(answers).toEqual({ deploy: 403, 'deploy, JSON': 403, 'add a tab': 403, inject: 403, 'from a sandboxed frame': 403, read: 403, 'read the settings': 403 });
    const now = (await fetch(`${node.editorUrl}/flows`, { headers: { 'node-red-api-version': 'v2' } }).then((r) => r.json())) as { rev: string };
    expect(now.rev).toBe(flows.rev);
  });

  it('refuses to start on every interface without an admin login', async () => {
    for (const host of ['0.0.0.0', '::']) {
      const attempt = await started({ env: { NODE_RED_HOST: host } }).then(
        (running) => `started on ${running.editorUrl} with no login`,
        (err: Error) => err.message,
      );
      expect(attempt).toMatch(/exited with code 1 at start[\s\S]*NODE_RED_ADMIN_USER and NODE_RED_ADMIN_PASSWORD_HASH/);
    }
  });
});
