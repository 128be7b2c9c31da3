/**
 * Issue 11 item 1 from outside: "accepted means durable" at both front doors, under kill -9.
 *
 * One Node-RED (npm start) runs the README's two doors side by side, each into its own iot-buffer
 * and iot-timeseries-out, into a real victoria-metrics:
 *   MQTT: iot-mqtt-broker (Acknowledge QoS 1/2: once stored downstream) -> iot-device-auth (broker
 *         identity) -> iot-buffer -> iot-timeseries-out;
 *   HTTP: http in (Do not parse) -> iot-device-auth (HMAC, Answer HTTP: here, once stored) ->
 *         iot-buffer -> iot-timeseries-out.
 * Every node at its defaults, except the broker's and device-auth's new modes and the buffer's
 * Redeliver after (330 s: the README tells users to set it above the writer's 300 s give-up).
 *
 * mqtt.js devices publish at QoS 1 (reconnectPeriod 1 s: they resend what had no PUBACK), HTTP
 * senders post (retrying every non-2xx, signed afresh), each recording exactly which readings were
 * acknowledged. Node-RED is killed with SIGKILL 12 times: at random moments, right as a PUBACK
 * arrives at a device, and right as a 2xx arrives at a sender (the kill is sent from inside the
 * client's callback), and started again on the same user directory and ports. Then the devices
 * drain and the store is read back point by point (victoria-metrics without deduplication, so a
 * reading stored twice is two points):
 *   - every acknowledged reading is in the store;
 *   - duplicates per door are at most the in-flight window summed over the kills (what the
 *     devices held unacknowledged at the kill, which they resend, plus the buffer's In flight).
 * The kill points are printed, so a failure can be replayed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countBySeq, recorded, frontDoorFlow, hmacHeaders, HttpSender, MASTER_SECRET, MqttDevice, startCountingVictoriaMetrics, storedPoints, type Reading } from '../support/front-doors';
import { NodeRedProcess } from '../support/node-red-process';
import { freePort, type ManagedServer } from '../support/services';
import { eventually, sleep } from '../support/wait';

const MQTT_DEVICES = 12;
const MQTT_EVERY_MS = 250;
const HTTP_SENDERS = 6;
const HTTP_EVERY_MS = 150;
const KILLS = Number(process.env.FD_KILLS ?? 12);
/**
 * The buffers' In flight, as the pattern flows set it. At the default (10) a backlog reaches
 * iot-timeseries-out 10 messages at a time and each batch waits out the writer's 1 s linger: 10
 * readings a second, so the backlog a restart leaves never drains while devices send more than
 * that (test/chaos/front-doors-backlog.test.ts shows it). That is the buffer's and the writer's
 * business; this test is about what the doors acknowledge.
 */
const BUFFER_IN_FLIGHT = 200;

type KillKind = 'random' | 'on PUBACK' | 'on 2xx';
interface Kill {
  kind: KillKind;
  afterMs: number;
  /** Readings the devices had published and not seen acknowledged when the kill was sent: they resend them. */
  mqttUnacked: number;
  /** Posts without an answer yet when the kill was sent: the senders post them again. */
  httpInFlight: number;
  mqttAckedSinceStart: number;
  httpAckedSinceStart: number;
}

const work = mkdtempSync(join(tmpdir(), 'iot-front-doors-kill-'));
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

const randomBetween = (low: number, high: number) => Math.round(low + Math.random() * (high - low));

describe('the front doors under kill -9', () => {
  it('lose no acknowledged reading, MQTT and HTTP, and duplicate at most the in-flight window', async () => {
    const store: ManagedServer = await startCountingVictoriaMetrics();
    cleanup.push(() => store.dispose());
    const env = { PORT: String(await freePort()), FD_MQTT_PORT: String(await freePort()), INFLUX_URL: store.url, IOT_DEVICE_MASTER_SECRET: MASTER_SECRET };
    const base = `http://127.0.0.1:${env.PORT}`;
    let node = await NodeRedProcess.start({ dataDir: work, flows: frontDoorFlow({ prefix: 'kill', mqttPortEnv: 'FD_MQTT_PORT', httpPath: '/readings', buffer: { maxInFlight: String(BUFFER_IN_FLIGHT) } }), env });
    const stopNode = () => node.stop('SIGKILL');
    cleanup.push(stopNode);

    // Half the devices give their reading's own time, half leave it to the edge.
    const devices = Array.from({ length: MQTT_DEVICES }, (_, i) => new MqttDevice(`m-${String(i + 1).padStart(2, '0')}`, Number(env.FD_MQTT_PORT), { clean: i % 2 === 0 }));
    const senders = Array.from({ length: HTTP_SENDERS }, (_, i) => {
      const id = `h-${String(i + 1).padStart(2, '0')}`;
      return new HttpSender(id, () => `${base}/readings`, (body) => hmacHeaders(id, 'POST /readings', body));
    });
    cleanup.push(async () => {
      for (const s of senders) s.stopped = true;
      for (const d of devices) await d.end();
    });

    let producing = true;
    let seq = 0;
    const producers = [
      ...devices.map(async (device, i) => {
        for (let n = 0; producing; n++) {
          const reading: Reading = { seq: n, temperature: 20 + (n % 50) / 10 };
          if (i % 2 === 1) reading.timestamp = Date.now();
          device.publish(reading);
          await sleep(MQTT_EVERY_MS);
        }
      }),
      ...senders.map(async (sender, i) => {
        for (let n = 0; producing; n++) {
          const reading: Reading = { seq: n, temperature: 30 + (n % 50) / 10 };
          if (i % 2 === 1) reading.timestamp = Date.now();
          sender.send(reading);
          seq++;
          await sleep(HTTP_EVERY_MS);
        }
      }),
    ];

    const mqttAcked = () => devices.reduce((n, d) => n + d.acked.size, 0);
    const httpAcked = () => senders.reduce((n, s) => n + s.acked.size, 0);
    const kills: Kill[] = [];
    for (let k = 0; k < KILLS; k++) {
      const kind: KillKind = (['random', 'on PUBACK', 'on 2xx'] as const)[k % 3];
      const startedAt = Date.now();
      const mqttBefore = mqttAcked();
      const httpBefore = httpAcked();
      // Traffic for a while first, so that each run both stores and acknowledges.
      await sleep(randomBetween(3_000, 10_000));
      const pid = node.child.pid as number;
      const exited = new Promise((done) => node.child.once('exit', done));
      let sent: Kill | undefined;
      const killNow = (): void => {
        if (sent) return;
        process.kill(pid, 'SIGKILL');
        sent = {
          kind,
          afterMs: Date.now() - startedAt,
          mqttUnacked: devices.reduce((n, d) => n + d.unacked, 0),
          httpInFlight: senders.reduce((n, s) => n + s.inFlight, 0),
          mqttAckedSinceStart: mqttAcked() - mqttBefore,
          httpAckedSinceStart: httpAcked() - httpBefore,
        };
      };
      if (kind === 'random') killNow();
      else {
        // From inside the client's callback, as the acknowledgement arrives.
        const hook = () => killNow();
        if (kind === 'on PUBACK') for (const d of devices) d.onAck = hook;
        else for (const s of senders) s.onAck = hook;
        await eventually(`a ${kind} to kill on`, () => (sent ? true : undefined), 20_000, 5);
        for (const d of devices) d.onAck = undefined;
        for (const s of senders) s.onAck = undefined;
      }
      await exited;
      kills.push(sent as Kill);
      console.log(`kill ${k + 1} (${kind}) after ${sent?.afterMs} ms: ${JSON.stringify(sent)}`);
      // Devices keep measuring while Node-RED is down.
      await sleep(randomBetween(0, 3_000));
      node = await NodeRedProcess.start({ dataDir: work, env });
    }
    // A last stretch without kills, then the devices stop measuring and drain.
    await sleep(5_000);
    producing = false;
    await Promise.all(producers);
    await eventually(
      'every device and sender to see each reading acknowledged',
      () => (devices.every((d) => d.unacked === 0) && senders.every((s) => s.pending === 0) ? true : undefined),
      240_000,
      500,
    );

    const missing = (points: Map<string, number>, who: Array<{ id: string; acked: Set<number> }>) =>
      who.flatMap((w) => [...w.acked].filter((s) => !points.has(`${w.id}#${s}`)).map((s) => `${w.id}#${s}`));
    // The writer flushes within a second; the buffers may still be redelivering after the last restart.
    let counts = new Map<string, number>();
    await eventually(
      'every acknowledged reading in the store',
      async () => {
        counts = countBySeq(await storedPoints(store, 'seq'));
        return missing(counts, [...devices, ...senders]).length === 0 ? true : undefined;
      },
      120_000,
      2_000,
    ).catch(() => undefined);

    const duplicates = (prefix: string) => [...counts].filter(([key]) => key.startsWith(prefix)).reduce((n, [, c]) => n + c - 1, 0);
    const mqttWindow = kills.reduce((n, k) => n + k.mqttUnacked + BUFFER_IN_FLIGHT, 0);
    const httpWindow = kills.reduce((n, k) => n + k.httpInFlight + BUFFER_IN_FLIGHT, 0);
    const summary = {
      kills: kills.length,
      mqtt: { published: devices.reduce((n, d) => n + d.sent, 0), acknowledged: mqttAcked(), acknowledgedNotStored: missing(counts, devices).length, duplicates: duplicates('m-'), window: mqttWindow, reconnects: devices.reduce((n, d) => n + d.connects, 0), publishesFailedByMqttJs: devices.reduce((n, d) => n + d.failures, 0) },
      http: { posted: seq, acknowledged: httpAcked(), acknowledgedNotStored: missing(counts, senders).length, duplicates: duplicates('h-'), window: httpWindow, notTwoHundred: Object.fromEntries(senders.flatMap((s) => [...s.answers])), noRetryAfter: senders.reduce((n, s) => n + s.noRetryAfter, 0) },
    };
    console.log(JSON.stringify(summary));
    const seen = await recorded(base);
    const tally = (list: Array<{ code?: string; topic?: string }>, key: 'code' | 'topic') => JSON.stringify([...list.reduce((m, e) => m.set(String(e[key]), (m.get(String(e[key])) ?? 0) + 1), new Map<string, number>())]);
    console.log('since the last start: broker events', tally(seen.events, 'topic'), 'broker refused', tally(seen.brokerRefused, 'code'), 'auth refused', tally(seen.authRefused, 'code'), 'buffer refused', tally(seen.bufferRefused, 'code'), 'dead', seen.dead.length, 'store failed', tally(seen.storeFailed, 'code'));
    for (const id of Object.keys(seen.statuses)) console.log(id, JSON.stringify(seen.statuses[id].slice(-2)));
    const failures = new Map<string, number>();
    for (const d of devices) for (const m of d.failed.values()) failures.set(m, (failures.get(m) ?? 0) + 1);
    console.log('publish failures', JSON.stringify([...failures]));
    for (const d of devices) {
      const stored = [...counts.keys()].filter((k) => k.startsWith(`${d.id}#`)).map((k) => Number(k.split('#')[1]));
      const missingHere = [...d.acked].filter((s) => !counts.has(`${d.id}#${s}`));
      console.log(d.id, 'sent', d.sent, 'acked', d.acked.size, 'failed', d.failed.size, 'stored', stored.length, 'max stored', Math.max(...stored), 'missing', missingHere.length, 'first missing', missingHere.slice(0, 5), 'failed seqs', [...d.failed.keys()].slice(0, 5));
    }

    // Each door acknowledged readings between the kills, so the kills hit a working door.
    expect(kills.filter((k) => k.mqttAckedSinceStart === 0).map((k) => k.kind)).toEqual([]);
    expect(kills.filter((k) => k.httpAckedSinceStart === 0).map((k) => k.kind)).toEqual([]);
    expect(missing(counts, devices)).toEqual([]);
    expect(missing(counts, senders)).toEqual([]);
    expect(summary.mqtt.duplicates).toBeLessThanOrEqual(mqttWindow);
    expect(summary.http.duplicates).toBeLessThanOrEqual(httpWindow);
    // A sender told 503 must be told when to come back.
    expect(summary.http.noRetryAfter).toBe(0);
  });
});
