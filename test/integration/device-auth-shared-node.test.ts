/**
 * iot-redis and iot-device-auth inside a Node-RED runtime (node-red-node-test-helper), against
 * Debian's redis-server: a signed request accepted by one instance of the flow is refused as a
 * replay by the next instance of the same flow (a fresh runtime's nodes: nothing remembered in
 * memory), the password is taken from the credentials, the connection's state shows in
 * iot-device-auth's status (green, red with the reason), messages are refused with "send again"
 * while Redis is away, and a missing or invalid iot-redis is an invalid configuration.
 */
import { randomBytes } from 'node:crypto';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import redisNode from '../../nodes/redis/redis';
import { hmacHeaders, hmacSigned } from '../support/device-credentials';
import { helper } from '../support/node-red';
import { startRedis, type ManagedServer } from '../support/services';
import { eventually } from '../support/wait';

const SECRET = 'a-shared-secret-of-32-characters';
const PASSWORD = `redis-${randomBytes(12).toString('hex')}`;

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Status = { fill?: string; text?: string };

let redis: ManagedServer;

beforeAll(async () => {
  redis = await startRedis({ password: PASSWORD });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  await redis?.dispose();
});
afterEach(async () => {
  await helper.unload();
});

function flow(redisProps: Record<string, unknown>, auth: Record<string, unknown> = {}): Flow {
  return [
    { id: 'shared', type: 'iot-redis', name: 'shared state', url: redis.url, ...redisProps },
    { id: 'registry', type: 'iot-device-registry', name: 'devices', source: 'list', devices: [{ id: 'pump-1', enabled: true }] },
    { id: 'auth', type: 'iot-device-auth', registry: 'registry', redis: 'shared', method: 'hmac', wires: [['ok'], ['rejected']], ...auth },
    { id: 'ok', type: 'helper' },
    { id: 'rejected', type: 'helper' },
  ];
}

interface Instance {
  ok: NodeMessage[];
  rejected: NodeMessage[];
}

/** One start of the flow: a Node-RED instance as far as its nodes know. */
async function start(nodes: Flow, password: string | null = PASSWORD): Promise<Instance> {
  const credentials = { registry: { secrets: JSON.stringify({ 'pump-1': { secret: SECRET } }) }, ...(password ? { shared: { password } } : {}) };
  await helper.load([redisNode, registryNode, deviceAuthNode], nodes, credentials);
  const got: Instance = { ok: [], rejected: [] };
  helper.getNode('ok').on('input', (msg: NodeMessage) => got.ok.push(msg));
  helper.getNode('rejected').on('input', (msg: NodeMessage) => got.rejected.push(msg));
  return got;
}

const auth = () => helper.getNode('auth') as Node & { receive(msg: NodeMessage): void };
/** The status iot-device-auth shows now (the helper spies on node.status). */
const lastStatus = (): Status => (helper.getNode('auth').status as unknown as { lastCall?: { args: [Status] } }).lastCall?.args[0] ?? {};

/** A request as http-in hands it on with "Do not parse request body"; the same one each time for the same headers. */
function request(headers: Record<string, string>, body = '{"temperature":21.5}'): NodeMessage {
  const lower = { 'content-type': 'application/json', ...headers };
  return { _msgid: randomBytes(4).toString('hex'), payload: Buffer.from(body), req: { method: 'POST', originalUrl: '/readings', url: '/readings', ip: '127.0.0.1', headers: lower }, res: { _res: {} } } as NodeMessage;
}

const signed = () => hmacHeaders(hmacSigned(Buffer.from(SECRET), 'pump-1', 'POST /readings', '{"temperature":21.5}'));
const outcomes = (got: Instance) => [...got.ok.map(() => 'ok'), ...got.rejected.map((m) => `${(m.error as { code: string }).code} ${String(m.statusCode)}`)];

describe('iot-device-auth sharing its state through iot-redis', () => {
  it('refuses, in the next instance of the flow, a signed request the first accepted', async () => {
    const headers = signed();
    let got = await start(flow({}));
    auth().receive(request(headers));
    await eventually('the first instance to accept it', () => (got.ok.length === 1 ? true : undefined));
    await helper.unload();

    got = await start(flow({}));
    auth().receive(request(headers));
    auth().receive(request(signed()));
    await eventually('both answered', () => (got.ok.length + got.rejected.length === 2 ? true : undefined));
    expect(outcomes(got)).toEqual(['ok', 'replayed 401']);
  });

  it('shows the connection in its status: idle (grey), no longer connecting, once connected with the password from the credentials', async () => {
    await start(flow({}));
    // The pack's status convention: grey while nothing has arrived yet; yellow while connecting.
    await eventually('a grey status', () => (lastStatus().fill === 'grey' ? true : undefined));
    expect(lastStatus().text).toBe('✓ 0 · ✗ 0');
  });

  it('is red with the reason without the password, and answers "send again" rather than let a signed request through', async () => {
    const got = await start(flow({}), null);
    await eventually('a red status naming the reason', () => (lastStatus().fill === 'red' && /NOAUTH/.test(lastStatus().text ?? '') ? true : undefined));
    auth().receive(request(signed()));
    await eventually('an answer', () => (got.rejected.length === 1 ? true : undefined), 15_000);
    expect(outcomes(got)).toEqual(['shared_state_unavailable 503']);
    expect(got.rejected[0].headers).toEqual({ 'Retry-After': '5' });
  });

  it('is an invalid configuration when its iot-redis is missing or invalid', async () => {
    for (const nodes of [flow({}, { redis: 'nowhere' }), flow({ url: 'redis://user:secret@127.0.0.1:6379' })]) {
      const got = await start(nodes);
      await eventually('a red status', () => (lastStatus().fill === 'red' ? true : undefined));
      expect(lastStatus().text).toMatch(/invalid.config/);
      auth().receive(request(signed()));
      await eventually('a rejection', () => (got.rejected.length === 1 ? true : undefined));
      expect(outcomes(got)).toEqual([expect.stringMatching(/^invalid_config/)]);
      await helper.unload();
    }
  });

  it('keeps a flow without an iot-redis (an older flow) on its own state', async () => {
    const nodes = flow({});
    const old = nodes.map((n) => (n.type === 'iot-device-auth' ? { ...n, redis: undefined } : n)).filter((n) => n.type !== 'iot-redis');
    const got = await start(old, null);
    const headers = signed();
    auth().receive(request(headers));
    auth().receive(request(headers));
    await eventually('both answered', () => (got.ok.length + got.rejected.length === 2 ? true : undefined));
    expect(outcomes(got)).toEqual(['ok', 'replayed 401']);
    expect(lastStatus().fill).not.toBe('red');
  });
});
