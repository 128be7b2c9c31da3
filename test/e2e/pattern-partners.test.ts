/**
 * Pattern 7 · Buffered by Partners, end to end: the partner's signed reports keep one Asset per
 * partner device up to date and turn each partner alert into one Case (a later report of the same
 * alert updates it); unsigned and forged reports change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { accepted, PatternRun } from '../support/patterns';

let run: PatternRun;
let report: Report;

type Device = { id: string; temperature?: { last: number }; alerts: Array<{ id: string; state: string }> };

beforeAll(async () => {
  run = await PatternRun.start('pattern-7-buffered-by-partners.json');
  report = await run.simulate('partners', { rate: 2, duration: 6, overheatAt: { 0: 1 } });
});
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 7 · Buffered by Partners, end to end', () => {
  it('refuses the unsigned and the forged report', () => {
    expect(report.sent.filter((s) => s.bad).map((s) => `${s.kind}: ${s.status}`).sort()).toEqual(['unsigned: 401', 'wrong signature: 401']);
  });

  it('keeps one Asset per partner device with its last reported temperature', async () => {
    const last = new Map<string, number>();
    for (const s of accepted(report)) for (const d of (s.detail as { devices: Device[] }).devices) if (d.temperature) last.set(`fleetco:${d.id}`, d.temperature.last);
    const assets = await run.recordsWhen('Asset', 'every partner device', (r) => r.length >= last.size && r.every((a) => a.Last_Temperature__c === last.get(String(a.IoT_Device_Id__c))));
    expect(assets.map((a) => a.IoT_Device_Id__c).sort()).toEqual([...last.keys()].sort());
  });

  it("opens one Case per partner alert, keyed by the partner's alert id", async () => {
    const alerts = new Set<string>();
    for (const s of accepted(report)) for (const d of (s.detail as { devices: Device[] }).devices) for (const a of d.alerts) alerts.add(`fleetco:${a.id}`);
    expect(alerts.size).toBeGreaterThan(0);
    const cases = await run.recordsWhen('Case', `${alerts.size} Cases`, (r) => r.length >= alerts.size);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await run.records('Case')).map((c) => c.IoT_Alert_Id__c).sort()).toEqual([...alerts].sort());
    for (const c of cases) {
      expect(String(c.Subject)).toMatch(/^temperature above 85 on fleetco:fc-\d\d$/);
      expect(String(c.Description)).toContain('rule: reported by fleetco');
    }
  });
});
