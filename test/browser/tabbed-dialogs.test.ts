/**
 * The two longest dialogs of the pack as a person reads them (Debian's Chromium): iot-device-auth
 * and iot-mqtt-broker group their settings in tabs, as core MQTT groups its broker, and show only
 * the chosen method's fields. What a person notices: which tabs there are, which tab holds a
 * field, and which fields are on screen after picking a method.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNodeMaker, openEditor, type NodeMaker } from '../support/browser';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';

/** Pictures of the dialogs (docs/images/ takes them from here). */
const screenshots = join(repoRoot, 'test-results', process.env.NODE_RED_PATH ? 'node-red-5' : 'node-red-4', 'dialogs');

const flows = [
  { id: 'tabs.tab', type: 'tab', label: 'tabbed dialogs' },
  { id: 'tabs.registry', type: 'iot-device-registry', name: 'registry', source: 'list', devices: [{ id: 'pump-1', enabled: true }] },
  // As a flow from before settings versions saved it: no version, no accepted methods.
  { id: 'tabs.old-auth', type: 'iot-device-auth', z: 'tabs.tab', registry: 'tabs.registry', method: 'auto', x: 200, y: 300, wires: [[], []] },
];
const SECRET_METHODS = ['apikey', 'hmac', 'sas', 'jwt', 'webhook'];
/** Made in the editor with their defaults, as a node dropped from the palette has them. */
const made = [
  { type: 'iot-device-auth', props: { id: 'tabs.auth', z: 'tabs.tab', registry: 'tabs.registry', method: 'apikey', x: 200, y: 100, wires: [[], []] } },
  { type: 'iot-mqtt-broker', props: { id: 'tabs.broker', z: 'tabs.tab', registry: 'tabs.registry', methods: ['apikey'], x: 200, y: 200, wires: [[], [], []] } },
];

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  mkdirSync(screenshots, { recursive: true });
  node = await NodeRedProcess.start({ flows });
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 1400, height: 900 }, 'iot-device-auth'));
  await addNodeMaker(page);
  await page.evaluate((nodes) => {
    const { RED, newNodeProps } = window as unknown as NodeMaker & { RED: { nodes: { import(n: unknown[]): unknown }; workspaces: { show(id: string): void } } };
    RED.nodes.import(nodes.map((n) => newNodeProps(n.type, n.props)));
    RED.workspaces.show('tabs.tab');
  }, made);
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

async function openDialog(id: string): Promise<void> {
  await page.evaluate((nodeId) => {
    const { RED } = window as unknown as { RED: { nodes: { node(id: string): object }; editor: { edit(n: object): void } } };
    RED.editor.edit(RED.nodes.node(nodeId));
  }, id);
  await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
  await page.waitForTimeout(200);
}

async function cancelDialog(): Promise<void> {
  await page.click('#node-dialog-cancel');
  await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
}

/** The tabs' labels in the open dialog, and which one is shown. */
function tabsOf(list: string): Promise<{ labels: string[]; active: string }> {
  return page.evaluate((selector) => {
    const items = Array.from(document.querySelectorAll(`${selector} li.red-ui-tab`));
    const label = (li: Element) => li.querySelector('.red-ui-text-bidi-aware, a')?.textContent?.trim() ?? '';
    return { labels: items.map(label), active: label(items.find((li) => li.classList.contains('active')) ?? items[0]) };
  }, list);
}

/** Which of these inputs a person sees now (their row shown, in the tab shown). */
function shown(ids: string[]): Promise<string[]> {
  return page.evaluate(
    (all) =>
      all.filter((id) => {
        const input = document.getElementById(`node-input-${id}`);
        // A typed input hides its original box: its row stands for it.
        const row = input?.closest('.form-row') as HTMLElement | null;
        return row !== null && row !== undefined && row.getBoundingClientRect().height > 0;
      }),
    ids,
  );
}

/** The tab (its content's id) that holds each input. */
function tabOf(ids: string[], content: string): Promise<Record<string, string>> {
  return page.evaluate(
    ({ all, container }) => Object.fromEntries(all.map((id) => [id, document.getElementById(`node-input-${id}`)?.closest(`#${container} > div`)?.id ?? 'outside the tabs'])),
    { all: ids, container: content },
  );
}

async function clickTab(list: string, label: string): Promise<void> {
  const tab = page.locator(`${list} li.red-ui-tab`, { hasText: label }).first();
  // A click while the tab bar still settles from the previous one can be lost: click the tab's
  // link until the tab is the one shown (as a person clicks again), for at most two seconds.
  for (let attempt = 0; attempt < 10; attempt++) {
    await tab.locator('a').first().click();
    await page.waitForTimeout(200);
    if ((await tabsOf(list)).active === label) return;
  }
  throw new Error(`the tab ${label} of ${list} did not open`);
}

const CREDENTIAL_FIELDS = ['deviceIdProperty', 'apiKeyProperty', 'timestampProperty', 'nonceProperty', 'signatureProperty', 'tokenProperty', 'skew', 'tokenSkew', 'maxLifetime', 'audience', 'sasResource', 'webhookHash', 'webhookContent', 'anonymousSource', 'replayCapacity'];

describe('iot-device-auth dialog', () => {
  it('groups its settings in three tabs, the credentials first', async () => {
    await openDialog('tabs.auth');
    expect(await tabsOf('#node-input-iot-auth-tabs')).toEqual({ labels: ['Credentials', 'Messages', 'Answer'], active: 'Credentials' });
    const tab = 'node-input-iot-auth-tab-';
    expect(await tabOf(['name', 'registry', 'method', 'apiKeyProperty', 'skew', 'webhookContent', 'maxBytes', 'rate', 'gateway', 'answer', 'answerWithin', 'catchErrors'], 'node-input-iot-auth-tabs-content')).toEqual({
      name: 'outside the tabs',
      registry: 'outside the tabs',
      method: 'outside the tabs',
      apiKeyProperty: `${tab}credentials`,
      skew: `${tab}credentials`,
      webhookContent: `${tab}credentials`,
      maxBytes: `${tab}messages`,
      rate: `${tab}messages`,
      gateway: `${tab}messages`,
      answer: `${tab}answer`,
      answerWithin: `${tab}answer`,
      catchErrors: `${tab}answer`,
    });
    // Another tab shows its own fields and hides the credentials.
    await clickTab('#node-input-iot-auth-tabs', 'Messages');
    expect(await shown(['maxBytes', 'rate', 'apiKeyProperty', 'answer'])).toEqual(['maxBytes', 'rate']);
    await clickTab('#node-input-iot-auth-tabs', 'Answer');
    expect(await shown(['maxBytes', 'answer', 'catchErrors'])).toEqual(['answer', 'catchErrors']);
    await cancelDialog();
  });

  it('keeps a node from before settings versions accepting what it did when opened and saved; a new node starts current', async () => {
    type Red = { RED: { nodes: { node(id: string): { settingsVersion?: unknown; accepted?: unknown } } } };
    const acceptedBoxes = () =>
      page.evaluate((all) => all.filter((m) => (document.getElementById(`node-input-accepted-${m}`) as HTMLInputElement).checked), [...SECRET_METHODS, 'x509']);
    await openDialog('tabs.old-auth');
    expect(await acceptedBoxes()).toEqual(SECRET_METHODS);
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
    const saved = await page.evaluate(() => {
      const n = (window as unknown as Red).RED.nodes.node('tabs.old-auth');
      return { settingsVersion: n.settingsVersion, accepted: n.accepted };
    });
    expect(saved).toEqual({ settingsVersion: 2, accepted: SECRET_METHODS });
    expect(await page.evaluate(() => (window as unknown as Red).RED.nodes.node('tabs.auth').settingsVersion)).toBe(2);
  });

  it('shows only the chosen method credentials, and changes them when the method changes', async () => {
    await openDialog('tabs.auth');
    const expected: Record<string, string[]> = {
      apikey: ['deviceIdProperty', 'apiKeyProperty', 'tokenProperty', 'anonymousSource'],
      hmac: ['deviceIdProperty', 'timestampProperty', 'nonceProperty', 'signatureProperty', 'skew', 'anonymousSource', 'replayCapacity'],
      jwt: ['deviceIdProperty', 'tokenProperty', 'skew', 'tokenSkew', 'maxLifetime', 'audience', 'anonymousSource', 'replayCapacity'],
      sas: ['deviceIdProperty', 'tokenProperty', 'skew', 'tokenSkew', 'maxLifetime', 'sasResource', 'anonymousSource', 'replayCapacity'],
      webhook: ['deviceIdProperty', 'timestampProperty', 'signatureProperty', 'skew', 'webhookHash', 'webhookContent', 'anonymousSource', 'replayCapacity'],
      anonymous: ['anonymousSource'],
      broker: [],
    };
    const seen: Record<string, string[]> = {};
    for (const method of Object.keys(expected)) {
      await page.selectOption('#node-input-method', method);
      seen[method] = await shown(CREDENTIAL_FIELDS);
      if (method === 'hmac') await page.locator('.red-ui-tray:last-of-type').screenshot({ path: join(screenshots, 'iot-device-auth-hmac.png') });
    }
    expect(seen).toEqual(expected);
    await cancelDialog();
  });
});

describe('iot-mqtt-broker dialog', () => {
  it('groups its settings in Connection, Security and Messages', async () => {
    await openDialog('tabs.broker');
    expect(await tabsOf('#node-input-iot-broker-tabs')).toEqual({ labels: ['Connection', 'Security', 'Messages'], active: 'Connection' });
    const tab = 'node-input-iot-broker-tab-';
    expect(await tabOf(['registry', 'port', 'wsPort', 'usetls', 'method-apikey', 'publishTopics', 'deliver', 'acknowledge', 'queuedPerDevice'], 'node-input-iot-broker-tabs-content')).toEqual({
      registry: 'outside the tabs',
      port: `${tab}connection`,
      wsPort: `${tab}connection`,
      usetls: `${tab}connection`,
      'method-apikey': `${tab}security`,
      publishTopics: `${tab}security`,
      deliver: `${tab}messages`,
      acknowledge: `${tab}messages`,
      queuedPerDevice: `${tab}messages`,
    });
    expect(await shown(['port', 'publishTopics', 'deliver'])).toEqual(['port']);
    await cancelDialog();
  });

  it('shows the token settings only for the methods chosen', async () => {
    await openDialog('tabs.broker');
    await clickTab('#node-input-iot-broker-tabs', 'Security');
    const fields = ['method-apikey', 'skew', 'audience', 'sasResource', 'publishTopics'];
    // API keys only (the node's setting): no token settings.
    expect(await shown(fields)).toEqual(['method-apikey', 'publishTopics']);
    await page.check('#node-input-method-jwt');
    expect(await shown(fields)).toEqual(['method-apikey', 'skew', 'audience', 'publishTopics']);
    await page.locator('.red-ui-tray:last-of-type').screenshot({ path: join(screenshots, 'iot-mqtt-broker-security.png') });
    await page.check('#node-input-method-sas');
    await page.uncheck('#node-input-method-jwt');
    expect(await shown(fields)).toEqual(['method-apikey', 'skew', 'sasResource', 'publishTopics']);
    await cancelDialog();
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
