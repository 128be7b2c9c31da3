/**
 * iot-redis and iot-threshold inside a Node-RED runtime (node-red-node-test-helper), against
 * Debian's redis-server: an alert raised by one start of the flow is cleared, with the same id,
 * by the next start (a fresh runtime's nodes: nothing remembered in memory); a silence is fired
 * by the next start when the one that saw the device is gone; the connection's state shows in
 * the status; expected keys are watched once across starts; readings are refused with shared_state_unavailable while Redis cannot be used; a
 * missing iot-redis is an invalid configuration.
 */
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import redisNode from '../../nodes/redis/redis';
import thresholdNode from '../../nodes/threshold/threshold';
import { helper } from '../support/node-red';
import { startRedis, type ManagedServer } from '../support/services';
import { eventually } from '../support/wait';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Status = { fill?: string; text?: string };

let redis: ManagedServer;

beforeAll(async () => {
  redis = await startRedis({ password: 'a-redis-password' });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  await redis?.dispose();
});
afterEach(async () => {
  await helper.unload();
});

const OUTPUTS = ['raised', 'cleared', 'errors'];

let tests = 0;
beforeEach(() => {
  tests++;
});

/** The flow; each test keeps its keys apart from the others' with a prefix of its own. */
function flow(threshold: Record<string, unknown>, redisProps: Record<string, unknown> = {}): Flow {
  return [
    { id: 'shared', type: 'iot-redis', name: 'shared state', url: redis.url, prefix: `test-${tests}`, ...redisProps },
    { id: 'th', type: 'iot-threshold', redis: 'shared', rule: 'above', levels: [{ severity: 'warning', value: '80' }], outputs: 3, wires: OUTPUTS.map((n) => [n]), ...threshold },
    ...OUTPUTS.map((id) => ({ id, type: 'helper' })),
  ];
}

/** One start of the flow: a Node-RED instance as far as its nodes know. */
async function start(nodes: Flow, password: string | null = 'a-redis-password'): Promise<Record<string, NodeMessage[]>> {
  await helper.load([redisNode, thresholdNode], nodes, password ? { shared: { password } } : {});
  const seen: Record<string, NodeMessage[]> = Object.fromEntries(OUTPUTS.map((id) => [id, []]));
  for (const id of OUTPUTS) helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
  return seen;
}

const threshold = () => helper.getNode('th') as Node & { receive(msg: NodeMessage): void };
const lastStatus = (): Status => (helper.getNode('th').status as unknown as { lastCall?: { args: [Status] } }).lastCall?.args[0] ?? {};
const alertOf = (msg: NodeMessage) => msg.alert as { id: string; key: string; state: string };

describe('iot-threshold sharing its state through iot-redis', () => {
  it('clears, in the next instance of the flow, the alert the first raised, with its id', async () => {
    let seen = await start(flow({}));
    threshold().receive({ topic: 'pump-1', payload: 95 });
    await eventually('raised', () => (seen.raised.length === 1 ? true : undefined));
    await eventually('a green status', () => (lastStatus().fill === 'green' ? true : undefined));
    const raised = alertOf(seen.raised[0]);
    await helper.unload();

    seen = await start(flow({}));
    threshold().receive({ topic: 'pump-1', payload: 97 });
    threshold().receive({ topic: 'pump-1', payload: 40 });
    await eventually('cleared', () => (seen.cleared.length === 1 ? true : undefined));
    expect(seen.raised).toEqual([]);
    expect(alertOf(seen.cleared[0])).toMatchObject({ id: raised.id, key: 'pump-1', state: 'cleared' });
  });

  it('fires a silence in the next instance when the one that saw the device is gone', async () => {
    const silence = { rule: 'silence', levels: [{ severity: 'warning', value: '1500ms' }] };
    let seen = await start(flow(silence));
    threshold().receive({ topic: 'gate-1', payload: 'hello' });
    await eventually('green', () => (lastStatus().fill === 'green' ? true : undefined));
    await helper.unload();
    expect(seen.raised).toEqual([]);

    seen = await start(flow(silence));
    await eventually('raised by the instance that never saw it', () => (seen.raised.length === 1 ? true : undefined), 10_000);
    expect(alertOf(seen.raised[0])).toMatchObject({ key: 'gate-1', state: 'raised' });
  });

  it('watches expected keys once across starts: a device that never reported is raised once', async () => {
    const expecting = { rule: 'silence', levels: [{ severity: 'warning', value: '1s' }], startup: 'expect', expectedKeys: 'never-seen' };
    let seen = await start(flow(expecting));
    await eventually('raised', () => (seen.raised.length === 1 ? true : undefined), 10_000);
    expect(alertOf(seen.raised[0])).toMatchObject({ key: 'never-seen', state: 'raised' });
    await helper.unload();

    // The next start finds the key stored (raised): it neither starts its clock again nor raises it twice.
    seen = await start(flow(expecting));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(seen.raised).toEqual([]);
  });

  it('is red without the password, and refuses readings with shared_state_unavailable', async () => {
    const seen = await start(flow({}, { timeout: '1' }), null);
    await eventually('a red status naming the reason', () => (lastStatus().fill === 'red' && /NOAUTH/.test(lastStatus().text ?? '') ? true : undefined));
    threshold().receive({ topic: 'pump-2', payload: 95 });
    await eventually('a refusal', () => (seen.errors.length === 1 ? true : undefined), 15_000);
    expect((seen.errors[0].error as { code: string }).code).toBe('shared_state_unavailable');
    expect(seen.raised).toEqual([]);
  });

  it('is an invalid configuration when its iot-redis is missing', async () => {
    const seen = await start(flow({ redis: 'nowhere' }));
    await eventually('a red status', () => (lastStatus().fill === 'red' ? true : undefined));
    threshold().receive({ topic: 'pump-3', payload: 95 });
    await eventually('a rejection', () => (seen.errors.length === 1 ? true : undefined));
    expect((seen.errors[0].error as { code: string }).code).toBe('invalid_config');
  });
});
