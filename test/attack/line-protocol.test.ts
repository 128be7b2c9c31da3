/**
 * Line-protocol injection against a running `npm start`: a device that authenticates with its own
 * key sends readings whose text values, field names and tag values are crafted to close the
 * point it is given and write one of its own, for another device. The operator's tab stores
 * text fields as strings (the setting the injection needs) into a real InfluxDB 1.6 and into the
 * managed victoria-metrics: neither may hold any point but the device's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, storedSeries, type HttpAnswer } from '../support/attacker';
import { hmacHeaders, hmacSigned } from '../support/device-credentials';
import { disposedAfterAll } from '../support/node-red-after-all';
import { type NodeRedProcess } from '../support/node-red-process';
import { startInfluxDB, type ManagedServer } from '../support/services';
import { eventually } from '../support/wait';

const started = disposedAfterAll();
let node: NodeRedProcess;
let influx: ManagedServer;
const DEVICE = 'meter-31';
const SECRET = 'meter-31-hmac-secret-0123456789';

/** The crafted texts: each would write a point for pump-01 if the writer built line protocol by hand. */
const CRAFTED: Array<Record<string, unknown>> = [
  { temperature: 20.1, status: 'ok"\nreadings,device=pump-01 temperature=-273.15' },
  { temperature: 20.2, status: 'ok\\"\nreadings,device=pump-01 temperature=-273.15' },
  { temperature: 20.3, status: 'ok\r\nreadings,device=pump-01 temperature=-273.15 1700000000000' },
  { temperature: 20.4, status: 'ok\\' },
  { temperature: 20.5, 'status="x"\nreadings,device=pump-01 temperature': -273.15 },
  { temperature: 20.6, 'temperature,device=pump-01 temperature': -273.15 },
  { temperature: 20.7, site: 'roof,device=pump-01' },
  { temperature: 20.8, site: 'roof temperature=-273.15\nreadings,device=pump-01' },
  { temperature: 20.85, site: 'roof\\' },
];

function operatorTab(): Record<string, unknown> {
  const writer = (id: string, store: string) => ({
    id,
    type: 'iot-timeseries-out',
    store,
    measurement: 'readings',
    measurementType: 'str',
    readings: 'payload',
    readingsType: 'msg',
    valueField: 'value',
    deviceTag: true,
    gatewayTag: true,
    topicTag: false,
    tags: [],
    tagKeys: 'site',
    integerFields: '',
    text: 'string',
    time: 'timestamp',
    timeType: 'msg',
    timeUnit: 'ms',
    wires: [[], []],
  });
  return {
    label: 'attack: text stored as strings',
    configs: [
      { id: 'lp.registry', type: 'iot-device-registry', name: 'meters', source: 'list', devices: [{ id: DEVICE, enabled: true, methods: 'hmac' }], credentials: { secrets: JSON.stringify({ [DEVICE]: { secret: SECRET } }) } },
      { id: 'lp.influx16', type: 'iot-influxdb', name: 'InfluxDB 1.6', url: '${ATTACK_INFLUX_URL}', version: 'v1', database: 'attack', precision: 'ms', gzip: true, timeout: '10' },
      { id: 'lp.vm', type: 'iot-influxdb', name: 'victoria-metrics', url: '${INFLUX_URL}', version: 'v1', database: 'attack', precision: 'ms', gzip: true, timeout: '10' },
    ],
    nodes: [
      { id: 'lp.in', type: 'http in', url: '/attack/text', method: 'post', upload: false, skipBodyParsing: true, wires: [['lp.auth']] },
      { id: 'lp.auth', type: 'iot-device-auth', registry: 'lp.registry', method: 'hmac', wires: [['lp.ok', 'lp.to-influx16', 'lp.to-vm'], ['lp.answer']] },
      { id: 'lp.ok', type: 'change', rules: [{ t: 'set', p: 'statusCode', pt: 'msg', to: '202', tot: 'num' }, { t: 'set', p: 'payload', pt: 'msg', to: 'taken', tot: 'str' }], wires: [['lp.answer']] },
      { id: 'lp.answer', type: 'http response', statusCode: '', headers: {}, wires: [] },
      writer('lp.to-influx16', 'lp.influx16'),
      writer('lp.to-vm', 'lp.vm'),
    ],
  };
}

/** InfluxDB 1.x: the series of the measurement `readings` in database `attack`, as "readings,tag=value,..." keys. */
async function influxSeries(): Promise<string[]> {
  const answer = (await fetch(`${influx.url}/query?db=attack&q=${encodeURIComponent('SHOW SERIES')}`).then((r) => r.json())) as { results: Array<{ series?: Array<{ values: string[][] }> }> };
  return (answer.results[0].series ?? []).flatMap((s) => s.values.map((v) => v[0]));
}

/** InfluxDB 1.x: every temperature written, by device tag. */
async function influxTemperatures(): Promise<Array<{ device: string; temperature: number }>> {
  const answer = (await fetch(`${influx.url}/query?db=attack&q=${encodeURIComponent('SELECT temperature, device FROM readings')}`).then((r) => r.json())) as { results: Array<{ series?: Array<{ values: Array<[string, number, string]> }> }> };
  return (answer.results[0].series ?? []).flatMap((s) => s.values.map(([, temperature, device]) => ({ device, temperature })));
}

beforeAll(async () => {
  influx = await startInfluxDB();
  const created = await fetch(`${influx.url}/query?q=${encodeURIComponent('CREATE DATABASE "attack"')}`, { method: 'POST' });
  expect(created.ok).toBe(true);
  node = await started({ env: { ATTACK_INFLUX_URL: influx.url } });
  const added = await fetch(`${node.editorUrl}/flow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(operatorTab()) });
  expect(added.status, await added.text()).toBe(200);
  await eventually('the operator tab answering', async () => ((await send(`${node.editorUrl}/attack/text`, { body: '{}' })).status === 401 ? true : undefined), 30_000, 250);
}, 180_000);
afterAll(async () => {
  await influx?.dispose();
});

function report(reading: Record<string, unknown>): Promise<HttpAnswer> {
  const body = JSON.stringify(reading);
  return send(`${node.editorUrl}/attack/text`, { body, headers: hmacHeaders(hmacSigned(Buffer.from(SECRET), DEVICE, 'POST /attack/text', body)) });
}

describe('line-protocol injection', () => {
  it("writes a device's crafted text, field names and tag values as its own point, never a point for another device: InfluxDB 1.6 and victoria-metrics", async () => {
    const answers: number[] = [];
    for (const reading of CRAFTED) answers.push((await report(reading)).status);
    expect(answers).toEqual(CRAFTED.map(() => 202));
    // A plain reading last: once both stores have it, they have had every crafted one.
    expect((await report({ temperature: 20.9, status: 'ok' })).status).toBe(202);
    await eventually('the last reading in InfluxDB 1.6', async () => ((await influxTemperatures()).some((p) => p.temperature === 20.9) ? true : undefined), 30_000, 250);
    await eventually('the last reading in victoria-metrics', async () => ((await storedSeries(node.timeSeriesUrl, 'temperature')).some((s) => s.metric.db === 'attack' && s.values.includes(20.9)) ? true : undefined), 30_000, 250);

    const influxDevices = [...new Set((await influxTemperatures()).map((p) => p.device))];
    expect(influxDevices).toEqual([DEVICE]);
    expect((await influxSeries()).filter((key) => !key.startsWith(`readings,device=${DEVICE}`))).toEqual([]);
    expect((await influxTemperatures()).filter((p) => p.temperature === -273.15)).toEqual([]);
    const vmSeries = (await storedSeries(node.timeSeriesUrl, 'temperature')).filter((s) => s.metric.db === 'attack');
    expect(vmSeries.filter((s) => s.metric.device !== DEVICE).map((s) => s.metric)).toEqual([]);
    expect(vmSeries.filter((s) => s.values.includes(-273.15)).map((s) => s.metric)).toEqual([]);
    // The store's own series of other patterns hold no point written by this device either.
    expect((await storedSeries(node.timeSeriesUrl, 'temperature')).filter((s) => s.values.includes(-273.15)).map((s) => s.metric)).toEqual([]);
  });
});
