/**
 * Attacks on the pattern flows' MQTT brokers (iot-mqtt-broker) of a running `npm start`, by a
 * client that holds a device's key (or none): a 50 MB publish, a flood of retained and queued
 * messages, taking over another client's session, a client id left empty with a persistent
 * session, telling known ids from unknown ones, locking a device out from another address, and
 * wills on topics their device may not publish to, before and after a crash of npm start. The
 * simulator's MQTT devices keep reporting throughout, and nothing reaches another subscriber.
 */
import type { MqttClient } from 'mqtt';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DeviceKeys } from '../../simulator/credentials';
import { closedWithin, deviceKeys, honestFailures, mqttConnect, rawConnect, rssMb, source, whileDevicesReport, type MqttAttempt } from '../support/attacker';
import { disposedAfterAll } from '../support/node-red-after-all';
import { type NodeRedProcess } from '../support/node-red-process';
import { eventually, sleep } from '../support/wait';

const started = disposedAfterAll();
let node: NodeRedProcess;
let keys: DeviceKeys;
const KiB = 1024;

/** A device of the Buffered broker with its own key. */
function asDevice(id: string, options: { clientId?: string; clean?: boolean; from?: string; will?: { topic: string; payload: Buffer; qos: 0 | 1; retain: boolean } } = {}, port = node.brokerPorts.buffered): Promise<MqttAttempt> {
  return mqttConnect({ port }, { clientId: options.clientId ?? id, username: id, password: keys.apiKey(id), clean: options.clean ?? true, from: options.from, ...(options.will ? { will: options.will } : {}) });
}

async function connected(attempt: Promise<MqttAttempt>): Promise<MqttClient> {
  const { connack, client } = await attempt;
  expect(connack).toBe(0);
  return client as MqttClient;
}

/** Everything a client receives, with the retain flag. */
function collect(client: MqttClient): Array<{ topic: string; bytes: number; retain: boolean }> {
  const got: Array<{ topic: string; bytes: number; retain: boolean }> = [];
  client.on('message', (topic, payload, packet) => got.push({ topic, bytes: payload.length, retain: packet.retain }));
  return got;
}

beforeAll(async () => {
  node = await started();
  keys = deviceKeys(node);
  await eventually('the Buffered broker', async () => {
    const attempt = await asDevice('pump-90');
    attempt.client?.end(true);
    return attempt.connack === 0 ? true : undefined;
  }, 60_000, 250);
}, 120_000);

describe('MQTT caps', () => {
  it('closes a 50 MB publish at its header, before reading it: nothing forwarded, memory flat, devices keep reporting', async () => {
    const pid = node.child.pid as number;
    const watcher = await connected(asDevice('pump-91', { clientId: 'pump-91:watch' }));
    await watcher.subscribeAsync('devices/pump-91/#', { qos: 1 });
    const seen = collect(watcher);
    const before = rssMb(pid);
    let outcome: 'closed' | 'open' = 'open';
    let grewMb = 0;
    const report = await whileDevicesReport(node, ['buffered', 'gateway'], async () => {
      const attacker = await connected(asDevice('pump-91'));
      const huge = Buffer.alloc(50 * 1024 * KiB, 0x20);
      huge.write('{"temperature":99.9,"pad":"', 0);
      huge.write('"}', huge.length - 2);
      attacker.publish('devices/pump-91/readings', huge, { qos: 1 });
      outcome = await closedWithin(attacker, 10_000);
      attacker.end(true);
      await sleep(1_000);
      grewMb = rssMb(pid) - before;
    });
    expect(outcome).toBe('closed');
    expect(grewMb).toBeLessThan(10);
    expect(seen).toEqual([]);
    expect(honestFailures(report)).toEqual([]);
    watcher.end(true);
  });

  it('keeps at most 10 retained messages (64 KiB) of a device that tries 2,000 of 10 KB', async () => {
    const payload = Buffer.alloc(10 * KiB, 0x61);
    let tried = 0;
    let connections = 0;
    const report = await whileDevicesReport(node, ['buffered'], async () => {
      // The attacker reconnects each time it is cut off and goes on where it was.
      while (tried < 2_000) {
        connections++;
        const attacker = await connected(asDevice('pump-92'));
        let open = true;
        attacker.once('close', () => (open = false));
        while (tried < 2_000 && open) {
          attacker.publish(`devices/pump-92/r${tried}`, payload, { qos: 0, retain: true });
          if (++tried % 50 === 0) await sleep(20);
        }
        if (open) await closedWithin(attacker, 2_000);
        attacker.end(true);
      }
    });
    const reader = await connected(asDevice('pump-92', { clientId: 'pump-92:reader' }));
    const retained = collect(reader);
    await reader.subscribeAsync('devices/pump-92/#', { qos: 1 });
    await sleep(2_000);
    reader.end(true);
    expect(connections).toBeGreaterThan(1);
    expect(retained.length).toBeGreaterThan(0);
    expect(retained.length).toBeLessThanOrEqual(10);
    expect(retained.reduce((n, m) => n + m.bytes, 0)).toBeLessThanOrEqual(64 * KiB);
    expect(honestFailures(report)).toEqual([]);
  });

  it('queues at most 1,000 messages (1 MiB) for a session that is away, of 2,000 sent to it', async () => {
    const away = await connected(asDevice('pump-93', { clientId: 'pump-93:away', clean: false }));
    await away.subscribeAsync('devices/pump-93/cmd', { qos: 1 });
    await away.endAsync();
    const sender = await connected(asDevice('pump-93'));
    const payload = Buffer.alloc(2 * KiB, 0x62);
    for (let i = 0; i < 2_000; i++) await sender.publishAsync('devices/pump-93/cmd', payload, { qos: 1 });
    await sender.endAsync();
    const back = await mqttConnect({ port: node.brokerPorts.buffered }, { clientId: 'pump-93:away', username: 'pump-93', password: keys.apiKey('pump-93'), clean: false });
    expect(back.connack).toBe(0);
    const queued = collect(back.client as MqttClient);
    let last = -1;
    await eventually('the queue delivered', async () => {
      const now = queued.length;
      const settled = now > 0 && now === last;
      last = now;
      return settled ? true : undefined;
    }, 30_000, 1_000);
    back.client?.end(true);
    expect(queued.length).toBeLessThanOrEqual(1_000);
    expect(queued.reduce((n, m) => n + m.bytes, 0)).toBeLessThanOrEqual(1024 * KiB);
  });
});

describe('client ids', () => {
  it("refuses a gateway taking over its sensor's session (CONNACK 2), and the sensor stays connected", async () => {
    const port = node.brokerPorts.gateway;
    const sensor = await connected(asDevice('gw-07:s-01', { clean: false }, port));
    const takeover = await asDevice('gw-07', { clientId: 'gw-07:s-01', clean: false }, port);
    expect(takeover.connack).toBe(2);
    expect(await closedWithin(sensor, 1_000)).toBe('open');
    const other = await asDevice('pump-94', { clientId: 'pump-95' });
    expect(other.connack).toBe(2);
    const own = await connected(asDevice('gw-07', { clientId: 'gw-07' }, port));
    own.end(true);
    sensor.end(true);
  });

  it('refuses an empty client id with a persistent session (CONNACK 2), not with a clean one', async () => {
    // mqtt.js will not send this CONNECT: written byte by byte.
    const connect = (clean: boolean) => rawConnect(node.brokerPorts.buffered, { clientId: '', clean, username: 'pump-96', password: keys.apiKey('pump-96') });
    expect({ persistent: await connect(false), clean: await connect(true) }).toEqual({ persistent: 2, clean: 0 });
  });
});

describe('who may connect', () => {
  it('answers known and unknown ids alike (CONNACK 4), on a listed and on a derived registry', async () => {
    const attempt = (port: number, id: string, password: string, from: string) => mqttConnect({ port }, { clientId: id, username: id, password, from }).then((a) => a.connack);
    const answers = {
      'listed, known, wrong key': await attempt(node.brokerPorts.devices, 'pump-1', 'not-the-key-0123456789', source(60)),
      'listed, gateway, a JWT it may not use': await attempt(node.brokerPorts.devices, 'gw-1', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJndy0xIn0.c2lnbmF0dXJl', source(60)),
      'listed, unknown': await attempt(node.brokerPorts.devices, 'pump-404', 'not-the-key-0123456789', source(60)),
      'derived, known, wrong key': await attempt(node.brokerPorts.buffered, 'pump-97', 'not-the-key-0123456789', source(61)),
      'derived, unknown': await attempt(node.brokerPorts.buffered, 'intruder_1', keys.apiKey('intruder_1'), source(61)),
    };
    expect(answers).toEqual({ 'listed, known, wrong key': 4, 'listed, gateway, a JWT it may not use': 4, 'listed, unknown': 4, 'derived, known, wrong key': 4, 'derived, unknown': 4 });
  });

  it('failed CONNECTs from one address lock out that address only: the device connects from its own', async () => {
    const answers: Array<number | string> = [];
    let fromItsOwn: number | string = 'not tried';
    const report = await whileDevicesReport(node, ['buffered'], async () => {
      // pump-01 is one of the simulator's devices, connected right now.
      for (let i = 0; i < 13; i++) answers.push((await mqttConnect({ port: node.brokerPorts.buffered }, { clientId: 'pump-01', username: 'pump-01', password: 'guess-0123456789abcdef', from: source(62) })).connack);
      const probe = await asDevice('pump-01', { clientId: 'pump-01:probe' });
      fromItsOwn = probe.connack;
      probe.client?.end(true);
    });
    expect(answers.slice(0, 9)).toEqual(Array(9).fill(4));
    expect(answers.slice(10)).toEqual([5, 5, 5]);
    expect(fromItsOwn).toBe(0);
    expect(honestFailures(report)).toEqual([]);
  });

  it("refuses a will on another device's topic or on $SYS at CONNECT (CONNACK 5)", async () => {
    const will = (topic: string) => ({ topic, payload: Buffer.from('{"temperature":-99}'), qos: 1 as const, retain: true });
    const foreign = await asDevice('pump-97', { will: will('devices/pump-98/readings') });
    const system = await asDevice('pump-97', { will: will('$SYS/broker/uptime') });
    expect({ foreign: foreign.connack, system: system.connack }).toEqual({ foreign: 5, system: 5 });
  });
});

describe('wills after a crash', () => {
  it('publishes after a kill -9 and restart only the wills their devices may still publish', async () => {
    const port = node.brokerPorts.gateway;
    const will = (topic: string, text: string) => ({ topic, payload: Buffer.from(text), qos: 1 as const, retain: true });
    // gw-96 leaves a will on gw-95's topic (refused at CONNECT today; before, aedes stored it and
    // published it after a crash with no check); gw-97 one on its own status topic, which the
    // operator takes away from devices while npm start is down; gw-98 one on its readings topic,
    // which it keeps: the control, published after the restart.
    const foreign = await asDevice('gw-96', { clean: false, will: will('devices/gw-95/status', 'forged will') }, port);
    const withdrawn = await asDevice('gw-97', { clean: false, will: will('devices/gw-97/status', 'gw-97 is gone') }, port);
    const control = await asDevice('gw-98', { clean: false, will: will('devices/gw-98/readings', '{"temperature":-98.5}') }, port);
    expect({ foreign: foreign.connack, withdrawn: withdrawn.connack, control: control.connack }).toEqual({ foreign: 5, withdrawn: 0, control: 0 });
    await sleep(500);
    const dataDir = node.dataDir;
    await node.crash();
    const flowsFile = join(dataDir, 'node-red', 'flows.json');
    const flows = JSON.parse(readFileSync(flowsFile, 'utf8')) as Array<Record<string, unknown>>;
    for (const n of flows) if (n.id === 'gateway.broker') n.publishTopics = 'devices/{id}/readings';
    writeFileSync(flowsFile, JSON.stringify(flows));

    node = await started({ dataDir });
    const watch = async (gateway: string) => {
      const client = await eventually(`${gateway} connected after the restart`, async () => {
        const attempt = await asDevice(gateway, { clientId: `${gateway}:watch` }, node.brokerPorts.gateway);
        return attempt.connack === 0 ? attempt.client : undefined;
      }, 30_000, 250);
      const got = collect(client as MqttClient);
      await (client as MqttClient).subscribeAsync(`devices/${gateway}/#`, { qos: 1 });
      return { client: client as MqttClient, got };
    };
    const [victim, withdrawnSeen, controlSeen] = await Promise.all([watch('gw-95'), watch('gw-97'), watch('gw-98')]);
    // The control's will comes within about ten seconds of the restart: by then the others would have come too.
    await eventually("gw-98's will", () => (controlSeen.got.length > 0 ? true : undefined), 30_000, 250);
    await sleep(3_000);
    for (const w of [victim, withdrawnSeen, controlSeen]) w.client.end(true);
    expect(controlSeen.got.map((m) => m.topic)).toEqual(['devices/gw-98/readings']);
    expect({ foreign: victim.got.map((m) => m.topic), withdrawn: withdrawnSeen.got.map((m) => m.topic) }).toEqual({ foreign: [], withdrawn: [] });
  });
});
