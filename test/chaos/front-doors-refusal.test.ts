/**
 * Issue 11 item 7 from outside: "a refusal is not a receipt". The README's two doors (broker
 * acknowledging once stored, device-auth answering HTTP once stored) in front of an iot-buffer that
 * refuses: its folder on a 1 MB file system that fills up, or its queue capped at 20 messages,
 * while the store is down so that nothing drains. The devices and senders keep sending as real
 * ones do (mqtt.js resending what had no PUBACK, HTTP senders retrying every non-2xx after
 * Retry-After) and record exactly what was acknowledged. Then the store comes back, the queue
 * drains, there is room again, and:
 *   - while the buffer refused, the devices were disconnected (a not_taken event on the broker's
 *     second output says why) and the senders were told 503 with Retry-After;
 *   - every reading that was acknowledged (PUBACK or 2xx) is in the store, and since the senders
 *     retried until acknowledged, every reading sent is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countBySeq, frontDoorFlow, hmacHeaders, HttpSender, MASTER_SECRET, MqttDevice, recorded, startCountingVictoriaMetrics, storedPoints, type Door, type Reading } from '../support/front-doors';
import { NodeRedProcess } from '../support/node-red-process';
import { freePort, type ManagedServer } from '../support/services';
import { mountTmpfs } from '../support/small-disk';
import { eventually, sleep } from '../support/wait';

const cleanup: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await Promise.resolve(step()).catch(() => undefined);
});

let store: ManagedServer | undefined;

interface Outcome {
  /** Acknowledgements (PUBACK, 2xx) that came while the buffer refused and nothing could drain. */
  acksWhileFull: string[];
  closesWhileFull: number;
  notTakenReasons: string[];
  http503WhileFull: number;
  /** The answer to one post while full: status and Retry-After. */
  probe: string;
  noRetryAfter: number;
  bufferFills: Array<[string, string[]]>;
  /** Acknowledged readings not in the store at the end. */
  acknowledgedNotStored: string[];
  /** Readings still without a receipt once there was room again. */
  neverAcknowledged: number;
}

/**
 * Devices and senders keep sending while the store is down and the buffer fills until it refuses
 * with `code`; 10 s later they stop, the store comes back, and they drain as real ones do.
 */
async function refusedWhileFull(name: string, buffer: (door: Door) => Record<string, unknown>, padding: number, code: string): Promise<Outcome> {
  if (!store) {
    const started = await startCountingVictoriaMetrics();
    cleanup.push(() => started.dispose());
    store = started;
  }
  const env = { PORT: String(await freePort()), FD_MQTT_PORT: String(await freePort()), INFLUX_URL: store.url, IOT_DEVICE_MASTER_SECRET: MASTER_SECRET };
  const base = `http://127.0.0.1:${env.PORT}`;
  const node = await NodeRedProcess.start({ flows: frontDoorFlow({ prefix: name, mqttPortEnv: 'FD_MQTT_PORT', httpPath: '/readings', buffer }), env });
  cleanup.push(() => node.dispose());
  const devices = [1, 2, 3].map((i) => new MqttDevice(`${name}-m${i}`, Number(env.FD_MQTT_PORT)));
  const senders = [1, 2].map((i) => {
    const id = `${name}-h${i}`;
    return new HttpSender(id, () => `${base}/readings`, (body) => hmacHeaders(id, 'POST /readings', body));
  });
  cleanup.push(async () => {
    for (const s of senders) s.stopped = true;
    for (const d of devices) await d.end();
  });
  await eventually('the devices connected', () => (devices.every((d) => d.connects > 0) ? true : undefined), 30_000);

  // The store goes down: from now on the buffers only fill.
  await store.stop();
  let producing = true;
  const pad = 'x'.repeat(padding);
  const producers = [
    ...devices.map(async (device) => {
      for (let n = 0; producing; n++) {
        device.publish({ seq: n, temperature: 21, pad } as Reading);
        await sleep(50);
      }
    }),
    ...senders.map(async (sender) => {
      for (let n = 0; producing; n++) {
        sender.send({ seq: n, temperature: 22, pad } as Reading);
        await sleep(50);
      }
    }),
  ];
  const refusedBy = async (door: 'm' | 'h') => (await recorded(base)).bufferRefused.filter((r) => r.code === code && r.device?.startsWith(`${name}-${door}`)).length;
  await eventually(`both buffers refusing with ${code}`, async () => ((await refusedBy('m')) > 0 && (await refusedBy('h')) > 0 ? true : undefined), 180_000, 500);
  const fullAt = Date.now();
  const closesAtFull = devices.reduce((n, d) => n + d.closes, 0);
  const answersAtFull = senders.reduce((n, s) => n + (s.answers.get(503) ?? 0), 0);
  // One post as a sender sees it.
  const probeBody = JSON.stringify({ seq: -1, temperature: 0 });
  const answer = await fetch(`${base}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...hmacHeaders(`${name}-probe`, 'POST /readings', probeBody) }, body: probeBody, signal: AbortSignal.timeout(45_000) });
  const probe = `${answer.status} ${answer.headers.get('retry-after')}`;
  await sleep(10_000);
  producing = false;
  await Promise.all(producers);
  const during = await recorded(base);
  const notTaken = during.events.filter((e) => e.topic === 'not_taken' && e.at >= fullAt - 5_000);

  // Room again: the store comes back, the queue drains, the devices' resends are taken.
  await store.start();
  const roomAt = Date.now();
  // Anything acknowledged from 3 s after the first refusal until the store came back was acknowledged while nothing could drain.
  const acksWhileFull = [...devices, ...senders].flatMap((w) => [...w.ackedAt].filter(([, at]) => at > fullAt + 3_000 && at < roomAt).map(([seq]) => `${w.id}#${seq}`));
  await eventually(
    'every reading acknowledged once there is room',
    () => (devices.every((d) => d.unacked === 0) && senders.every((s) => s.pending === 0) ? true : undefined),
    240_000,
    1_000,
  ).catch(() => undefined);
  const everyone = [...devices, ...senders];
  const notStored = (counts: Map<string, number>) => everyone.flatMap((w) => [...w.acked].filter((s) => !counts.has(`${w.id}#${s}`)).map((s) => `${w.id}#${s}`));
  let counts = new Map<string, number>();
  await eventually('every acknowledged reading in the store', async () => {
    counts = countBySeq(await storedPoints(store as ManagedServer, 'seq'));
    return notStored(counts).length === 0 ? true : undefined;
  }, 60_000, 2_000).catch(() => undefined);

  const after = await recorded(base);
  const outcome: Outcome = {
    acksWhileFull,
    closesWhileFull: devices.reduce((n, d) => n + d.closes, 0) - closesAtFull,
    notTakenReasons: [...new Set(notTaken.map((e) => String(e.payload.reason).split(':')[0]))],
    http503WhileFull: senders.reduce((n, s) => n + (s.answers.get(503) ?? 0), 0) - answersAtFull,
    probe,
    noRetryAfter: senders.reduce((n, s) => n + s.noRetryAfter, 0),
    bufferFills: Object.entries(during.statuses).filter(([id]) => id.endsWith('-buffer')).map(([id, list]) => [id, [...new Set(list.filter((s) => s.at >= fullAt - 5_000).map((s) => s.fill ?? ''))]]),
    acknowledgedNotStored: notStored(counts),
    neverAcknowledged: devices.reduce((n, d) => n + d.unacked, 0) + senders.reduce((n, s) => n + s.pending, 0),
  };
  const tally = new Map<string, number>();
  for (const r of after.bufferRefused.filter((e) => e.at >= roomAt)) tally.set(`${r.device?.replace(/\d+$/, '')} ${r.code}`, (tally.get(`${r.device?.replace(/\d+$/, '')} ${r.code}`) ?? 0) + 1);
  console.log(name, JSON.stringify({ ...outcome, acknowledgedNotStored: outcome.acknowledgedNotStored.length, refusedAfterRoom: [...tally] }));
  for (const [id, list] of Object.entries(after.statuses)) console.log(name, id, JSON.stringify(list.slice(-1).map((s) => `${s.fill}: ${s.text}`)));
  return outcome;
}

/** What every refusal must look like from outside. */
function refusalsAreNotReceipts(outcome: () => Outcome, code: string): void {
  it('no receipt while the buffer refuses: no PUBACK, no 2xx', () => {
    expect(outcome().acksWhileFull).toEqual([]);
  });
  it('the device is disconnected, and a not_taken event on the broker says why', () => {
    expect(outcome().closesWhileFull).toBeGreaterThan(0);
    expect(outcome().notTakenReasons).toEqual([code]);
  });
  it('the HTTP sender is told 503 with Retry-After', () => {
    expect(outcome().probe).toMatch(/^503 \d+$/);
    expect(outcome().http503WhileFull).toBeGreaterThan(0);
    expect(outcome().noRetryAfter).toBe(0);
  });
  it('every acknowledged reading is in the store', () => {
    expect(outcome().acknowledgedNotStored).toEqual([]);
  });
}

describe("a refusal is not a receipt: the buffer's disk is full (1 MB each)", () => {
  let outcome: Outcome;
  beforeAll(async () => {
    const disks = { mqtt: mountTmpfs(1024 * 1024), http: mountTmpfs(1024 * 1024) };
    cleanup.push(() => disks.mqtt.dispose(), () => disks.http.dispose());
    outcome = await refusedWhileFull('disk', (door) => ({ dataDir: disks[door].path }), 2_000, 'disk_full');
  }, 15 * 60_000);
  refusalsAreNotReceipts(() => outcome, 'disk_full');
  it("the buffers' status turns red", () => {
    expect(outcome.bufferFills.filter(([, fills]) => !fills.includes('red')).map(([id]) => id)).toEqual([]);
  });
  // Failed until iot-buffer cut a drained queue's only segment back after a full disk: it kept its
  // size, the disk stayed full and every message was refused disk_full ("0 queued · 0 in flight · disk_full").
  it('once the queue drained there is room again: everything sent is acknowledged and stored', () => {
    expect(outcome.neverAcknowledged).toBe(0);
  });
});

describe("a refusal is not a receipt: the buffer's queue is full (20 messages)", () => {
  let outcome: Outcome;
  beforeAll(async () => {
    outcome = await refusedWhileFull('queue', () => ({ maxMessages: '20' }), 0, 'queue_full');
  }, 15 * 60_000);
  refusalsAreNotReceipts(() => outcome, 'queue_full');
  it('once the queue drained there is room again: everything sent is acknowledged and stored', () => {
    expect(outcome.neverAcknowledged).toBe(0);
  });
});
