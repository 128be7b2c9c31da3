/**
 * Pattern 3 · Buffered, end to end: MQTT devices through the broker that knows them and a durable
 * queue; every accepted reading stored; one summary per device and minute with every reading
 * counted; exactly the Cases the readings call for (running hot, and silent once traffic stops);
 * and bad actors (wrong password, unknown device, a device publishing as another) refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { afterMinuteBoundary, countBy, expectedClears, expectedEpisodes, PatternRun, readingsPerDevice, sorted, SUMMARY_WAIT_MS, temperatureRule, type SalesforceRecord } from '../support/patterns';

let run: PatternRun;
let report: Report;
let lastReadingAt = 0;

beforeAll(async () => {
  run = await PatternRun.start('pattern-3-buffered.json');
  report = await run.simulate('buffered', { rate: 2, duration: 6, overheatAt: { 0: 1 } });
  lastReadingAt = Math.max(...report.sent.filter((s) => s.readings).map((s) => s.at));
  // Every minute window closes at the next whole minute; the silence rule fires 30 s after a device's last reading.
  await afterMinuteBoundary();
  const silence = lastReadingAt + 33_000 - Date.now();
  if (silence > 0) await new Promise((resolve) => setTimeout(resolve, silence));
});
afterAll(async () => {
  await run?.dispose();
});

const isBatteryCase = (c: SalesforceRecord) => /^battery of /.test(String(c.Subject));
const perDeviceCounts = (readings: ReturnType<typeof readingsPerDevice>) => new Map([...readings].map(([device, list]) => [device, list.length]));

describe('Pattern 3 · Buffered, end to end', () => {
  it('refuses the wrong password, the unknown device and the device publishing as another', () => {
    const bad = Object.fromEntries(report.sent.filter((s) => s.bad).map((s) => [s.kind.startsWith('publish on') ? 'trespass' : s.kind, s]));
    expect(bad['wrong password']).toMatchObject({ accepted: false });
    expect(bad['unknown device']).toMatchObject({ accepted: false });
    expect(bad.trespass).toMatchObject({ accepted: false, status: 'disconnected' });
  });

  it('stores every accepted reading, and only those', async () => {
    const expected = perDeviceCounts(readingsPerDevice(report));
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(30);
    const stored = await run.storedPerDevice('temperature', total);
    expect(sorted(stored)).toEqual(sorted(expected));
  });

  it('upserts one summary per device and minute, counting every reading once', async () => {
    const expected = perDeviceCounts(readingsPerDevice(report));
    const summaries = await run.recordsWhen('IoT_Device_Summary__c', 'every summary', (records) => {
      const counted = new Map<string, number>();
      for (const r of records) counted.set(String(r.Device_Id__c), (counted.get(String(r.Device_Id__c)) ?? 0) + Number(r.Readings__c));
      return sorted(counted).join() === sorted(expected).join();
    }, SUMMARY_WAIT_MS);
    for (const s of summaries) {
      expect(Number(s.Temperature_Min__c)).toBeLessThanOrEqual(Number(s.Temperature_Mean__c));
      expect(Number(s.Temperature_Mean__c)).toBeLessThanOrEqual(Number(s.Temperature_Max__c));
      expect(String(s.Summary_Id__c)).toMatch(new RegExp(`^${String(s.Device_Id__c)}@\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:00\\.000Z$`));
    }
  });

  it('opens exactly the Cases the readings call for: running hot, and silent once they stop; closes those that cleared', async () => {
    const readings = readingsPerDevice(report);
    const expected = expectedEpisodes(readings, ['temperature', temperatureRule(3)]);
    expect([...expected.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // Every device stopped when the simulation did, so each had one silence episode.
    for (const device of readings.keys()) expected.set(device, (expected.get(device) ?? 0) + 1);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    // The battery forecast's Cases have a test of their own (pattern-buffered-battery.test.ts).
    const cases = (await run.recordsWhen('Case', `${total} Cases`, (r) => r.filter((c) => !isBatteryCase(c)).length >= total)).filter((c) => !isBatteryCase(c));
    expect(sorted(countBy(cases, 'IoT_Device_Id__c'))).toEqual(sorted(expected));
    const silent = cases.filter((c) => /silent for 30 s/.test(String(c.Subject)));
    expect(silent.map((c) => c.IoT_Device_Id__c).sort()).toEqual([...readings.keys()].sort());
    for (const c of cases.filter((x) => !silent.includes(x))) expect(String(c.Subject)).toMatch(new RegExp(`^temperature above (80|90) on ${String(c.IoT_Device_Id__c)}`));
    const cleared = expectedClears(readings, ['temperature', temperatureRule(3)]);
    expect(sorted(countBy(cases.filter((c) => c.Status === 'Closed'), 'IoT_Device_Id__c'))).toEqual(sorted(cleared));
  });
});
