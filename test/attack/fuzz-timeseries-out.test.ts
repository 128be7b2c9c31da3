/**
 * iot-timeseries-out fuzzed: 10,000 hostile messages (seeded) into the writer on a v2 connection
 * to a store that takes everything (a fake InfluxDB on loopback), with Catch and Complete nodes
 * scoped to it: no crash, no unhandled rejection, every message done once (written, or refused
 * with a code its help lists), and no line sent that is not a point of the writer's measurement
 * (a crafted tag, field name or text cannot start a line of its own).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import influxdbNode from '../../nodes/influxdb/influxdb';
import timeseriesNode from '../../nodes/timeseries-out/timeseries-out';
import { FakeInflux } from '../support/fake-influx';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems, readingMessage } from '../support/fuzz';
import { withMessages } from '../support/messages';

const CODES = ['backlog_full', 'bad_measurement', 'bad_name', 'bad_point', 'bad_property', 'bad_tag', 'bad_timestamp', 'empty_reading', 'invalid_config', 'missing_value', 'no_fields', 'no_timestamp', 'not_finite', 'not_integer', 'not_written', 'point_rejected', 'too_deep', 'too_large', 'unauthorized', 'write_failed', 'wrong_type'];
fuzzRuntime('timeseries-out');
let store: FakeInflux;
beforeAll(async () => {
  store = await FakeInflux.start(() => ({ status: 204 }));
});
afterAll(async () => {
  await store.close();
});

it('takes 10,000 hostile messages: nothing crashes, every message is done once, every refusal is coded, no line is injected', async () => {
  const report = await fuzzNode({
    modules: [withMessages(influxdbNode, 'influxdb'), withMessages(timeseriesNode, 'timeseries-out')],
    flow: [
      { id: 'db', type: 'iot-influxdb', url: store.url, version: 'v2', org: 'iot', bucket: 'readings', precision: 'ms' },
      { id: 'ts', type: 'iot-timeseries-out', store: 'db', measurement: 'sensor', measurementType: 'str', integerFields: 'rssi', wires: [['written'], ['errors']] },
      { id: 'written', type: 'helper' },
      { id: 'errors', type: 'helper' },
    ],
    credentials: { db: { token: 'fuzz-token' } },
    under: 'ts',
    outputs: ['written'],
    errorOutputs: ['errors'],
    codes: CODES,
    count: 10_000,
    seed: 1204,
    message: (h) => {
      const msg = readingMessage(h);
      if (h.chance(0.1) && msg.payload !== null && typeof msg.payload === 'object' && !Array.isArray(msg.payload)) {
        // Names and text that line protocol must escape.
        (msg.payload as Record<string, unknown>)[h.pick(['a b', 'a,b', 'a=b', 'x\ny', '"q"', '\\', 'rssi', '_field', 'time'])] = h.chance(0.5) ? h.pick(['ok\nsensor,device=pump-2 temperature=99 1', 'a"b', 'c\\', 'x y,z=w']) : h.value();
      }
      if (h.chance(0.05)) msg.payload = Array.from({ length: h.int(0, 4) }, () => (h.chance(0.6) ? { temperature: h.number(), timestamp: h.chance(0.5) ? Date.now() : h.value() } : h.value()));
      // Ready points as objects, or anything but text: line protocol text is written as it is (the help).
      if (h.chance(0.03)) msg.points = h.chance(0.5) ? [{ tags: { device: h.value() }, fields: { temperature: h.value() }, timestamp: h.value() }] : ((v) => (typeof v === 'string' || Array.isArray(v) ? { measurement: 'sensor', fields: v } : v))(h.value());
      return msg;
    },
  });
  console.log(`fuzz timeseries-out: ${JSON.stringify({ sendMs: report.sendMs, settleMs: report.settleMs, codes: report.codes, outputs: report.outputs, generic: report.genericMessages, requests: store.requests.length })}`);
  const foreign = store.requests.flatMap((r) => r.lines).filter((line) => !/^sensor[ ,]/.test(line));
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(foreign.slice(0, 10)).toEqual([]);
  expect(report.accounted).toBe(10_000);
  expect(report.outputs.written).toBeGreaterThan(0);
});
