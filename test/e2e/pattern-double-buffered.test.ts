/**
 * Pattern 8 · Double Buffered, end to end: the partner's signed batches are stored durably before
 * the partner is answered; every reading reaches the time-series store once; each device's
 * readings are summarised per minute and judged; forged and replayed batches change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { afterMinuteBoundary, countBy, expectedClears, expectedEpisodes, PatternRun, readingsPerDevice, sorted, SUMMARY_WAIT_MS, temperatureRule, type SalesforceRecord } from '../support/patterns';

let run: PatternRun;
let report: Report;

beforeAll(async () => {
  run = await PatternRun.start('pattern-8-double-buffered.json');
  report = await run.simulate('double', { rate: 2, duration: 6, overheatAt: { 0: 1 } });
  await afterMinuteBoundary();
});
afterAll(async () => {
  await run?.dispose();
});

const isBatteryCase = (c: SalesforceRecord) => /^battery of /.test(String(c.Subject));
const counts = (report: Report) => new Map([...readingsPerDevice(report)].map(([device, list]) => [device, list.length]));

describe('Pattern 8 · Double Buffered, end to end', () => {
  it('answers every batch once it is on disk, and refuses the forged and the replayed one', () => {
    const honest = report.sent.filter((s) => !s.bad);
    expect(honest.length).toBeGreaterThanOrEqual(10);
    expect(honest.filter((s) => !(s.accepted && s.status === 202 && (s.answer as { status: string }).status === 'stored')).map((s) => `${s.kind}: ${s.status}`)).toEqual([]);
    expect(report.sent.filter((s) => s.bad).map((s) => `${s.kind}: ${s.status}`).sort()).toEqual(['replayed batch: 401', 'wrong signature: 401']);
  });

  it("stores every reading once, under the partner's own name for its device", async () => {
    const expected = counts(report);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(30);
    expect([...expected.keys()].filter((device) => !/^partner-relayco:rc-\d\d$/.test(device))).toEqual([]);
    expect(sorted(await run.storedPerDevice('temperature', total))).toEqual(sorted(expected));
  });

  it('upserts one summary per device and minute, counting every reading once', async () => {
    const expected = counts(report);
    await run.recordsWhen('IoT_Device_Summary__c', 'every summary', (records) => {
      const counted = new Map<string, number>();
      for (const r of records) counted.set(String(r.Device_Id__c), (counted.get(String(r.Device_Id__c)) ?? 0) + Number(r.Readings__c));
      return sorted(counted).join() === sorted(expected).join();
    }, SUMMARY_WAIT_MS);
  });

  it('opens exactly the Cases the readings call for, and closes those whose alert cleared', async () => {
    const expected = expectedEpisodes(readingsPerDevice(report), ['temperature', temperatureRule(3)]);
    const cleared = expectedClears(readingsPerDevice(report), ['temperature', temperatureRule(3)]);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    await run.recordsWhen('Case', `${total} Cases`, (r) => r.filter((c) => !isBatteryCase(c)).length >= total);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // The battery forecast (proven in pattern-buffered-battery.test.ts) opens Cases of its own: each names its device and when.
    const all = await run.records('Case');
    for (const c of all.filter(isBatteryCase)) expect(String(c.Subject)).toMatch(new RegExp(`^battery of ${String(c.IoT_Device_Id__c)} predicted below 3\\.3 V around .+ UTC \\(in .+\\)$`));
    const cases = all.filter((c) => !isBatteryCase(c));
    expect(sorted(countBy(cases, 'IoT_Device_Id__c'))).toEqual(sorted(expected));
    expect(sorted(countBy(cases.filter((c) => c.Status === 'Closed'), 'IoT_Device_Id__c'))).toEqual(sorted(cleared));
    for (const c of cases) expect(String(c.Subject)).toMatch(new RegExp(`^temperature above (80|90) on ${String(c.IoT_Device_Id__c)}`));
  });
});
