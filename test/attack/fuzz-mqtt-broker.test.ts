/**
 * iot-mqtt-broker fuzzed: 10,000 hostile messages (seeded) sent to its input, as a flow publishes
 * commands to devices, while a device is subscribed to its own topics, with Catch and Complete
 * nodes scoped to it: no crash, no unhandled rejection, every message done once (published, or
 * refused with a code its help lists), nothing polluted, and the device receives nothing outside
 * its own topics.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import registryNode from '../../nodes/device-registry/device-registry';
import mqttBrokerNode from '../../nodes/mqtt-broker/mqtt-broker';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems, type FuzzOptions } from '../support/fuzz';
import { freePort } from '../support/services';
import { eventually } from '../support/wait';

const CODES = ['bad_topic', 'bad_qos', 'not_serializable', 'not_published', 'invalid_config'];
const KEY = 'key-for-pump-1-0123456789abcdef';
fuzzRuntime('mqtt-broker');
let device: MqttClient | undefined;
afterAll(async () => {
  await device?.endAsync(true);
});

/** The broker on `port`, its outputs to helper nodes, as the fuzz drives it. */
const broker = (port: number): Omit<FuzzOptions, 'count' | 'seed' | 'message'> => ({
  modules: [registryNode, mqttBrokerNode],
  flow: [
    { id: 'registry', type: 'iot-device-registry', source: 'list', devices: [{ id: 'pump-1', enabled: true }, { id: 'pump-2', enabled: true }] },
    { id: 'broker', type: 'iot-mqtt-broker', registry: 'registry', host: '127.0.0.1', port, wsPort: '', wires: [['published'], ['events'], ['refused']] },
    { id: 'published', type: 'helper' },
    { id: 'events', type: 'helper' },
    { id: 'refused', type: 'helper' },
  ],
  credentials: { registry: { secrets: JSON.stringify({ 'pump-1': { apiKey: KEY }, 'pump-2': { apiKey: 'key-for-pump-2-0123456789abcdef' } }) } },
  under: 'broker',
  outputs: ['published', 'events'],
  errorOutputs: ['refused'],
  codes: CODES,
});

it('takes 10,000 hostile messages to publish: nothing crashes, every message is done once, every refusal is coded', async () => {
  const port = await freePort();
  const received: string[] = [];
  const report = await fuzzNode({
    ...broker(port),
    count: 10_000,
    seed: 1207,
    ready: async () => {
      device = await eventually('pump-1 connected', () => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'pump-1', username: 'pump-1', password: KEY, reconnectPeriod: 0, connectTimeout: 2_000 }).catch(() => undefined), 20_000, 200);
      device.on('message', (topic) => received.push(topic));
      await device.subscribeAsync('devices/pump-1/#', { qos: 1 });
    },
    message: (h) => {
      const msg: Record<string, unknown> = {};
      msg.topic = h.chance(0.6) ? h.pick(['devices/pump-1/commands', 'devices/pump-1/config', 'devices/pump-2/commands']) : h.chance(0.5) ? h.pick(['', '#', 'devices/+/commands', 'devices/pump-1/#', '$SYS/broker/uptime', 'devices/pump-1/\u0000', '/', 'a'.repeat(70_000)]) : h.value();
      msg.payload = h.value();
      if (h.chance(0.6)) msg.qos = h.chance(0.6) ? h.pick([0, 1, 2]) : h.value();
      if (h.chance(0.3)) msg.retain = h.chance(0.5) ? h.pick([true, false]) : h.value();
      if (h.chance(0.03)) msg._delivery = h.chance(0.5) ? { source: h.pick(['broker', 'elsewhere']), id: h.value() } : h.value();
      if (h.chance(0.01)) msg.retry = h.value();
      return msg;
    },
  });
  console.log(`fuzz mqtt-broker: ${JSON.stringify({ sendMs: report.sendMs, settleMs: report.settleMs, codes: report.codes, outputs: report.outputs, generic: report.genericMessages, received: received.length })}`);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.accounted).toBe(10_000);
  expect(received.length).toBeGreaterThan(0);
  expect(received.filter((topic) => !topic.startsWith('devices/pump-1/')).slice(0, 10)).toEqual([]);
});

it('refuses a msg.qos that is a Symbol or an object with no number in it with bad_qos (bug: a TypeError thrown, no code)', async () => {
  const port = await freePort();
  const noPrototype = Object.create(null) as Record<string, unknown>;
  const messages = [{ qos: Symbol('qos') }, { qos: noPrototype }, { qos: JSON.parse('{"toString":1,"valueOf":2}') as unknown }].map((m) => ({ topic: 'devices/pump-1/commands', payload: 'reboot', ...m }));
  const report = await fuzzNode({
    ...broker(port),
    count: messages.length,
    seed: 0,
    message: (_h, n) => messages[n],
  });
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.codes).toEqual({ bad_qos: 3 });
});
