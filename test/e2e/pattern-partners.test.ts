/**
 * Pattern 7 · Buffered by Partners, end to end: the partner's signed reports are answered 202 once
 * every record they make is on disk in the queue; they keep one Asset per partner device (named as
 * the partner's own: partner-fleetco:fc-01) up to date and turn each partner alert into one Case
 * (a later report of the same alert updates it, a cleared one closes it); unsigned and forged
 * reports change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { accepted, PatternRun } from '../support/patterns';

let run: PatternRun;
let report: Report;

type Device = { id: string; temperature?: { last: number }; alerts: Array<{ id: string; state: string }> };

const PARTNER = 'partner-fleetco';

beforeAll(async () => {
  run = await PatternRun.start('pattern-7-buffered-by-partners.json');
  report = await run.simulate('partners', { rate: 2, duration: 6, overheatAt: { 0: 1 } });
});
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 7 · Buffered by Partners, end to end', () => {
  it('answers every honest report 202 once stored, and refuses the unsigned and the forged one', () => {
    const honest = report.sent.filter((s) => !s.bad);
    expect(honest.length).toBeGreaterThanOrEqual(10);
    expect(honest.filter((s) => !(s.status === 202 && (s.answer as { status?: string })?.status === 'stored')).map((s) => `${s.kind}: ${s.status}`)).toEqual([]);
    expect(report.sent.filter((s) => s.bad).map((s) => `${s.kind}: ${s.status}`).sort()).toEqual(['unsigned: 401', 'wrong signature: 401']);
  });

  it("keeps one Asset per partner device, named as the partner's own, with its last reported temperature", async () => {
    const last = new Map<string, number>();
    for (const s of accepted(report)) for (const d of (s.detail as { devices: Device[] }).devices) if (d.temperature) last.set(`${PARTNER}:${d.id}`, d.temperature.last);
    const assets = await run.recordsWhen('Asset', 'every partner device', (r) => r.length >= last.size && r.every((a) => a.Last_Temperature__c === last.get(String(a.IoT_Device_Id__c))));
    expect(assets.map((a) => a.IoT_Device_Id__c).sort()).toEqual([...last.keys()].sort());
  });

  it("opens one Case per partner alert, keyed by the partner's alert id, and closes it when the partner clears it", async () => {
    const alerts = new Set<string>();
    const cleared = new Set<string>();
    for (const s of accepted(report)) {
      for (const d of (s.detail as { devices: Device[] }).devices) {
        for (const a of d.alerts) {
          alerts.add(`${PARTNER}:${a.id}`);
          if (a.state === 'cleared') cleared.add(`${PARTNER}:${a.id}`);
        }
      }
    }
    expect(alerts.size).toBeGreaterThan(0);
    const cases = await run.recordsWhen('Case', `${alerts.size} Cases`, (r) => r.length >= alerts.size);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const settled = await run.records('Case');
    expect(settled.map((c) => c.IoT_Alert_Id__c).sort()).toEqual([...alerts].sort());
    expect(settled.filter((c) => c.Status === 'Closed').map((c) => c.IoT_Alert_Id__c).sort()).toEqual([...cleared].sort());
    for (const c of cases) {
      expect(String(c.Subject)).toMatch(/^temperature above 85 on partner-fleetco:fc-\d\d$/);
      expect(String(c.Description)).toContain(`rule: reported by ${PARTNER}`);
    }
  });
});
