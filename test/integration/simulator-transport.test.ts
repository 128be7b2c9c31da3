/**
 * How the simulated devices get their messages through, against real servers on loopback: an
 * HTTP sender tries again after a 503 (waiting its Retry-After), a 429 or a refused connection,
 * signing each attempt afresh, and stops at a real refusal; an MQTT device keeps its QoS 1 publish
 * across a broker restart, sends it again once reconnected, and counts it acknowledged only on its
 * PUBACK.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { deliver, MqttLink } from '../../simulator/transport';
import { freePort } from '../support/services';
import { eventually, sleep } from '../support/wait';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** An HTTP endpoint answering with `answers` in turn (the last one from then on), recording what came. */
async function endpoint(answers: Array<[status: number, headers?: Record<string, string>]>, port?: number): Promise<{ url: string; seen: Array<{ at: number; signature: string | undefined }> }> {
  const seen: Array<{ at: number; signature: string | undefined }> = [];
  const server: HttpServer = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      seen.push({ at: Date.now(), signature: req.headers['x-signature'] as string | undefined });
      const [status, headers] = answers[Math.min(seen.length - 1, answers.length - 1)];
      res.writeHead(status, headers ?? {});
      res.end();
    });
  });
  const listenOn = port ?? (await freePort());
  await new Promise<void>((resolve) => server.listen(listenOn, '127.0.0.1', () => resolve()));
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${listenOn}/readings`, seen };
}

/** A request builder that signs each attempt differently, as a device with a nonce does. */
function signedEachTime(): { request: () => Promise<{ body: string; headers: Record<string, string> }>; built: () => number } {
  let built = 0;
  return { request: async () => ({ body: '{"temperature":21}', headers: { 'x-signature': `sig-${++built}` } }), built: () => built };
}

describe('an HTTP sender', () => {
  it('tries again after a 503 once its Retry-After has passed, signed afresh, until acknowledged', async () => {
    const server = await endpoint([[503, { 'retry-after': '2' }], [202]]);
    const { request } = signedEachTime();
    const outcome = await deliver(server.url, request, new AbortController().signal);
    expect(outcome).toMatchObject({ attempts: 2, answer: { status: 202 } });
    expect(server.seen.map((s) => s.signature)).toEqual(['sig-1', 'sig-2']);
    expect(server.seen[1].at - server.seen[0].at).toBeGreaterThanOrEqual(1_900);
  });

  it('tries again after a 429 and after a refused connection, and stops at a refusal', async () => {
    const limited = await endpoint([[429], [400]]);
    expect(await deliver(limited.url, signedEachTime().request, new AbortController().signal)).toMatchObject({ attempts: 2, answer: { status: 400 } });

    const port = await freePort();
    const later = sleep(1_500).then(() => endpoint([[204]], port));
    const outcome = await deliver(`http://127.0.0.1:${port}/readings`, signedEachTime().request, new AbortController().signal);
    await later;
    expect(outcome.answer?.status).toBe(204);
    expect(outcome.attempts).toBeGreaterThanOrEqual(2);
  });

  it('gives up when told to, with the last answer', async () => {
    const server = await endpoint([[503, { 'retry-after': '30' }]]);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 500);
    expect(await deliver(server.url, signedEachTime().request, stop.signal)).toMatchObject({ attempts: 1, answer: { status: 503, retryAfter: '30' } });
  });
});

/** aedes on a port; `holdFirst` keeps the first publish without an answer (no PUBACK), as a broker that dies before storing it. */
async function broker(port: number, holdFirst = false): Promise<{ close(): Promise<void>; published: string[] }> {
  const published: string[] = [];
  let held = false;
  const aedes = await Aedes.createBroker({
    authorizePublish: (_client, packet, callback) => {
      if (holdFirst && !held) {
        held = true;
        return;
      }
      published.push(packet.payload.toString());
      callback(null);
    },
  });
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await new Promise<void>((resolve) => aedes.close(() => server.close(() => resolve())));
  };
  cleanup.push(close);
  return { close, published };
}

describe('an MQTT device', () => {
  it('keeps a publish the broker never acknowledged, sends it again after the broker restarts, and counts it acknowledged then', async () => {
    const port = await freePort();
    const first = await broker(port, true);
    const link = await MqttLink.open(`mqtt://127.0.0.1:${port}`, { clientId: 'pump-01', username: 'pump-01', password: 'key' });
    cleanup.push(() => link.close());
    let acknowledged: boolean | undefined;
    const publish = link.publish('devices/pump-01/readings', 'held').then((ok) => (acknowledged = ok));
    await sleep(300);
    expect(acknowledged).toBeUndefined();
    await first.close();
    await eventually('the device to see the broker gone', () => (link.client.connected ? undefined : true));
    // Sent while the broker is down: kept, and sent once it is back (a first send, not a resend).
    const whileDown = link.publish('devices/pump-01/readings', 'while down');
    await sleep(500);
    const second = await broker(port);
    expect(await publish).toBe(true);
    expect(await whileDown).toBe(true);
    expect(second.published.sort()).toEqual(['held', 'while down']);
    expect(link.resent).toBe(1);
  });

  it('counts a publish still waiting when it is closed as not acknowledged', async () => {
    const port = await freePort();
    await broker(port, true);
    const link = await MqttLink.open(`mqtt://127.0.0.1:${port}`, { clientId: 'pump-02', username: 'pump-02', password: 'key' });
    const publish = link.publish('devices/pump-02/readings', 'held');
    await eventually('the publish on its way', async () => ((await Promise.race([publish, sleep(100).then(() => 'waiting')])) === 'waiting' ? true : undefined));
    await link.close();
    expect(await publish).toBe(false);
  });
});
