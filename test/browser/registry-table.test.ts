/**
 * The registry's device list as a person uses it, in Chromium: a table with column headers and a
 * row per device whose values are readable, CSV pasted or chosen as a file (asking whether to add
 * or replace when the list has devices), a bad row marked red and the registry's users flagged,
 * the exported CSV the same as the one imported, and the devices kept through Done and Deploy.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEditor } from '../support/browser';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';

const screenshots = join(repoRoot, 'test-results', process.env.NODE_RED_PATH ? 'node-red-5' : 'node-red-4', 'dialogs');
const REGISTRY = 'rt.registry';
const AUTH = 'rt.auth';
const HASH = '0123456789abcdef'.repeat(4);
/** Three devices as the registry file's CSV has them (and as the export writes them). */
const CSV = [
  'id,enabled,methods,apiKeyHash,gateway,publishTopics,meta',
  `gw-1,true,apikey,${HASH},,devices/{id}/#,`,
  'pump-1,true,apikey hmac,,gw-1,,"{""site"":""north""}"',
  'pump-2,false,,,gw-1,,"{""site"":""south"",""line"":2}"',
  '',
].join('\r\n');

// A flow from before the table: its devices as the list always stored them.
const flows = [
  { id: 'rt.tab', type: 'tab', label: 'registry table' },
  { id: REGISTRY, type: 'iot-device-registry', name: 'registry', source: 'list', devices: [{ id: 'old-1', enabled: true, methods: 'apikey', meta: '{"site":"old"}' }] },
  { id: AUTH, type: 'iot-device-auth', z: 'rt.tab', name: 'auth', registry: REGISTRY, method: 'apikey', x: 200, y: 100, wires: [[], []] },
];

type Editor = {
  RED: {
    nodes: { node(id: string): { valid?: boolean; validationErrors?: string[]; devices?: unknown[] } | undefined };
    editor: { editConfig(name: string, type: string, id: string): void };
    view: { redraw(full: boolean): void };
    workspaces: { show(id: string): void };
  };
};

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  mkdirSync(screenshots, { recursive: true });
  node = await NodeRedProcess.start({ flows });
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 1400, height: 900 }, 'iot-device-registry'));
  await page.evaluate(() => (window as unknown as Editor).RED.workspaces.show('rt.tab'));
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

async function openRegistry(): Promise<void> {
  await page.evaluate((id) => (window as unknown as Editor).RED.editor.editConfig('', 'iot-device-registry', id), REGISTRY);
  await page.waitForSelector('#node-config-dialog-ok', { state: 'visible' });
  await page.waitForTimeout(200);
}

async function done(): Promise<void> {
  await page.click('#node-config-dialog-ok');
  await page.waitForSelector('#node-config-dialog-ok', { state: 'detached' });
}

/** The table as read on screen: headers, and each row's values with whether it is marked red. */
function readTable(): Promise<{ headers: string[]; rows: Array<{ values: string[]; enabled: boolean; red: boolean; reason: string }> }> {
  return page.evaluate(() => {
    const table = document.getElementById('node-config-device-table') as HTMLTableElement;
    const headers = Array.from(table.querySelectorAll('thead th'))
      .filter((th) => th.getBoundingClientRect().height > 0)
      .map((th) => th.textContent?.trim() ?? '')
      .filter((h) => h !== '');
    const rows = Array.from(table.querySelectorAll('tbody tr')).map((tr) => ({
      values: Array.from(tr.querySelectorAll('input:not([type=checkbox]), textarea')).map((box) => (box as HTMLInputElement).value),
      enabled: (tr.querySelector('.iot-d-enabled') as HTMLInputElement).checked,
      red: tr.classList.contains('iot-d-invalid') && getComputedStyle(tr.querySelector('td') as Element).backgroundColor !== getComputedStyle(table).backgroundColor && (tr.querySelector('.iot-d-id') as HTMLElement).classList.contains('input-error'),
      reason: tr.getAttribute('title') ?? '',
    }));
    return { headers, rows };
  });
}

async function importCsv(how: 'paste' | 'file', text: string, answer?: 'Add to the list' | 'Replace the list'): Promise<void> {
  if (how === 'paste') {
    if (!(await page.locator('#node-config-device-csv').isVisible())) await page.click('#node-config-device-import');
    await page.fill('#node-config-device-csv', text);
    await page.click('#node-config-device-csv-read');
  } else {
    await page.setInputFiles('#node-config-device-csv-file', { name: 'devices.csv', mimeType: 'text/csv', buffer: Buffer.from(text) });
  }
  if (answer) await page.locator('.red-ui-notification button', { hasText: answer }).click();
}

function rowsShown(count: number): Promise<unknown> {
  return page.waitForFunction((n) => document.querySelectorAll('#node-config-device-table tbody tr').length === n, count);
}

async function flowNodeState(id: string): Promise<{ valid: boolean | undefined; triangle: boolean }> {
  return page.evaluate((nodeId) => {
    const { RED } = window as unknown as Editor;
    RED.view.redraw(true);
    const badge = document.getElementById(nodeId)?.querySelector('.red-ui-flow-node-error');
    return { valid: RED.nodes.node(nodeId)?.valid, triangle: badge !== null && badge !== undefined && !badge.classList.contains('hide') };
  }, id);
}

const COLUMNS = ['Id', 'Enabled', 'Methods', 'Gateway', 'Secret', 'API key', 'JWT algorithms', 'Public key', 'Meta (JSON)', 'Publish topics', 'Subscribe topics', 'Pinned certificates'];
/** A row's boxes in column order: id, methods, gateway, secret, API key, algorithms, public key, meta, publish, subscribe, certificates. */
const row = (id: string, methods: string, gateway: string, apiKey: string, meta: string, publish = '') => [id, methods, gateway, '', apiKey, '', '', meta, publish, '', ''];

describe('iot-device-registry device table', () => {
  it('shows a flow from before the table as a row under column headers, every box readable', async () => {
    await openRegistry();
    expect(await readTable()).toEqual({ headers: COLUMNS, rows: [{ values: row('old-1', 'apikey', '', '', '{"site":"old"}'), enabled: true, red: false, reason: '' }] });
    const narrow = await page.evaluate(() =>
      Array.from(document.querySelectorAll('#node-config-device-table tbody input:not([type=checkbox]), #node-config-device-table tbody textarea'))
        .map((box) => Math.round(box.getBoundingClientRect().width))
        .filter((width) => width < 80),
    );
    expect(narrow, 'value boxes narrower than 80 px').toEqual([]);
    // The table scrolls sideways inside the dialog rather than squeezing its columns or widening the dialog past its edge.
    expect(
      await page.evaluate(() => {
        const wrap = document.getElementById('node-config-device-table-wrap') as HTMLElement;
        const body = Array.from(document.querySelectorAll('.red-ui-tray-body')).pop() as HTMLElement;
        return { tableScrolls: wrap.scrollWidth > wrap.clientWidth, dialogOverflows: body.scrollWidth > body.clientWidth + 1 };
      }),
    ).toEqual({ tableScrolls: true, dialogOverflows: false });
  });

  it('imports pasted CSV, asking first whether to add or replace, and exports the same CSV', async () => {
    await importCsv('paste', CSV, 'Replace the list');
    await page.waitForFunction(() => (document.querySelector('#node-config-device-table tbody .iot-d-id') as HTMLInputElement | null)?.value === 'gw-1');
    expect((await readTable()).rows).toEqual([
      { values: row('gw-1', 'apikey', '', HASH, '', 'devices/{id}/#'), enabled: true, red: false, reason: '' },
      { values: row('pump-1', 'apikey hmac', 'gw-1', '', '{"site":"north"}'), enabled: true, red: false, reason: '' },
      { values: row('pump-2', '', 'gw-1', '', '{"site":"south","line":2}'), enabled: false, red: false, reason: '' },
    ]);
    await page.locator('.red-ui-tray:last-of-type').screenshot({ path: join(screenshots, 'iot-device-registry-table.png') });
    const download = page.waitForEvent('download');
    await page.click('#node-config-device-export');
    const file = await (await download).path();
    expect(readFileSync(file, 'utf8')).toBe(CSV);
  });

  it('says what is wrong with a CSV of the wrong shape, and takes nothing from it', async () => {
    await importCsv('paste', 'id,colour\npump-9,red\n');
    await page.waitForSelector('#node-config-device-csv-problem', { state: 'visible' });
    expect(await page.textContent('#node-config-device-csv-problem')).toMatch(/line 1: unknown field "colour"/);
    expect((await readTable()).rows).toHaveLength(3);
  });

  it('marks a bad row red and the registry and its users invalid, until it is fixed', async () => {
    await importCsv('file', 'id,meta\npump 4 !,\npump-5,{not json\n', 'Add to the list');
    await rowsShown(5);
    const rows = (await readTable()).rows;
    expect(rows.map((r) => [r.values[0], r.red, r.reason])).toEqual([
      ['gw-1', false, ''],
      ['pump-1', false, ''],
      ['pump-2', false, ''],
      ['pump 4 !', true, '"pump 4 !" is not a device id (letters, digits and . _ : @ ~ -)'],
      ['pump-5', true, 'the meta of pump-5 is not a JSON object'],
    ]);
    await done();
    expect(await page.evaluate((id) => (window as unknown as Editor).RED.nodes.node(id)?.validationErrors, REGISTRY)).toEqual(['Devices: "pump 4 !" is not a device id (letters, digits and . _ : @ ~ -)']);
    expect(await flowNodeState(AUTH)).toEqual({ valid: false, triangle: true });

    await openRegistry();
    await page.locator('#node-config-device-table tbody tr .iot-d-remove').nth(4).click();
    await page.locator('#node-config-device-table tbody tr .iot-d-remove').nth(3).click();
    expect((await readTable()).rows.map((r) => r.red)).toEqual([false, false, false]);
    await done();
    expect(await flowNodeState(AUTH)).toEqual({ valid: true, triangle: false });
  });

  it('keeps the devices through Done and Deploy', async () => {
    await page.waitForSelector('#red-ui-header-button-deploy:not(.disabled)');
    await page.click('#red-ui-header-button-deploy');
    await page.waitForSelector('#red-ui-header-button-deploy.disabled', { timeout: 30_000 });
    const deployedDevices = async () => ((await fetch(`${node.editorUrl}/flows`).then((r) => r.json())) as Array<{ id: string; devices?: unknown }>).find((n) => n.id === REGISTRY)?.devices;
    await expect.poll(deployedDevices, { timeout: 10_000 }).toEqual([
      { id: 'gw-1', enabled: true, methods: 'apikey', publishTopics: 'devices/{id}/#' },
      { id: 'pump-1', enabled: true, methods: 'apikey hmac', gateway: 'gw-1', meta: '{"site":"north"}' },
      { id: 'pump-2', enabled: false, gateway: 'gw-1', meta: '{"site":"south","line":2}' },
    ]);
    // Opened again, the API key (kept in the credentials) is in its row.
    await openRegistry();
    expect((await readTable()).rows[0].values[4]).toBe(HASH);
    await done();
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
