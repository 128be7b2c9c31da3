/**
 * iot-threshold inside a Node-RED runtime (node-red-node-test-helper): outputs, typed inputs,
 * overrides, errors, timers, status, and state that survives a redeploy and a restart; the
 * forecast and anomaly rules as a CRM would meet their alerts.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import thresholdModule from '../../nodes/threshold/threshold';
import { withMessages } from '../support/messages';
import { helper } from '../support/node-red';
import { eventually } from '../support/wait';

/** The node with its English messages, as an editor user reads them. */
const thresholdNode = withMessages(thresholdModule, 'threshold');

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
const lastStatus = () => (node().status as unknown as { lastCall?: { args: [{ fill: string; shape: string; text: string }] } }).lastCall?.args[0];
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

  it('shows alerts by severity in its status, in green: the node works, the alerts are news about devices', async () => {
    await helper.load(thresholdNode, flow(pumpRule));
    await eventually('the first status', () => lastStatus());
    expect(lastStatus()).toEqual({ fill: 'grey', shape: 'ring', text: 'no readings yet' });
    await send({ payload: 95, topic: 'a' }, { payload: 75, topic: 'b' }, { payload: 76, topic: 'c' }, { payload: 10, topic: 'd' });
    await settle(600);
    expect(lastStatus()).toEqual({ fill: 'green', shape: 'dot', text: '1 critical, 2 warning · 4 keys' });
  });

  it('turns yellow when its state cannot be saved, and says so', async () => {
    // A file where the state folder should be: the folder cannot be made.
    writeFileSync(join(userDir, 'iot-state'), 'not a folder');
    await helper.load(thresholdNode, flow(pumpRule));
    await send({ payload: 95, topic: 'a' });
    await settle(600);
    expect(lastStatus()).toEqual({ fill: 'yellow', shape: 'ring', text: '1 critical · 1 key · state not saved' });
  });

  it('reports an invalid rule in its status and rejects input with invalid_config', async () => {
    await helper.load(thresholdNode, flow({ rule: 'above', levels: [{ severity: 'warning', value: 'eighty' }] }));
    const out = collect('errors');
    await send({ payload: 1 });
    expect((out.errors[0].error as { code: string; message: string }).code).toBe('invalid_config');
    expect((out.errors[0].error as { message: string }).message).toMatch(/threshold must be a number/);
    expect(lastStatus()).toEqual({ fill: 'red', shape: 'ring', text: 'invalid configuration' });
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

const HOUR = 3_600_000;
const predicted = (msg: NodeMessage) => msg.alert as Alert & { forecast?: Record<string, number | string | null>; anomaly?: Record<string, number | string> };

/** A battery forecast as the Buffered flow will set it: below 3.3 V, warning 48 h, critical 6 h, trend over 24 h. */
const batteryForecast = {
  property: 'payload',
  propertyType: 'msg',
  field: 'battery',
  rule: 'forecast',
  unit: 'V',
  forecastDirection: 'below',
  forecastTarget: '3.3',
  forecastWindow: '24h',
  levels: [
    { severity: 'warning', value: '48h' },
    { severity: 'critical', value: '6h' },
  ],
};

/** Readings of a battery losing 5 mV an hour from 3.6 V, one an hour from `start`, stamped by the device. */
function batteryReadings(device: Record<string, unknown>, start: number, fromHour: number, toHour: number, volts = (h: number) => 3.6 - 0.005 * h): NodeMessage[] {
  const msgs: NodeMessage[] = [];
  for (let h = fromHour; h <= toHour; h++) msgs.push({ payload: { battery: volts(h), temperature: 20 }, device, timestamp: start + h * HOUR });
  return msgs;
}

describe('iot-threshold forecast', () => {
  it('opens one alert with the predicted crossing, lead time and confidence, updates it as it moves, and closes it on a battery swap', async () => {
    await helper.load(thresholdNode, flow(batteryForecast));
    const out = collect('raised', 'cleared', 'errors');
    const device = { id: 'dev-7', method: 'hmac', meta: { assetId: '02i000000000007' } };
    // Readings of the last 14 hours; the trend may raise once they cover 12 h (half its window),
    // and the crossing at 60 h is then 46 h from now.
    const start = Date.now() - 14 * HOUR;
    await send(...batteryReadings(device, start, 0, 14));
    expect(out.errors).toEqual([]);
    expect(out.raised).toHaveLength(1);
    const raised = out.raised[0];
    expect(raised.device).toEqual(device);
    const alert = predicted(raised);
    expect(alert).toMatchObject({ key: 'dev-7', reading: 'battery', rule: 'forecast', severity: 'warning', state: 'raised', change: 'raised', threshold: 3.3, unit: 'V' });
    expect(alert.forecast).toMatchObject({ target: 3.3, direction: 'below', within: 48 * HOUR, confidence: 1 });
    expect(alert.forecast?.crossingAt as number).toBeCloseTo(start + 60 * HOUR, -2);
    expect(alert.text).toMatch(/^battery of dev-7 predicted below 3\.3 V around \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 46 h\)$/);

    // Faster now: the same alert is updated, never a second one opened.
    await send(...batteryReadings(device, start, 15, 20, (h) => 3.53 - 0.012 * (h - 14)));
    const updates = out.raised.filter((m) => predicted(m).change === 'updated');
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(new Set(out.raised.map((m) => predicted(m).id))).toEqual(new Set([alert.id]));
    expect((predicted(updates.at(-1) as NodeMessage).forecast?.crossingAt as number) < (alert.forecast?.crossingAt as number)).toBe(true);

    // A new battery: the trend turns round and the alert clears, with the same id.
    await send(...batteryReadings(device, start, 21, 23, () => 3.62));
    expect(out.cleared.map((m) => predicted(m))).toMatchObject([{ id: alert.id, state: 'cleared', change: 'cleared' }]);
    expect(predicted(out.cleared[0]).text).toBe('battery of dev-7 no longer predicted below 3.3 V within 4 d');
  });

  it('fits readings a gateway delivers late and out of order by their own timestamps', async () => {
    await helper.load(thresholdNode, flow(batteryForecast));
    const out = collect('raised', 'errors');
    const start = Date.now() - 20 * HOUR;
    const readings = batteryReadings({ id: 'gw-1:s-01' }, start, 0, 14).reverse();
    await send(...readings);
    expect(out.errors).toEqual([]);
    expect(out.raised).toHaveLength(1);
    expect(predicted(out.raised[0]).forecast?.crossingAt as number).toBeCloseTo(start + 60 * HOUR, -2);
  });

  it('predicts against a device own target from the registry meta', async () => {
    await helper.load(thresholdNode, flow(batteryForecast));
    const out = collect('raised');
    const start = Date.now() - 14 * HOUR;
    await send(...batteryReadings({ id: 'lithium-1', meta: { thresholds: { battery: 3.45 } } }, start, 0, 14));
    expect(predicted(out.raised[0])).toMatchObject({ key: 'lithium-1', threshold: 3.45, severity: 'warning' });
    expect(predicted(out.raised[0]).forecast?.crossingAt as number).toBeCloseTo(start + 30 * HOUR, -2);
  });

  it('escalates a device that stopped reporting when its lead time runs out, by the timer', async () => {
    // Seconds instead of hours: warning within 20 s, critical within 2 s of a crossing 3 s away.
    await helper.load(thresholdNode, flow({ ...batteryForecast, forecastWindow: '20s', levels: [{ severity: 'warning', value: '20s' }, { severity: 'critical', value: '2s' }] }));
    const out = collect('raised');
    const now = Date.now();
    const msgs: NodeMessage[] = [];
    for (let s = 12; s >= 0; s--) msgs.push({ payload: { battery: 3.3 + 0.01 * (s + 3) }, topic: 'quiet-1', timestamp: now - s * 1000 });
    await send(...msgs);
    expect(out.raised.map((m) => predicted(m).severity)).toEqual(['warning']);
    const escalated = await eventually('the timer to escalate the forecast', () => out.raised.find((m) => predicted(m).change === 'escalated'), 5_000, 50);
    expect(predicted(escalated)).toMatchObject({ severity: 'critical', key: 'quiet-1' });
    expect(predicted(escalated).value as number).toBeCloseTo(3.33, 9);
    expect(escalated.topic).toBe('quiet-1');
    expect(Date.now() - now).toBeGreaterThanOrEqual(900);
  });

  it('keeps its trend and its alert across a redeploy', async () => {
    await helper.load(thresholdNode, flow(batteryForecast));
    let out = collect('raised', 'cleared');
    const start = Date.now() - 14 * HOUR;
    await send(...batteryReadings({ id: 'dev-1' }, start, 0, 14));
    const id = predicted(out.raised[0]).id;
    await helper.unload();
    await helper.load(thresholdNode, flow(batteryForecast));
    out = collect('raised', 'cleared');
    await send(...batteryReadings({ id: 'dev-1' }, start, 15, 16));
    expect(out.raised).toEqual([]);
    await send(...batteryReadings({ id: 'dev-1' }, start, 17, 19, () => 3.62));
    expect(out.cleared.map((m) => predicted(m).id)).toEqual([id]);
  });

  it('shows the forecast of every reading on the state output', async () => {
    await helper.load(thresholdNode, flow({ ...batteryForecast, stateOutput: true }));
    const out = collect('state');
    const start = Date.now() - 14 * HOUR;
    await send(...batteryReadings({ id: 'dev-2' }, start, 0, 3));
    const last = out.state.at(-1)?.alertState as { state: string; forecast: { crossingAt: number; readings: number } };
    expect(last.state).toBe('normal');
    expect(last.forecast.crossingAt).toBeCloseTo(start + 60 * HOUR, -2);
    expect(last.forecast.readings).toBeGreaterThan(3.9);
  });

  it('rejects a timestamp it cannot read, and a forecast without a target', async () => {
    await helper.load(thresholdNode, flow(batteryForecast));
    const out = collect('errors');
    await send({ payload: { battery: 3.5 }, topic: 'k', timestamp: 'yesterday' });
    expect(out.errors.map((m) => (m.error as { code: string }).code)).toEqual(['bad_timestamp']);
    await helper.unload();
    await helper.load(thresholdNode, flow({ ...batteryForecast, forecastTarget: '' }));
    const invalid = collect('errors');
    await send({ payload: { battery: 3.5 }, topic: 'k' });
    expect(invalid.errors.map((m) => m.error)).toMatchObject([{ code: 'invalid_config', message: expect.stringMatching(/needs a target/) }]);
  });
});

describe('iot-threshold anomaly', () => {
  it('raises for the pump whose reading is unusual for it, with its usual value and spread, and clears when it is back', async () => {
    await helper.load(thresholdNode, flow({ field: 'temperature', rule: 'anomaly', unit: '°C', anomalyWarmup: '20', levels: [{ severity: 'warning', value: '4' }] }));
    const out = collect('raised', 'cleared', 'errors');
    const readings: NodeMessage[] = [];
    for (let i = 0; i < 40; i++) {
      readings.push({ payload: { temperature: 60 + (i % 2) }, device: { id: 'pump-60' } });
      readings.push({ payload: { temperature: 80 + (i % 2) }, device: { id: 'pump-80' } });
    }
    await send(...readings);
    await send({ payload: { temperature: 80 }, device: { id: 'pump-80' } }, { payload: { temperature: 80 }, device: { id: 'pump-60' } });
    expect(out.errors).toEqual([]);
    expect(out.raised.map((m) => predicted(m).key)).toEqual(['pump-60']);
    const alert = predicted(out.raised[0]);
    expect(alert).toMatchObject({ rule: 'anomaly', value: 80, threshold: 4, severity: 'warning' });
    expect(alert.anomaly?.usual as number).toBeCloseTo(60.5, 0);
    expect(alert.text).toMatch(/^temperature unusually high on pump-60 \(80 °C, usually 60\.\d+ ± 0\.\d+\)$/);
    await send({ payload: { temperature: 60 }, device: { id: 'pump-60' } });
    expect(out.cleared.map((m) => predicted(m).id)).toEqual([alert.id]);
  });
});
