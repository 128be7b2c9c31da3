/**
 * The editor in Debian's Chromium, driven by playwright-core: the pack's palette category holds
 * every node of the pack, each node can be dragged onto the workspace and its edit dialog opened
 * (config nodes too), the examples are offered under Import > Examples, and the page logs no
 * error at all.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEditor, PACKAGE, packTypes as loadedPackTypes } from '../support/browser';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';

const CATEGORY_ID = 'enterprise_IoT';
const screenshots = join(repoRoot, 'test-results', process.env.NODE_RED_PATH ? 'node-red-5' : 'node-red-4');

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  mkdirSync(screenshots, { recursive: true });
  node = await NodeRedProcess.start();
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 1600, height: 1000 }, 'inject'));
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

async function packTypes(): Promise<{ nodes: string[]; configs: string[] }> {
  const types = await loadedPackTypes(node.editorUrl);
  const categories = await page.evaluate(
    (all) => all.map((t) => (window as unknown as { RED: { nodes: { getType(t: string): { category: string } } } }).RED.nodes.getType(t).category),
    types,
  );
  return {
    nodes: types.filter((_, i) => categories[i] !== 'config'),
    configs: types.filter((_, i) => categories[i] === 'config'),
  };
}

async function closeDialog(): Promise<void> {
  await page.click('#node-dialog-cancel');
  await page.waitForSelector('#node-dialog-cancel', { state: 'detached' });
}

describe('the editor in Chromium', () => {
  it('runs on the Node-RED under test', async () => {
    const settings = (await fetch(`${node.editorUrl}/settings`).then((r) => r.json())) as { version: string };
    expect(settings.version).toMatch(process.env.NODE_RED_PATH ? /^5\./ : /^4\.1\./);
  });

  it('shows the pack palette category with every node of the pack', async () => {
    const { nodes } = await packTypes();
    const declared = Object.keys(require(join(repoRoot, 'package.json'))['node-red'].nodes);
    expect(nodes.length).toBeGreaterThan(0);
    expect([...nodes, ...(await packTypes()).configs].sort()).toEqual(expect.arrayContaining(declared));
    const category = page.locator(`#red-ui-palette-container-${CATEGORY_ID}`);
    await expect(category.isVisible()).resolves.toBe(true);
    for (const type of nodes) {
      await expect(category.locator(`.red-ui-palette-node[data-palette-type="${type}"]`).count(), type).resolves.toBe(1);
    }
    await category.screenshot({ path: join(screenshots, 'palette.png') });
    // The picture for the README: the example flow as first deployed, running.
    await page.evaluate(() => (window as unknown as { RED: { workspaces: { show(id: string): void } } }).RED.workspaces.show('threshold.tab'));
    await page.waitForTimeout(1_500);
    await page.screenshot({ path: join(screenshots, 'editor.png') });
    // And one node of the example opened, as a user finds it.
    await page.locator('[id="threshold.temp"]').dblclick();
    await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
    await expect(page.locator('#node-input-level-container .iot-l-severity').count()).resolves.toBe(2);
    await expect(page.locator('#node-input-hysteresis').inputValue()).resolves.toBe('explicit');
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(screenshots, 'threshold-edit.png') });
    await closeDialog();
  });

  it('drags each node onto the workspace and opens its edit dialog', async () => {
    const { nodes } = await packTypes();
    const workspace = page.locator('#red-ui-workspace-chart');
    for (const [i, type] of nodes.entries()) {
      const before = await page.evaluate(() => (window as unknown as { RED: { nodes: { filterNodes(f: object): unknown[] } } }).RED.nodes.filterNodes({}).length);
      await page.locator(`#red-ui-palette-container-${CATEGORY_ID} .red-ui-palette-node[data-palette-type="${type}"]`).dragTo(workspace, {
        // Four to a row, so that every node of the pack lands inside the window.
        targetPosition: { x: 250 + 180 * (i % 4), y: 150 + 90 * Math.floor(i / 4) },
      });
      const added = await page.evaluate(
        ({ t, n }) => {
          const RED = (window as unknown as { RED: { nodes: { filterNodes(f: object): Array<{ id: string; type: string }> } } }).RED;
          const all = RED.nodes.filterNodes({});
          return all.length > n ? all.filter((x) => x.type === t).map((x) => x.id).pop() : undefined;
        },
        { t: type, n: before },
      );
      expect(added, `${type} dropped onto the workspace`).toBeDefined();
      await page.locator(`[id="${added as string}"]`).dblclick();
      await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
      await page.waitForTimeout(300);
      await page.screenshot({ path: join(screenshots, `edit-${type}.png`) });
      expect(await page.locator('.red-ui-tray .red-ui-tray-header').innerText()).toContain('Edit');
      await closeDialog();
    }
  });

  it('opens the edit dialog of each config node of the pack, titled by its name, with its fields', async () => {
    type Red = { RED: { editor: { editConfig(n: string, t: string, id: string): void }; nodes: { getType(t: string): { paletteLabel?: string | (() => string) } } } };
    const { configs } = await packTypes();
    expect(configs.length).toBeGreaterThan(0);
    for (const type of configs) {
      const label = await page.evaluate((t) => {
        const def = (window as unknown as Red).RED.nodes.getType(t);
        return (typeof def.paletteLabel === 'function' ? def.paletteLabel.call(def) : def.paletteLabel) || t;
      }, type);
      await page.evaluate((t) => (window as unknown as Red).RED.editor.editConfig('', t, '_ADD_'), type);
      await page.waitForSelector('#node-config-dialog-cancel', { state: 'visible' });
      const tray = page.locator('.red-ui-tray').last();
      expect(await tray.locator('.red-ui-tray-header').innerText(), type).toContain(`Add new ${label} config node`);
      expect(await tray.locator('[id^="node-config-input-"]:visible').count(), `${type}: visible fields`).toBeGreaterThan(0);
      await page.waitForTimeout(300);
      await page.screenshot({ path: join(screenshots, `config-${type}.png`) });
      await page.click('#node-config-dialog-cancel');
      await page.waitForSelector('#node-config-dialog-cancel', { state: 'detached' });
    }
  });

  it('keeps an old registry at key derivation v1 when it is opened and saved, and starts a new one at v2', async () => {
    type Red = { RED: { editor: { editConfig(n: string, t: string, id: string): void }; nodes: { node(id: string): Record<string, unknown> } } };
    // A registry as a flow from before settings versions has it (the shipped flows are at v2 now).
    await page.evaluate(() =>
      (window as unknown as { RED: { nodes: { import(n: unknown[]): unknown } } }).RED.nodes.import([
        { id: 'old.registry', type: 'iot-device-registry', name: 'old registry', source: 'derived', devices: [], masterSource: 'env', masterEnv: 'IOT_DEVICE_MASTER_SECRET', derivedMethods: ['apikey', 'hmac'] },
      ]),
    );
    expect(await page.evaluate(() => (window as unknown as Red).RED.nodes.node('old.registry').settingsVersion)).toBeUndefined();
    await page.evaluate(() => (window as unknown as Red).RED.editor.editConfig('', 'iot-device-registry', 'old.registry'));
    await page.waitForSelector('#node-config-dialog-ok', { state: 'visible' });
    expect(await page.inputValue('#node-config-input-keyDerivation')).toBe('v1');
    await expect(page.locator('.iot-registry-derivation-v1').isVisible()).resolves.toBe(true);
    await page.click('#node-config-dialog-ok');
    await page.waitForSelector('#node-config-dialog-ok', { state: 'detached' });
    const saved = await page.evaluate(() => {
      const n = (window as unknown as Red).RED.nodes.node('old.registry');
      return { settingsVersion: n.settingsVersion, keyDerivation: n.keyDerivation };
    });
    expect(saved).toEqual({ settingsVersion: 2, keyDerivation: 'v1' });
    await page.evaluate(() => (window as unknown as Red).RED.editor.editConfig('', 'iot-device-registry', '_ADD_'));
    await page.waitForSelector('#node-config-dialog-cancel', { state: 'visible' });
    await page.selectOption('#node-config-input-source', 'derived');
    expect(await page.inputValue('#node-config-input-keyDerivation')).toBe('v2');
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('#node-config-dialog-cancel', { state: 'detached' });
  });

  it('offers every example flow under Import > Examples', async () => {
    const shipped = readdirSync(join(repoRoot, 'flows'))
      .filter((file) => file.endsWith('.json'))
      .map((file) => file.replace(/\.json$/, ''));
    expect(shipped.length).toBeGreaterThan(0);
    await page.click('#red-ui-header-button-sidemenu');
    await page.click('#menu-item-import');
    await page.locator('#red-ui-clipboard-dialog-import-tabs').getByText('Examples').click();
    const examples = page.locator('div#red-ui-clipboard-dialog-import-tab-examples');
    await examples.getByText(PACKAGE, { exact: true }).click();
    // The pattern flows sit in their own folder, the editor's first entry: open it as a person does.
    const patterns = examples.getByText('patterns', { exact: true });
    await patterns.waitFor({ state: 'visible' });
    const firstPattern = examples.getByText(shipped.filter((name) => name.startsWith('pattern-')).sort()[0] ?? shipped[0], { exact: true });
    if (!(await firstPattern.isVisible())) await patterns.click();
    await firstPattern.waitFor({ state: 'visible' });
    await page.waitForTimeout(500);
    const missing: string[] = [];
    for (const name of shipped) if (!(await examples.getByText(name, { exact: true }).isVisible())) missing.push(name);
    expect(missing).toEqual([]);
    await page.screenshot({ path: join(screenshots, 'import-examples.png') });
    await page.click('#red-ui-clipboard-dialog-cancel');
  });

  it('opens the palette manager without a catalogue error (the machine is offline)', async () => {
    await page.evaluate(() => (window as unknown as { RED: { actions: { invoke(a: string): void } } }).RED.actions.invoke('core:manage-palette'));
    await page.waitForSelector('#red-ui-palette-editor', { state: 'visible' });
    await page.waitForTimeout(1_000);
    await expect(page.locator('.red-ui-notification-error').count()).resolves.toBe(0);
    await page.screenshot({ path: join(screenshots, 'palette-manager.png') });
    await page.locator('.red-ui-tray').getByRole('button', { name: 'Close' }).click();
    await page.waitForSelector('#red-ui-palette-editor', { state: 'detached' });
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
