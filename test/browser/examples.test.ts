/**
 * Every example flow, as an integrator takes it: in Chromium, Import > Examples, import it into a
 * Node-RED that starts with no flows, deploy, and check that no error shows (notifications, the
 * page's console, node statuses), then save a picture of its tab for the README.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimatedSize, isPatternFlow, layoutProblems, type FlowNode } from '../../scripts/flow-layout';
import { openEditor, PACKAGE } from '../support/browser';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';

const pictures = join(repoRoot, 'test-results', process.env.NODE_RED_PATH ? 'node-red-5' : 'node-red-4', 'examples');
const files = readdirSync(join(repoRoot, 'flows'))
  .filter((f) => f.endsWith('.json'))
  .sort();

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];

interface EditorNode {
  id: string;
  type: string;
  name?: string;
  status?: { fill?: string; text?: string };
  valid?: boolean;
  validationErrors?: string[];
  x?: number;
  y?: number;
  w?: number;
  h?: number;
}
type Editor = {
  RED: {
    workspaces: { active(): string; show(id: string): void };
    nodes: {
      eachWorkspace(visit: (ws: { id: string; label: string }) => void): void;
      eachConfig(visit: (n: EditorNode) => void): void;
      filterNodes(filter: object): EditorNode[];
      getType(type: string): unknown;
    };
    actions: { invoke(action: string): void };
  };
};

beforeAll(async () => {
  mkdirSync(pictures, { recursive: true });
  node = await NodeRedProcess.start({ flows: [] });
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 3400, height: 1200 }, 'iot-threshold'));
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

/** Imports the example through Import > Examples; resolves with the id of the tab it adds. */
async function importExample(file: string, label: string): Promise<string> {
  const name = file.replace(/\.json$/, '');
  await page.click('#red-ui-header-button-sidemenu');
  await page.click('#menu-item-import');
  await page.locator('#red-ui-clipboard-dialog-import-tabs').getByText('Examples').click();
  const examples = page.locator('div#red-ui-clipboard-dialog-import-tab-examples');
  const folder = examples.getByText(PACKAGE, { exact: true });
  if (!(await examples.getByText(name, { exact: true }).isVisible())) {
    if (!(await examples.getByText('patterns', { exact: true }).isVisible())) await folder.click();
    // The pattern flows are the package's first entry: a folder of their own.
    if (isPatternFlow(file)) await examples.getByText('patterns', { exact: true }).click();
  }
  await examples.getByText(name, { exact: true }).click();
  await page.click('#red-ui-clipboard-dialog-ok');
  // The config nodes the pattern flows share (one registry, one connection, one store) are there
  // after the first import: the editor says so, and View nodes... > Import selected keeps the ones
  // in place and imports the rest with their ids (checked below), as the README tells users to.
  const conflict = '.red-ui-notification button:has-text("View nodes...")';
  const tabOrConflict = () =>
    page.waitForFunction(
      (wanted) => {
        const { RED } = window as unknown as Editor;
        let found: string | undefined;
        RED.nodes.eachWorkspace((ws) => {
          if (ws.label === wanted) found = ws.id;
        });
        const buttons = Array.from(document.querySelectorAll('.red-ui-notification button'));
        return found ?? (buttons.some((button) => button.textContent === 'View nodes...') ? 'conflict' : undefined);
      },
      label,
    );
  let outcome = (await (await tabOrConflict()).jsonValue()) as string;
  if (outcome === 'conflict') {
    await page.click(conflict);
    await page.click('#red-ui-clipboard-dialog-import-conflict');
    outcome = (await (await tabOrConflict()).jsonValue()) as string;
  }
  return outcome;
}

/** The part of the workspace the active tab's nodes cover, with a margin: the README's picture. */
async function flowArea(): Promise<{ x: number; y: number; width: number; height: number }> {
  const margin = 20;
  const extent = await page.evaluate(() => {
    const { RED } = window as unknown as Editor;
    const chart = document.getElementById('red-ui-workspace-chart') as HTMLElement;
    chart.scrollLeft = 0;
    chart.scrollTop = 0;
    const nodes = RED.nodes.filterNodes({ z: RED.workspaces.active() });
    const { left, top, width, height } = chart.getBoundingClientRect();
    return {
      left,
      top,
      // Below a node: its status line.
      width: Math.min(width, Math.max(...nodes.map((n) => (n.x ?? 0) + (n.w ?? 0) / 2))),
      height: Math.min(height, Math.max(...nodes.map((n) => (n.y ?? 0) + (n.h ?? 0) / 2 + 14))),
    };
  });
  return { x: extent.left, y: extent.top, width: extent.width + margin, height: extent.height + margin };
}

async function togglePaletteAndSidebar(): Promise<void> {
  await page.evaluate(() => {
    const { RED } = window as unknown as Editor;
    RED.actions.invoke('core:toggle-palette');
    RED.actions.invoke('core:toggle-sidebar');
  });
}

async function deploy(): Promise<void> {
  await page.click('#red-ui-header-button-deploy');
  // The button is disabled again once the runtime has taken the flows.
  await page.waitForSelector('#red-ui-header-button-deploy.disabled', { timeout: 30_000 });
}

describe('the example flows, imported in the editor', () => {
  it.each(files)('%s imports, deploys without an error, and runs', async (file) => {
    const label = (JSON.parse(readFileSync(join(repoRoot, 'flows', file), 'utf8')) as Array<{ type: string; label?: string }>).find((n) => n.type === 'tab')?.label;
    const tab = await importExample(file, label ?? '');
    // The import adds the example as a tab of its own; bring it to the front.
    await page.evaluate((id) => (window as unknown as Editor).RED.workspaces.show(id), tab);
    const errorsBefore = pageErrors.length;
    await deploy();
    // Let the flow start and the nodes report their state.
    await page.waitForTimeout(3_000);
    await expect(page.locator('.red-ui-notification-error').count()).resolves.toBe(0);
    expect(pageErrors.slice(errorsBefore)).toEqual([]);
    const { troubled, unknown, invalid } = await page.evaluate(() => {
      const { RED } = window as unknown as Editor;
      const onTab = RED.nodes.filterNodes({ z: RED.workspaces.active() });
      const configs: EditorNode[] = [];
      RED.nodes.eachConfig((n) => configs.push(n));
      return {
        troubled: onTab.filter((n) => n.status?.fill === 'red').map((n) => `${n.type} ${n.name ?? n.id}: ${n.status?.text ?? ''}`),
        unknown: onTab.filter((n) => RED.nodes.getType(n.type) === undefined).map((n) => n.type),
        // What the editor marks with a red triangle: on the canvas, or in the Configuration nodes sidebar.
        invalid: [...onTab, ...configs].filter((n) => n.valid === false).map((n) => `${n.type} ${n.name ?? n.id}: ${(n.validationErrors ?? []).join('; ')}`),
      };
    });
    expect(troubled, `nodes with a red status in ${file}`).toEqual([]);
    expect(unknown, `unknown node types in ${file}`).toEqual([]);
    expect(invalid, `nodes the editor marks invalid in ${file}`).toEqual([]);
    // Laid out to be read: checked with the sizes the editor gives its nodes (labels in this browser's font).
    const sizes = new Map(
      await page.evaluate(() => {
        const { RED } = window as unknown as Editor;
        return RED.nodes.filterNodes({ z: RED.workspaces.active() }).map((n) => [n.id, { w: n.w ?? 0, h: n.h ?? 0 }] as const);
      }),
    );
    const flow = JSON.parse(readFileSync(join(repoRoot, 'flows', file), 'utf8')) as FlowNode[];
    expect(layoutProblems(flow, { stages: isPatternFlow(file), sizeOf: (n) => sizes.get(n.id) ?? estimatedSize(n) }), `the layout of ${file}`).toEqual([]);
    // The picture shows the workspace alone.
    await togglePaletteAndSidebar();
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(pictures, `${file.replace(/\.json$/, '')}.png`), clip: await flowArea(), style: '#red-ui-notifications { display: none; }' });
    await togglePaletteAndSidebar();
  });

  it('keeps one of each shared config node however many examples use it', async () => {
    const configs = await page.evaluate(() => {
      const { RED } = window as unknown as Editor;
      const names: string[] = [];
      RED.nodes.eachConfig((n) => {
        if (n.name) names.push(n.name);
      });
      return names;
    });
    for (const shared of ['pattern devices (derived keys)', 'Salesforce (SF_LOGIN_URL)', 'time series (INFLUX_URL, database iot)']) {
      expect(configs.filter((name) => name === shared), shared).toHaveLength(1);
    }
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
