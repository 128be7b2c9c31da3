/**
 * Pattern 1 · Anonymous, end to end: button presses with no credentials become Web-to-Case and
 * Web-to-Lead posts; the button is told "submitted"; the size cap, the malformed body and the rate
 * limit refuse the bad actor, and nothing it was refused makes a record.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import type { Sent } from '../../simulator/scenarios';
import { PatternRun } from '../support/patterns';

let run: PatternRun;
let report: Report;

beforeAll(async () => {
  run = await PatternRun.start('pattern-1-anonymous.json');
  report = await run.simulate('anonymous', { rate: 1, duration: 6 });
});
afterAll(async () => {
  await run?.dispose();
});

type Press = { kind: string; button: string; location: string; name: string; email: string; company?: string };
const pressOf = (s: Sent) => s.detail as Press;

describe('Pattern 1 · Anonymous, end to end', () => {
  it('tells every button its press was submitted (never created)', () => {
    const honest = report.sent.filter((s) => !s.bad);
    expect(honest.length).toBe(6);
    for (const s of honest) expect(s).toMatchObject({ accepted: true, status: 202, answer: { status: 'submitted' } });
  });

  it('refuses the oversized post, the malformed one and the flood past the rate limit', () => {
    const bad = report.sent.filter((s) => s.bad);
    expect(bad.find((s) => s.kind === 'oversized')?.status).toBe(413);
    expect(bad.find((s) => s.kind === 'malformed')?.status).toBe(400);
    const flood = bad.filter((s) => s.kind === 'flood');
    expect(flood.filter((s) => s.status === 429).length).toBeGreaterThanOrEqual(14);
    expect(flood.every((s) => s.status === 429 || s.status === 202)).toBe(true);
  });

  it('makes one Case per accepted case press and one Lead per accepted lead press, and nothing for what was refused', async () => {
    const accepted = report.sent.filter((s) => s.accepted);
    const cases = accepted.filter((s) => pressOf(s).kind === 'case');
    const leads = accepted.filter((s) => pressOf(s).kind === 'lead');
    const caseRecords = await run.recordsWhen('Case', `${cases.length} Cases`, (r) => r.length >= cases.length);
    const leadRecords = await run.recordsWhen('Lead', `${leads.length} Leads`, (r) => r.length >= leads.length);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await run.records('Case')).length).toBe(cases.length);
    expect((await run.records('Lead')).length).toBe(leads.length);
    expect(caseRecords.map((c) => c.Subject).sort()).toEqual(cases.map((s) => `Easy button ${pressOf(s).button} pressed at ${pressOf(s).location}`).sort());
    expect(caseRecords.map((c) => c.SuppliedEmail).sort()).toEqual(cases.map((s) => pressOf(s).email).sort());
    expect(caseRecords.every((c) => c.Origin === 'Web')).toBe(true);
    expect(leadRecords.map((l) => `${String(l.LastName)} / ${String(l.Company)} / ${String(l.LeadSource)}`).sort()).toEqual(leads.map((s) => `${pressOf(s).name} / ${pressOf(s).company} / IoT`).sort());
  });
});
