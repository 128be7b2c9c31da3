/**
 * Issue 11 item 8 from outside: "a reading keeps its own time", across a 60 s store outage.
 *
 * The README's two doors at their defaults (the broker acknowledging once stored, device-auth
 * answering HTTP once stored, each into iot-buffer and iot-timeseries-out), devices and senders
 * reporting once a second, victoria-metrics stopped for 60 s in the middle of the run. Readings
 * carry their own time as the README allows it (ms or seconds since the epoch, told apart by size,
 * or ISO 8601 with a zone), or none. Read back point by point (no deduplication, so a second copy
 * of a reading shows):
 *   - a reading with its own time is stored at that time, every copy of it;
 *   - one without is stored at the time it was accepted: after it was sent and before its
 *     receipt came, so never at the time the backlog was written after the outage;
 *   - the time is not stored as a value field as well (no `readings_timestamp` series);
 *   - the doors kept acknowledging during the outage (the buffer took the readings).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recorded, frontDoorFlow, hmacHeaders, HttpSender, MASTER_SECRET, MqttDevice, startCountingVictoriaMetrics, storedPoints, type Reading, type StoredPoint } from '../support/front-doors';
import { NodeRedProcess } from '../support/node-red-process';
import { freePort, type ManagedServer } from '../support/services';
import { eventually, sleep } from '../support/wait';

const OUTAGE_MS = 60_000;
/** Devices measure a little before they send. */
const MEASURED_BEFORE_MS = 1_500;

type TimeForm = 'ms' | 's' | 'iso' | 'none';
const FORMS: TimeForm[] = ['ms', 's', 'iso', 'none'];

/** The reading's own time as the device writes it, and the time it must be stored at. */
function ownTime(form: TimeForm, sentAt: number): { field?: number | string; expected?: number } {
  const measured = sentAt - MEASURED_BEFORE_MS;
  if (form === 'ms') return { field: measured, expected: measured };
  if (form === 's') return { field: Math.floor(measured / 1000), expected: Math.floor(measured / 1000) * 1000 };
  if (form === 'iso') return { field: new Date(measured).toISOString(), expected: measured };
  return {};
}

/** Problems per device: how many, and the first one. */
function byDevice(problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const problem of problems) {
    const device = problem.split('#')[0];
    const count = problems.filter((p) => p.startsWith(`${device}#`)).length;
    out[device] ??= `${count} readings, e.g. ${problem}`;
  }
  return out;
}

const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

interface Outcome {
  notStored: string[];
  wrongOwnTime: string[];
  notAtAcceptance: string[];
  atWriteTime: string[];
  timeSeries: string;
  ackedDuringOutage: Record<string, number>;
}

async function run(): Promise<Outcome> {
  const store: ManagedServer = await startCountingVictoriaMetrics();
  cleanup.push(() => store.dispose());
  const env = { PORT: String(await freePort()), FD_MQTT_PORT: String(await freePort()), INFLUX_URL: store.url, IOT_DEVICE_MASTER_SECRET: MASTER_SECRET };
  const base = `http://127.0.0.1:${env.PORT}`;
  const node = await NodeRedProcess.start({ flows: frontDoorFlow({ prefix: 'time', mqttPortEnv: 'FD_MQTT_PORT', httpPath: '/readings' }), env });
  cleanup.push(() => node.dispose());

  const devices = FORMS.map((form) => ({ form, device: new MqttDevice(`tm-${form}`, Number(env.FD_MQTT_PORT)) }));
  const senders = FORMS.map((form) => {
    const id = `th-${form}`;
    return { form, sender: new HttpSender(id, () => `${base}/readings`, (body) => hmacHeaders(id, 'POST /readings', body)) };
  });
  cleanup.push(async () => {
    for (const { sender } of senders) sender.stopped = true;
    for (const { device } of devices) await device.end();
  });
  await eventually('the devices connected', () => (devices.every(({ device }) => device.connects > 0) ? true : undefined), 30_000);

  /** The time each reading must be stored at, when the device gave one. */
  const expected = new Map<string, number>();
  let producing = true;
  const reading = (id: string, form: TimeForm, seq: number): Reading => {
    const { field, expected: at } = ownTime(form, Date.now());
    if (at !== undefined) expected.set(`${id}#${seq}`, at);
    return { seq, temperature: 20 + (seq % 10), ...(field === undefined ? {} : { timestamp: field as number }) };
  };
  const producers = [
    ...devices.map(async ({ form, device }) => {
      for (let seq = 0; producing; seq++) {
        device.publish(reading(device.id, form, seq));
        await sleep(1_000);
      }
    }),
    ...senders.map(async ({ form, sender }) => {
      for (let seq = 0; producing; seq++) {
        sender.send(reading(sender.id, form, seq));
        await sleep(1_000);
      }
    }),
  ];

  await sleep(15_000);
  await store.stop();
  const outageStart = Date.now();
  await sleep(OUTAGE_MS);
  await store.start();
  const outageEnd = Date.now();
  await sleep(15_000);
  producing = false;
  await Promise.all(producers);
  const everyone = [...devices.map((d) => d.device), ...senders.map((s) => s.sender)];
  await eventually('every reading acknowledged', () => (everyone.every((w) => ('unacked' in w ? w.unacked === 0 : w.pending === 0)) ? true : undefined), 120_000, 500);

  const acknowledged = everyone.flatMap((w) => [...w.acked].map((seq) => `${w.id}#${seq}`));
  let points: StoredPoint[] = [];
  await eventually('every acknowledged reading in the store', async () => {
    points = (await storedPoints(store, 'seq')).filter((p) => p.device.startsWith('tm-') || p.device.startsWith('th-'));
    const stored = new Set(points.map((p) => `${p.device}#${p.value}`));
    return acknowledged.every((key) => stored.has(key)) ? true : undefined;
  }, 180_000, 2_000).catch(() => undefined);
  const stored = new Set(points.map((p) => `${p.device}#${p.value}`));

  const who = new Map(everyone.map((w) => [w.id, w]));
  const wrongOwnTime: string[] = [];
  const notAtAcceptance: string[] = [];
  const atWriteTime: string[] = [];
  for (const p of points) {
    const key = `${p.device}#${p.value}`;
    const w = who.get(p.device);
    if (!w) continue;
    const sentAt = w.sentAt.get(p.value) as number;
    const ackedAt = w.ackedAt.get(p.value) as number;
    const own = expected.get(key);
    if (own !== undefined) {
      if (p.time !== own) wrongOwnTime.push(`${key} at ${new Date(p.time).toISOString()}, its own time ${new Date(own).toISOString()}`);
    } else if (p.time < sentAt - 20 || p.time > ackedAt + 20) {
      notAtAcceptance.push(`${key} at ${p.time - sentAt} ms after it was sent, acknowledged ${ackedAt - sentAt} ms after`);
    }
    // A reading sent in the last second of the outage may rightly be accepted, and stamped, after the store came
    // back: only readings sent earlier tell their own time from the write time.
    if (sentAt >= outageStart && sentAt < outageEnd - 1_000 && p.time >= outageEnd) atWriteTime.push(`${key} sent ${Math.round((outageEnd - sentAt) / 1000)} s before the store came back, stored ${Math.round((p.time - outageEnd) / 1000)} s after`);
  }
  const ackedDuringOutage = (w: { ackedAt: Map<number, number> }) => [...w.ackedAt.values()].filter((at) => at > outageStart + 2_000 && at < outageEnd).length;
  const timeSeries = await fetch(`${store.url}/api/v1/export?match[]=${encodeURIComponent('{__name__=~"readings_timestamp.*"}')}`).then((r) => r.text());
  console.log(JSON.stringify({
    points: points.length,
    acknowledged: acknowledged.length,
    ackedDuringOutage: { mqtt: devices.reduce((n, d) => n + ackedDuringOutage(d.device), 0), http: senders.reduce((n, s) => n + ackedDuringOutage(s.sender), 0) },
    wrongOwnTime: wrongOwnTime.length,
    notAtAcceptance: notAtAcceptance.length,
    atWriteTime: atWriteTime.length,
  }));

  const seen = await recorded(base);
  for (const [id, list] of Object.entries(seen.statuses)) console.log(id, JSON.stringify(list.slice(-1).map((st) => `${st.fill}: ${st.text}`)));
  return {
    notStored: acknowledged.filter((key) => !stored.has(key)),
    wrongOwnTime,
    notAtAcceptance,
    atWriteTime,
    timeSeries: timeSeries.trim(),
    ackedDuringOutage: Object.fromEntries(everyone.map((w) => [w.id, ackedDuringOutage(w)])),
  };
}

describe('the reading keeps its own time through a 60 s store outage', () => {
  let outcome: Outcome;
  beforeAll(async () => {
    outcome = await run();
  }, 15 * 60_000);

  it('every acknowledged reading is stored', () => {
    expect(outcome.notStored).toEqual([]);
  });
  it('a reading with its own time in ms or ISO 8601 is stored at that time, every copy of it', () => {
    const problems = byDevice(outcome.wrongOwnTime);
    expect(Object.fromEntries(Object.entries(problems).filter(([device]) => !device.endsWith('-s')))).toEqual({});
  });
  // device-auth takes seconds ("told apart by size"); iot-timeseries-out at its default time
  // setting (the reading's own `timestamp` field, in ms) once wrote them in January 1970.
  it('a reading with its own time in seconds is stored at that time', () => {
    expect(byDevice(outcome.wrongOwnTime)).toEqual({});
  });
  it('a reading without a time is stored at the time it was accepted: after it was sent, before its receipt', () => {
    expect(byDevice(outcome.notAtAcceptance)).toEqual({});
  });
  it('no reading sent during the outage is stored at the time the backlog was written', () => {
    expect(byDevice(outcome.atWriteTime)).toEqual({});
  });
  it('the time is not stored as a value field too', () => {
    expect(outcome.timeSeries).toBe('');
  });
  it('the doors went on acknowledging while the store was down (the buffer took the readings)', () => {
    expect(Object.entries(outcome.ackedDuringOutage).filter(([, n]) => n < 30)).toEqual([]);
  });
});
