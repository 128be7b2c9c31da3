/**
 * Pattern 6 · Direct (Augmented), end to end: each camera inspection updates the camera's Asset
 * and is answered with its id and the photo's analysis; only an inspection that found corrosion
 * opens a Case (High priority, the analysis on it, linked to the camera's Asset, upserted on the
 * inspection id made the camera's own); cameras with no token, an expired one or a forged one
 * leave nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { accepted, PatternRun } from '../support/patterns';

let run: PatternRun;
let report: Report;

type Inspection = { inspection: string; site: string; rust: number };
const detail = (s: Report['sent'][number]) => s.detail as Inspection;

beforeAll(async () => {
  run = await PatternRun.start('pattern-6-direct-augmented.json');
  report = await run.simulate('augmented', { devices: 2, rate: 1, duration: 4, overheatAt: { 1: 0 } });
});
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 6 · Direct (Augmented), end to end', () => {
  it('refuses the cameras without a valid token', () => {
    expect(report.sent.filter((s) => s.bad).map((s) => `${s.kind}: ${s.status}`).sort()).toEqual(['expired token: 401', 'no token: 401', 'token signed with another key: 401']);
  });

  it("answers every inspection with its camera's Asset and the photo's analysis", async () => {
    const inspections = accepted(report);
    expect(inspections.length).toBe(8);
    const assets = await run.recordsWhen('Asset', 'an Asset per camera', (r) => r.length >= 2);
    expect(assets.map((a) => a.IoT_Device_Id__c).sort()).toEqual(['cam-01', 'cam-02']);
    for (const sent of inspections) {
      const answer = sent.answer as { assetId: string; analysis: string; corrosion: boolean };
      expect(answer.assetId).toBe(assets.find((a) => a.IoT_Device_Id__c === sent.sender)?.Id);
      expect(answer.corrosion).toBe(detail(sent).rust >= 20);
      expect(answer.analysis).toMatch(detail(sent).rust >= 20 ? /^corrosion found on \d+% of the inspected surface/ : /^no corrosion to speak of/);
    }
  });

  it('opens a Case only for an inspection that found corrosion, with the analysis, on the camera\'s Asset', async () => {
    const inspections = accepted(report);
    const corroded = inspections.filter((s) => detail(s).rust >= 20);
    expect(corroded.length).toBeGreaterThan(0);
    expect(corroded.length).toBeLessThan(inspections.length);
    await run.recordsWhen('Case', `${corroded.length} Cases`, (r) => r.length >= corroded.length);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const cases = await run.records('Case');
    const assets = await run.records('Asset');
    expect(cases.map((c) => c.IoT_Alert_Id__c).sort()).toEqual(corroded.map((s) => `inspection:${s.sender}:${detail(s).inspection}`).sort());
    for (const sent of corroded) {
      const record = cases.find((c) => c.IoT_Alert_Id__c === `inspection:${sent.sender}:${detail(sent).inspection}`);
      expect(record).toMatchObject({
        Subject: `Corrosion found by ${sent.sender} at ${detail(sent).site}`,
        Priority: 'High',
        IoT_Device_Id__c: sent.sender,
        AssetId: assets.find((a) => a.IoT_Device_Id__c === sent.sender)?.Id,
        IoT_Analysis__c: expect.stringMatching(/^corrosion found on \d+% of the inspected surface/),
      });
    }
  });
});
