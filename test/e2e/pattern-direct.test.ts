/**
 * Pattern 2 · Direct, end to end: devices sign their reports (HMAC or JWT); each is answered with
 * its Asset's id, the Asset holds the last reading, a hot reading or a weak battery opens exactly
 * one Case per alert episode, and no bad actor leaves a trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { accepted, BATTERY_RULE, countBy, expectedClears, expectedEpisodes, PatternRun, readingsPerDevice, sorted, temperatureRule } from '../support/patterns';

let run: PatternRun;
let report: Report;

beforeAll(async () => {
  run = await PatternRun.start('pattern-2-direct.json');
  report = await run.simulate('direct', { overheatAt: { 0: 2 } });
});
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 2 · Direct, end to end', () => {
  it('answers every signed report with the id of its Asset', () => {
    const honest = accepted(report);
    expect(honest.length).toBeGreaterThanOrEqual(30);
    for (const sent of honest) expect((sent.answer as { recordId: string }).recordId).toMatch(/^02i[A-Za-z0-9]{15}$/);
    expect(report.sent.filter((s) => !s.bad && !s.accepted)).toEqual([]);
  });

  it('refuses every bad actor with the right status', () => {
    const bad = report.sent.filter((s) => s.bad);
    expect(bad.map((s) => `${s.kind}: ${s.status}`).sort()).toEqual(
      [
        'alg none: 401',
        'expired token: 401',
        'forged signature: 401',
        'oversized: 413',
        'replayed request: 401',
        'stale timestamp: 401',
        'unknown device: 401',
        'wrong audience: 401',
      ].sort(),
    );
  });

  it('keeps one Asset per device, holding its last reading, and none for strangers', async () => {
    const readings = readingsPerDevice(report);
    const assets = await run.recordsWhen('Asset', 'an Asset per device', (records) => records.length >= readings.size);
    expect(assets.map((a) => a.IoT_Device_Id__c).sort()).toEqual([...readings.keys()].sort());
    for (const asset of assets) {
      const last = readings.get(String(asset.IoT_Device_Id__c))?.at(-1);
      expect(asset.Last_Temperature__c).toBe(last?.temperature);
      expect(asset.Last_Battery__c).toBe(last?.battery);
      expect(asset.AccountId).toMatch(/^001/);
    }
  });

  it('opens exactly one Case per alert episode, naming the device, the reading and the rule, and closes those that cleared', async () => {
    const expected = expectedEpisodes(readingsPerDevice(report), ['temperature', temperatureRule(1)], ['battery', BATTERY_RULE]);
    const cleared = expectedClears(readingsPerDevice(report), ['temperature', temperatureRule(1)], ['battery', BATTERY_RULE]);
    expect([...expected.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    const cases = await run.recordsWhen('Case', `${total} Cases`, (records) => records.length >= total);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const settled = await run.records('Case');
    expect(sorted(countBy(settled, 'IoT_Device_Id__c'))).toEqual(sorted(expected));
    expect(sorted(countBy(settled.filter((c) => c.Status === 'Closed'), 'IoT_Device_Id__c'))).toEqual(sorted(cleared));
    for (const c of cases) {
      expect(String(c.Subject)).toMatch(new RegExp(`^(temperature above (80|90)|battery below 3.3) on ${String(c.IoT_Device_Id__c)}`));
      expect(String(c.Description)).toContain(String(c.IoT_Device_Id__c));
      expect(String(c.Description)).toMatch(/above|below/);
      expect(c.IoT_Alert_Id__c).toMatch(/^[0-9a-f]{24}$/);
    }
  });
});
