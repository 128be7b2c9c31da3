/**
 * The CRM page of the local Salesforce sandbox, as a support agent reads it in Chromium: each Case
 * with its device, reading, rule, severity, status and the customer's Account by name, the photo
 * analysis written back, a filter by device and by status, pages of Cases, new Cases arriving
 * without a reload, and an icon for the browser tab (no request that fails).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caseFromAlert, type Alert } from '../../nodes/salesforce-out/record-mapping';
import { CASES_PER_PAGE } from '../../sandbox/salesforce/page';
import { repoRoot } from '../support/node-red-process';
import { startTestSandbox, type TestSandbox } from '../support/salesforce';
import { eventually } from '../support/wait';

let sf: TestSandbox;
let browser: Browser;
let page: Page;
const failedRequests: string[] = [];
const pageErrors: string[] = [];

const options = { origin: 'IoT', closeOnClear: true, externalIdField: 'IoT_Alert_Id__c', leadSource: 'IoT' };
const PUMP_1_CASES = 28;
const pictures = join(repoRoot, 'test-results', 'crm-page');

/** An alert's Case as iot-salesforce-out makes it (raised, or raised then cleared: Closed). */
function alertCase(device: string, n: number, extra: Record<string, unknown>): Record<string, unknown> {
  const raised: Alert = { id: `${device}-temperature-${n}`, state: 'raised', key: device, reading: 'temperature', rule: 'above', severity: n % 2 === 0 ? 'major' : 'warning', value: 80 + n / 2, threshold: 80, since: 1_795_300_000_000 + n * 60_000, at: 1_795_300_000_000 + n * 60_000 };
  const record = caseFromAlert(raised, { id: device, method: 'hmac' }, options);
  if (n % 5 === 0) Object.assign(record, caseFromAlert({ ...raised, state: 'cleared', at: raised.since! + 30_000 }, { id: device, method: 'hmac' }, options));
  return { ...record, ...extra };
}

beforeAll(async () => {
  sf = await startTestSandbox();
  const account = sf.sandbox.ensureRecord('Account', { Name: 'Acme Water' }, 'Name');
  const asset = sf.sandbox.ensureRecord('Asset', { Name: 'Pump 2', IoT_Device_Id__c: 'pump-2', AccountId: account }, 'IoT_Device_Id__c');
  for (let n = 1; n <= PUMP_1_CASES; n++) sf.sandbox.ensureRecord('Case', alertCase('pump-1', n, { IoT_Device_Id__c: 'pump-1', AccountId: account }), 'IoT_Alert_Id__c');
  // The device and the Account known only through the Case's Asset.
  sf.sandbox.ensureRecord('Case', alertCase('pump-2', 101, { AssetId: asset }), 'IoT_Alert_Id__c');
  sf.sandbox.ensureRecord(
    'Case',
    { Subject: 'Inspection photo from cam-1 (north yard)', IoT_Device_Id__c: 'cam-1', IoT_Alert_Id__c: 'inspection-1', AccountId: account, Priority: 'High', IoT_Analysis__c: 'corrosion found on 31% of the inspected surface: send a technician' },
    'IoT_Alert_Id__c',
  );
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on('response', (response) => {
    if (response.status() >= 400) failedRequests.push(`${response.status()} ${response.url()}`);
  });
  page.on('requestfailed', (request) => failedRequests.push(`failed ${request.url()}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  await page.goto(`${sf.sandbox.url}/`);
});

afterAll(async () => {
  await browser?.close();
  await sf?.close();
});

/** The Cases table as shown: one object per row, by column heading. */
async function shownCases(): Promise<Array<Record<string, string>>> {
  return page.evaluate(() => {
    const headings = Array.from(document.querySelectorAll('#cases thead th')).map((th) => th.textContent ?? '');
    return Array.from(document.querySelectorAll('#cases tbody tr')).map((tr) => Object.fromEntries(Array.from(tr.querySelectorAll('td')).map((td, i) => [headings[i], td.innerText.trim()])));
  });
}

async function waitForRows(description: string, check: (rows: Array<Record<string, string>>) => boolean): Promise<Array<Record<string, string>>> {
  return eventually(description, async () => {
    const rows = await shownCases();
    return check(rows) ? rows : undefined;
  });
}

describe('the CRM page of the sandbox', () => {
  it('shows each Case with its device, reading, rule, severity, status, Account and analysis', async () => {
    const rows = await waitForRows('the Cases', (r) => r.length > 0);
    const total = PUMP_1_CASES + 2;
    await expect(page.locator('#cases-total').innerText()).resolves.toBe(`(${total})`);
    // Newest first: the inspection, then pump-2's alert (through its Asset), then pump-1's.
    expect(rows[0]).toMatchObject({ Subject: 'Inspection photo from cam-1 (north yard)', Device: 'cam-1', Account: 'Acme Water', Analysis: 'corrosion found on 31% of the inspected surface: send a technician', Priority: 'High', Status: 'New' });
    expect(rows[1]).toMatchObject({ Device: 'pump-2', Account: 'Acme Water', Reading: 'temperature = 130.5', Rule: 'above 80', Severity: 'warning', Status: 'New' });
    expect(rows[2]).toMatchObject({ Subject: 'temperature above 80 on pump-1', Device: 'pump-1', Reading: `temperature = ${80 + PUMP_1_CASES / 2}`, Rule: 'above 80', Severity: 'major', Priority: 'High', Status: 'New', Account: 'Acme Water' });
    // A cleared alert's Case, closed: its raise's subject and severity stay.
    const closed = rows.find((r) => r.Reading === 'temperature = 92.5');
    expect(closed).toMatchObject({ Subject: 'temperature above 80 on pump-1', Status: 'Closed', Severity: 'warning' });
    mkdirSync(pictures, { recursive: true });
    await page.screenshot({ path: join(pictures, 'cases.png') });
  });

  it(`shows ${CASES_PER_PAGE} Cases a page, and the older ones on the next`, async () => {
    expect(await shownCases()).toHaveLength(CASES_PER_PAGE);
    await expect(page.locator('#page').innerText()).resolves.toContain('page 1 of 2');
    await expect(page.locator('#previous').isDisabled()).resolves.toBe(true);
    await page.click('#next');
    const older = await waitForRows('the second page', (r) => r.length === PUMP_1_CASES + 2 - CASES_PER_PAGE);
    expect(older.map((r) => r.Reading)).toEqual(Array.from({ length: older.length }, (_, i) => `temperature = ${80 + (older.length - i) / 2}`));
    await expect(page.locator('#next').isDisabled()).resolves.toBe(true);
    await page.click('#previous');
    await waitForRows('the first page again', (r) => r.length === CASES_PER_PAGE);
  });

  it('filters by device and by status, and keeps the filter in the address', async () => {
    await page.selectOption('#device', 'pump-2');
    const pump2 = await waitForRows("pump-2's Cases", (r) => r.length === 1);
    expect(pump2[0]).toMatchObject({ Device: 'pump-2' });
    await expect(page.locator('#cases-total').innerText()).resolves.toBe(`(1 of ${PUMP_1_CASES + 2})`);
    expect(new URL(page.url()).searchParams.get('device')).toBe('pump-2');

    await page.selectOption('#device', 'pump-1');
    await page.selectOption('#status', 'Closed');
    const closed = await waitForRows("pump-1's closed Cases", (r) => r.length > 0 && r.every((row) => row.Status === 'Closed'));
    expect(closed.map((r) => r.Device)).toEqual(Array.from({ length: Math.floor(PUMP_1_CASES / 5) }, () => 'pump-1'));

    // A link with the filter in it opens the page filtered; a record's address shows that Case.
    const linked = await browser.newPage();
    await linked.goto(`${sf.sandbox.url}/?device=cam-1`);
    await eventually('the linked page filtered', async () => ((await linked.locator('#cases tbody tr').count()) === 1 && (await linked.locator('#device').inputValue()) === 'cam-1' ? true : undefined));
    const inspection = sf.sandbox.records('Case').find((c) => c.IoT_Alert_Id__c === 'inspection-1');
    await linked.goto(`${sf.sandbox.url}/${String(inspection?.Id)}`);
    await eventually('the Case at its address', async () => ((await linked.locator('#cases tbody tr').count()) === 1 && (await linked.locator('#cases tbody td').nth(1).innerText()).startsWith('Inspection photo') ? true : undefined));
    await linked.close();

    await page.selectOption('#status', '');
    await page.selectOption('#device', '');
    await waitForRows('every Case again', (r) => r.length === CASES_PER_PAGE);
  });

  it('shows a new Case as it arrives, without a reload', async () => {
    sf.sandbox.ensureRecord('Case', alertCase('pump-3', 7, { IoT_Device_Id__c: 'pump-3' }), 'IoT_Alert_Id__c');
    const rows = await waitForRows('the new Case on top', (r) => r[0]?.Device === 'pump-3');
    expect(rows[0]).toMatchObject({ Reading: 'temperature = 83.5', Severity: 'warning', Status: 'New', Account: '' });
    await expect(page.locator('#device option[value="pump-3"]').count()).resolves.toBe(1);
  });

  it('has an icon for the browser tab, and no request or script that failed', async () => {
    const icon = await page.locator('link[rel="icon"]').getAttribute('href');
    const response = await fetch(new URL(icon ?? '', `${sf.sandbox.url}/`));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/svg+xml');
    expect(failedRequests).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
