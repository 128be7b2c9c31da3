/**
 * Pattern 6 · Direct (Augmented), end to end: each camera inspection opens one Case, the camera
 * gets the Case id, and the photo's analysis is written back to that same Case (corrosion raises
 * the priority); cameras with no token, an expired one or a forged one leave no Case.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { accepted, PatternRun } from '../support/patterns';

let run: PatternRun;
let report: Report;

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

  it('opens one Case per inspection, answers with its id, and writes the analysis back to it', async () => {
    const inspections = accepted(report);
    expect(inspections.length).toBe(8);
    const cases = await run.recordsWhen('Case', 'every inspection analysed', (r) => r.length >= inspections.length && r.every((c) => typeof c.IoT_Analysis__c === 'string'));
    expect(cases.length).toBe(inspections.length);
    for (const sent of inspections) {
      const detail = sent.detail as { inspection: string; rust: number };
      const record = cases.find((c) => c.IoT_Alert_Id__c === `inspection:${detail.inspection}`);
      expect(record, detail.inspection).toBeDefined();
      expect((sent.answer as { caseId: string }).caseId).toBe(record?.Id);
      expect(String(record?.Subject)).toMatch(new RegExp(`^Inspection photo from ${sent.sender} \\(.+\\)$`));
      expect(record?.IoT_Device_Id__c).toBe(sent.sender);
      if (detail.rust >= 20) expect(record).toMatchObject({ Priority: 'High', IoT_Analysis__c: expect.stringMatching(/^corrosion found on \d+% of the inspected surface/) });
      else expect(record).toMatchObject({ Priority: 'Low', IoT_Analysis__c: expect.stringMatching(/^no corrosion to speak of/) });
    }
    expect(inspections.some((s) => (s.detail as { rust: number }).rust >= 20)).toBe(true);
  });
});
