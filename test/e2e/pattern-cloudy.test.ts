/**
 * Pattern 5 · Cloudy, end to end: the vendor cloud's signed callbacks with packed binary payloads,
 * answered 204 once the reading is on disk in the queue; every reading decoded and stored exactly,
 * under the vendor's own name for its device (vendor-cloud:sfx-01); the Cases the readings call
 * for; the unsigned, forged, replayed and stale callbacks refused with 401, and the undecodable one
 * with 422 (sending it again would not help), with no trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { exportSeries } from '../support/services';
import { countBy, expectedClears, expectedEpisodes, PatternRun, readingsPerDevice, sorted, temperatureRule } from '../support/patterns';

let run: PatternRun;
let report: Report;

beforeAll(async () => {
  // Sigfox-style times are whole seconds: one callback per device every two seconds keeps them apart.
  run = await PatternRun.start('pattern-5-cloudy.json');
  report = await run.simulate('cloudy', { rate: 0.5, duration: 12, overheatAt: { 0: 1 } });
});
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 5 · Cloudy, end to end', () => {
  it('answers every honest callback 204 once stored, and refuses every bad one with the right status', () => {
    const honest = report.sent.filter((s) => !s.bad);
    expect(honest.length).toBeGreaterThanOrEqual(10);
    expect(honest.filter((s) => s.status !== 204).map((s) => `${s.kind}: ${s.status}`)).toEqual([]);
    expect(report.sent.filter((s) => s.bad).map((s) => `${s.kind}: ${s.status}`).sort()).toEqual(
      ['replayed callback: 401', 'stale timestamp: 401', 'undecodable payload: 422', 'unsigned: 401', 'wrong signature: 401'].sort(),
    );
  });

  it('decodes and stores every accepted reading exactly, at the time the vendor gave', async () => {
    const readings = readingsPerDevice(report);
    const total = [...readings.values()].reduce((n, l) => n + l.length, 0);
    const series = await exportSeries(run.store, 'readings_temperature', total);
    const stored = new Map(series.map((s) => [s.metric.device, s.timestamps.map((t, i) => `${t}=${s.values[i]}`).sort()]));
    expect([...stored.keys()].sort()).toEqual([...readings.keys()].sort());
    expect([...stored.keys()].filter((device) => !/^vendor-cloud:sfx-\d\d$/.test(device))).toEqual([]);
    for (const [device, list] of readings) expect(stored.get(device)).toEqual(list.map((r) => `${r.at}=${r.temperature}`).sort());
    const batteries = await exportSeries(run.store, 'readings_battery', total);
    for (const s of batteries) expect(s.values.sort()).toEqual((readings.get(s.metric.device) ?? []).map((r) => r.battery).sort());
  });

  it('opens exactly the Cases the readings call for, and closes those whose alert cleared', async () => {
    const expected = expectedEpisodes(readingsPerDevice(report), ['temperature', temperatureRule(1)]);
    const cleared = expectedClears(readingsPerDevice(report), ['temperature', temperatureRule(1)]);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    await run.recordsWhen('Case', `${total} Cases`, (r) => r.length >= total);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const cases = await run.records('Case');
    expect(sorted(countBy(cases, 'IoT_Device_Id__c'))).toEqual(sorted(expected));
    expect(sorted(countBy(cases.filter((c) => c.Status === 'Closed'), 'IoT_Device_Id__c'))).toEqual(sorted(cleared));
    for (const c of cases) {
      expect(String(c.IoT_Device_Id__c)).toMatch(/^vendor-cloud:sfx-\d\d$/);
      expect(String(c.Subject)).toMatch(new RegExp(`^temperature above (80|90) on ${String(c.IoT_Device_Id__c)}`));
    }
  });
});
