/**
 * iot-threshold inside a Node-RED runtime (node-red-node-test-helper): outputs, typed inputs,
 * overrides, errors, timers, status, and state that survives a redeploy and a restart.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import thresholdNode from '../../nodes/threshold/threshold';
import { helper } from '../support/node-red';

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;
type Alert = Record<string, unknown>;

let userDir: string;

beforeAll(async () => {
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});
beforeEach(() => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-threshold-'));
  helper.settings({ userDir });
});
afterEach(async () => {
  await helper.unload();
  rmSync(userDir, { recursive: true, force: true });
});

/** A threshold node wired to one helper node per output. */
function flow(props: Record<string, unknown>, outputs = props.stateOutput ? 4 : 3): Flow {
  const names = outputs === 4 ? ['raised', 'cleared', 'state', 'errors'] : ['raised', 'cleared', 'errors'];
  return [
    { id: 'th', type: 'iot-threshold', name: 'under test', wires: names.map((n) => [n]), outputs, ...props },
    ...names.map((id) => ({ id, type: 'helper' })),
  ];
}

/** Everything each helper node receives, in order. */
function collect(...ids: string[]): Record<string, NodeMessage[]> {
  const seen: Record<string, NodeMessage[]> = {};
  for (const id of ids) {
    seen[id] = [];
    helper.getNode(id).on('input', (msg: NodeMessage) => seen[id].push(msg));
  }
  return seen;
}

const node = () => helper.getNode('th') as Node & { receive(msg: NodeMessage): void };
const settle = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));

async function send(...msgs: NodeMessage[]): Promise<void> {
  for (const msg of msgs) node().receive(msg);
  await settle();
}

const alertOf = (msg: NodeMessage) => msg.alert as Alert;

const pumpRule = {
  property: 'payload',
  propertyType: 'msg',
  field: 'temperature',
  rule: 'above',
  hysteresis: 'explicit',
  levels: [
    { severity: 'warning', value: '70', clear: '65' },
    { severity: 'critical', value: '90', clear: '85' },
  ],
};

describe('iot-threshold node', () => {
  it('raises, escalates, de-escalates and clears one episode with one id, keyed by device', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    const out = collect('raised', 'cleared', 'errors');
    const device = { id: 'pump-17', method: 'hmac', meta: { assetId: '02i000000000001' } };
    const reading = (temperature: number): NodeMessage => ({ payload: { temperature, battery: 3.4 }, device });
    await send(reading(60), reading(72), reading(95), reading(87), reading(84), reading(64));
    expect(out.raised.map((m) => `${alertOf(m).change} ${alertOf(m).severity}`)).toEqual(['raised warning', 'escalated critical', 'deescalated warning']);
    expect(out.cleared.map((m) => `${alertOf(m).change} ${alertOf(m).severity}`)).toEqual(['cleared warning']);
    const ids = [...out.raised, ...out.cleared].map((m) => alertOf(m).id);
    expect(new Set(ids).size).toBe(1);
    const first = out.raised[0];
    expect(first.device).toEqual(device);
    expect(first.payload).toEqual({ temperature: 72, battery: 3.4 });
    expect(alertOf(first)).toMatchObject({
      key: 'pump-17',
      reading: 'temperature',
      rule: 'above',
      state: 'raised',
      value: 72,
      threshold: 70,
      text: 'temperature above 70 on pump-17 (72)',
    });
    expect(alertOf(out.cleared[0])).toMatchObject({ state: 'cleared', threshold: 65, text: 'temperature back below 65 on pump-17 (64)' });
    expect(out.errors).toEqual([]);
  });

  it('keys by topic when there is no device, and by a configured property when set', async () => {
    await helper.load(thresholdNode, flow({ rule: 'above', levels: [{ severity: 'warning', value: '10' }], keyProperty: 'site.room', keyPropertyType: 'msg' }));
    const out = collect('raised', 'errors');
    await send({ payload: 11, site: { room: 'A' } }, { payload: 12, site: { room: 'A' } }, { payload: 12, site: { room: 'B' } }, { payload: 12, topic: 'x' });
    expect(out.raised.map((m) => alertOf(m).key)).toEqual(['A', 'B']);
    expect(out.errors.map((m) => (m.error as { code: string }).code)).toEqual(['missing_key']);
  });

  it('takes per-device thresholds from msg.device.meta and per-message ones from msg.threshold', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    const out = collect('raised', 'errors');
    await send(
      { payload: { temperature: 60 }, device: { id: 'cold-room', meta: { thresholds: { temperature: { warning: { value: 5, clear: 3 }, critical: 10 } } } } },
      { payload: { temperature: 60 }, topic: 'plain', threshold: { warning: 50 } },
      { payload: { temperature: 60 }, topic: 'other' },
    );
    expect(out.raised.map((m) => `${alertOf(m).key} ${alertOf(m).severity} ${alertOf(m).threshold}`)).toEqual(['cold-room critical 10', 'plain warning 50']);
    await send({ payload: { temperature: 60 }, topic: 'bad', threshold: { warning: 'hot' } });
    expect(out.errors.map((m) => (m.error as { code: string }).code)).toEqual(['bad_threshold']);
  });

  it('sends bad input to the error output with a code, leaving the state alone', async () => {
    await helper.load(thresholdNode, flow({ ...pumpRule, raiseMode: 'count', raiseValue: '2' }));
    const out = collect('raised', 'errors');
    const bad: unknown[] = [{ temperature: 'hot' }, { temperature: Number.NaN }, { temperature: Infinity }, { humidity: 3 }, { temperature: { c: 3 } }, 'text'];
    await send({ payload: { temperature: 80 }, topic: 'k' });
    await send(...bad.map((payload) => ({ payload, topic: 'k' })));
    await send({ payload: { temperature: 81 }, topic: 'k' });
    expect(out.errors.map((m) => (m.error as { code: string }).code)).toEqual(['not_numeric', 'not_finite', 'not_finite', 'missing_value', 'wrong_type', 'not_numeric']);
    expect((out.errors[0].error as { message: string; node: string }).message).toContain('msg.payload.temperature');
    expect((out.errors[0].error as { node: string }).node).toBe('th');
    expect(out.raised.length).toBe(1);
  });

  it('treats a bare number as the named reading when a field is configured', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    const out = collect('raised');
    await send({ payload: 91, topic: 'k' });
    expect(alertOf(out.raised[0])).toMatchObject({ severity: 'critical', reading: 'temperature' });
  });

  it('also reports to Catch nodes when asked to', async () => {
    // Catch nodes work within a tab: put the whole flow on one.
    const catching: Flow = [
      { id: 'tab', type: 'tab', label: 'catching' },
      ...[
        ...flow({ ...pumpRule, catchErrors: true }),
        { id: 'catcher', type: 'catch', scope: ['th'], uncaught: false, wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ].map((n) => ({ ...n, z: 'tab' })),
    ];
    await helper.load(thresholdNode, catching);
    const out = collect('errors', 'caught');
    await send({ payload: { temperature: 'x' }, topic: 'k' });
    expect(out.errors.length).toBe(1);
    expect(out.caught.length).toBe(1);
    expect((out.caught[0].error as { message: string }).message).toContain('not_numeric');
  });

  it('annotates every reading on the optional state output', async () => {
    await helper.load(thresholdNode, flow({ ...pumpRule, stateOutput: true, raiseMode: 'count', raiseValue: '2' }));
    const out = collect('raised', 'state', 'errors');
    await send({ payload: { temperature: 50 }, topic: 'k' }, { payload: { temperature: 80 }, topic: 'k' }, { payload: { temperature: 80 }, topic: 'k' });
    expect(out.state.map((m) => (m.alertState as { state: string }).state)).toEqual(['normal', 'pending', 'raised']);
    expect((out.state[2].alertState as { id: string }).id).toBe(alertOf(out.raised[0]).id);
  });

  it('reads the value through JSONata', async () => {
    await helper.load(thresholdNode, flow({ rule: 'above', levels: [{ severity: 'warning', value: '100' }], property: 'payload.a + payload.b', propertyType: 'jsonata' }));
    const out = collect('raised');
    await send({ payload: { a: 60, b: 50 }, topic: 'k' });
    expect(alertOf(out.raised[0]).value).toBe(110);
  });

  it('raises a silence alert when no message arrives at all, and clears it on the next', async () => {
    await helper.load(thresholdNode, flow({ rule: 'silence', levels: [{ severity: 'warning', value: '150ms' }], startup: 'expect', expectedKeys: 'never-seen' }));
    const out = collect('raised', 'cleared');
    await send({ payload: 'hello', topic: 'door-3' });
    await settle(300);
    expect(out.raised.map((m) => alertOf(m).key).sort()).toEqual(['door-3', 'never-seen']);
    expect(out.raised[0].alert).toMatchObject({ rule: 'silence', state: 'raised' });
    await send({ payload: 'back', topic: 'door-3' });
    expect(out.cleared.map((m) => alertOf(m).key)).toEqual(['door-3']);
    expect(alertOf(out.cleared[0]).text).toMatch(/^door-3 reporting again after/);
  });

  it('confirms "above for a duration" by timer, with the device of the last reading', async () => {
    await helper.load(thresholdNode, flow({ ...pumpRule, raiseMode: 'duration', raiseValue: '0.15', raiseUnit: 's' }));
    const out = collect('raised');
    await send({ payload: { temperature: 95 }, device: { id: 'pump-1', meta: { assetId: 'A1' } } });
    expect(out.raised).toEqual([]);
    await settle(250);
    expect(out.raised.map((m) => `${alertOf(m).change} ${alertOf(m).severity}`)).toEqual(['raised critical']);
    expect(out.raised[0].device).toEqual({ id: 'pump-1', meta: { assetId: 'A1' } });
    expect(out.raised[0].topic).toBe('pump-1');
  });

  it('resets one key, or all keys, on msg.reset', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    const out = collect('raised', 'cleared');
    await send({ payload: 95, topic: 'a' }, { payload: 95, topic: 'b' }, { reset: true, topic: 'a' });
    expect(out.cleared.map((m) => `${alertOf(m).key} ${alertOf(m).reason}`)).toEqual(['a reset']);
    await send({ reset: true });
    expect(out.cleared.map((m) => alertOf(m).key)).toEqual(['a', 'b']);
    await send({ payload: 95, topic: 'a' });
    expect(out.raised.length).toBe(3);
  });

  it('shows alerts by severity in its status', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    await send({ payload: 95, topic: 'a' }, { payload: 75, topic: 'b' }, { payload: 76, topic: 'c' }, { payload: 10, topic: 'd' });
    await settle(600);
    const status = (node().status as unknown as { lastCall: { args: [{ fill: string; text: string }] } }).lastCall.args[0];
    expect(status).toMatchObject({ fill: 'red', shape: 'dot' });
    expect(status.text).toBe('1 critical, 2 warning · 4 keys');
  });

  it('reports an invalid rule in its status and rejects input with invalid_config', async () => {
    await helper.load(thresholdNode, flow({ rule: 'above', levels: [{ severity: 'warning', value: 'eighty' }] }));
    const out = collect('errors');
    await send({ payload: 1 });
    expect((out.errors[0].error as { code: string; message: string }).code).toBe('invalid_config');
    expect((out.errors[0].error as { message: string }).message).toMatch(/threshold is not a number/);
    const status = (node().status as unknown as { lastCall: { args: [{ fill: string }] } }).lastCall.args[0];
    expect(status).toMatchObject({ fill: 'red', shape: 'ring' });
  });

  it('keeps its state across a redeploy: a raised alert is not raised again and clears with its id', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    let out = collect('raised', 'cleared');
    await send({ payload: 95, topic: 'pump-17' }, { payload: 60, topic: 'pump-2' });
    const id = alertOf(out.raised[0]).id;
    await helper.unload();

    await helper.load(thresholdNode, flow(pumpRule));
    out = collect('raised', 'cleared');
    await send({ payload: 96, topic: 'pump-17' }, { payload: 97, topic: 'pump-17' });
    expect(out.raised).toEqual([]);
    await send({ payload: 50, topic: 'pump-17' });
    expect(out.cleared.map((m) => alertOf(m).id)).toEqual([id]);
    expect(readdirSync(join(userDir, 'iot-state')).some((f) => f.startsWith('threshold-th'))).toBe(true);
  });

  it('keeps its state without a clean stop: journalled changes survive when no snapshot was written', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    let out = collect('raised', 'cleared');
    await send({ payload: 95, topic: 'pump-17' });
    const id = alertOf(out.raised[0]).id;
    // Swap the state dir away before the stop, so the stop's snapshot lands elsewhere: what
    // is left is exactly what a crash would leave, the journal.
    const crashed = join(userDir, 'crashed-copy');
    const { cpSync } = await import('node:fs');
    cpSync(join(userDir, 'iot-state'), crashed, { recursive: true });
    await helper.unload();
    rmSync(join(userDir, 'iot-state'), { recursive: true });
    cpSync(crashed, join(userDir, 'iot-state'), { recursive: true });
    expect(readdirSync(join(userDir, 'iot-state'))).toEqual(['threshold-th.journal']);

    await helper.load(thresholdNode, flow(pumpRule));
    out = collect('raised', 'cleared');
    await send({ payload: 99, topic: 'pump-17' }, { payload: 10, topic: 'pump-17' });
    expect(out.raised).toEqual([]);
    expect(out.cleared.map((m) => alertOf(m).id)).toEqual([id]);
  });

  it('clears saved alerts whose rule was changed, once the flow runs', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    collect('raised');
    await send({ payload: 95, topic: 'pump-17' });
    await helper.unload();
    await helper.load(thresholdNode, flow({ ...pumpRule, rule: 'below', hysteresis: 'none', levels: [{ severity: 'warning', value: '5' }] }));
    const out = collect('cleared');
    await settle(50);
    expect(out.cleared.map((m) => alertOf(m))).toMatchObject([{ key: 'pump-17', reason: 'rule-changed', state: 'cleared' }]);
  });

  it('deletes its state files when removed from the flow', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    await send({ payload: 95, topic: 'pump-17' });
    await (helper as unknown as { setFlows(f: Flow, type: string): Promise<void> }).setFlows([{ id: 'other', type: 'helper' }], 'full');
    expect(readdirSync(join(userDir, 'iot-state'))).toEqual([]);
  });
});
