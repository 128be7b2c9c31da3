/**
 * The CRM page of the local Salesforce sandbox: what a support agent reads of each Case (device,
 * reading, rule, severity, Account name, analysis), from the Case's fields, its Asset, or the
 * description the pack's ready-made Case writes; the filters by device and status; the pages.
 */
import { describe, expect, it } from 'vitest';
import { caseFromAlert, type Alert } from '../../nodes/salesforce-out/record-mapping';
import { CASES_PER_PAGE, caseFacts, caseView } from '../../sandbox/salesforce/page';
import type { Fields, StoredRecord } from '../../sandbox/salesforce/store';

const account: StoredRecord = { type: 'Account', fields: { Id: '001000000000001AAA', Name: 'Acme Water' } };
const asset: StoredRecord = { type: 'Asset', fields: { Id: '02i000000000001AAA', Name: 'Pump 2', IoT_Device_Id__c: 'pump-2', AccountId: account.fields.Id } };
const records = new Map([account, asset].map((r) => [r.fields.Id, r]));
const record = (id: string) => records.get(id);

const raised: Alert = { id: 'pump-1-temperature-1', state: 'raised', key: 'pump-1', reading: 'temperature', rule: 'above', severity: 'major', value: 91.5, threshold: 80, since: 1_795_300_000_000, at: 1_795_300_000_000 };
const options = { origin: 'IoT', closeOnClear: true, externalIdField: 'IoT_Alert_Id__c', leadSource: 'IoT' };

describe('what a Case row shows', () => {
  it.each<[string, Fields, Partial<ReturnType<typeof caseFacts>>]>([
    [
      "an alert's ready-made Case: all from its description",
      caseFromAlert(raised, { id: 'pump-1', method: 'hmac' }, options),
      { Device: 'pump-1', Reading: 'temperature = 91.5', Rule: 'above 80', Severity: 'major', AccountName: '', Analysis: '' },
    ],
    [
      'the device id field and the Account by name',
      { ...caseFromAlert(raised, { id: 'gw-1:s-3', method: 'hmac', gateway: 'gw-1' }, options), IoT_Device_Id__c: 'gw-1:s-3', AccountId: account.fields.Id },
      { Device: 'gw-1:s-3', AccountName: 'Acme Water' },
    ],
    ['a sensor behind a gateway, from the description', caseFromAlert(raised, { id: 'gw-1:s-3', method: 'hmac', gateway: 'gw-1' }, options), { Device: 'gw-1:s-3' }],
    ['an escalated alert: the severity now', caseFromAlert({ ...raised, severity: 'critical', previousSeverity: 'major', change: 'escalated' }, undefined, options), { Severity: 'critical', Device: 'pump-1' }],
    ["the device and Account of the Case's Asset", { Subject: 'x', AssetId: asset.fields.Id }, { Device: 'pump-2', AccountName: 'Acme Water' }],
    ['the analysis written back', { Subject: 'Inspection photo from cam-1', IoT_Device_Id__c: 'cam-1', IoT_Analysis__c: 'corrosion found on 31% of the inspected surface' }, { Device: 'cam-1', Analysis: 'corrosion found on 31% of the inspected surface', Reading: '' }],
    ['an Account that is not there: its id', { Subject: 'x', AccountId: '001000000000009AAA' }, { AccountName: '001000000000009AAA' }],
    ['a button press: nothing to show', { Subject: 'Easy button b-7 pressed at Lobby', Description: 'Help, please.' }, { Device: '', Reading: '', Rule: '', Severity: '', AccountName: '' }],
  ])('%s', (_what, fields, expected) => {
    expect(caseFacts(fields, record)).toMatchObject(expected);
  });
});

describe('the Cases shown', () => {
  const cases: StoredRecord[] = Array.from({ length: 60 }, (_, i) => ({
    type: 'Case',
    fields: { Id: `500${String(i).padStart(12, '0')}AAA`, CaseNumber: String(1001 + i), IoT_Device_Id__c: `pump-${i % 3}`, Status: i % 4 === 0 ? 'Closed' : 'New' },
  }));
  const numbers = (view: object) => (view as { rows: Fields[] }).rows.map((r) => Number(r.CaseNumber));

  it('newest first, a page at a time, with every device and status offered', () => {
    const first = caseView(cases, record, {}) as { total: number; matching: number; page: number; pages: number; devices: string[]; statuses: string[] };
    expect(first).toMatchObject({ total: 60, matching: 60, page: 1, pages: Math.ceil(60 / CASES_PER_PAGE), devices: ['pump-0', 'pump-1', 'pump-2'], statuses: ['Closed', 'New'] });
    expect(numbers(first)).toEqual(Array.from({ length: CASES_PER_PAGE }, (_, i) => 1060 - i));
    expect(numbers(caseView(cases, record, { page: 3 }))).toEqual(Array.from({ length: 60 - 2 * CASES_PER_PAGE }, (_, i) => 1060 - 2 * CASES_PER_PAGE - i));
  });

  it.each([
    [{ device: 'pump-1' }, (n: number) => (n - 1001) % 3 === 1],
    [{ status: 'Closed' }, (n: number) => (n - 1001) % 4 === 0],
    [{ status: 'open' }, (n: number) => (n - 1001) % 4 !== 0],
    [{ device: 'pump-2', status: 'New' }, (n: number) => (n - 1001) % 3 === 2 && (n - 1001) % 4 !== 0],
  ])('filtered by %o', (query, wanted) => {
    const all = Array.from({ length: 60 }, (_, i) => 1060 - i).filter(wanted);
    const view = caseView(cases, record, query) as { matching: number; total: number };
    expect(view).toMatchObject({ matching: all.length, total: 60 });
    expect(numbers(view)).toEqual(all.slice(0, CASES_PER_PAGE));
  });

  it('one Case by its id, 18 or 15 characters (a link to the record)', () => {
    const id = cases[7].fields.Id;
    expect(numbers(caseView(cases, record, { case: id }))).toEqual([1008]);
    expect(numbers(caseView(cases, record, { case: id.slice(0, 15) }))).toEqual([1008]);
  });

  it('a page past the last shows the last; a device with no Case shows none', () => {
    expect(caseView(cases, record, { page: 99 })).toMatchObject({ page: 3, pages: 3 });
    expect(caseView(cases, record, { device: 'pump-9' })).toMatchObject({ matching: 0, page: 1, pages: 1, rows: [] });
  });
});
