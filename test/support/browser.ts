/**
 * The editor of a running Node-RED in Debian's Chromium (headless, driven by playwright-core),
 * with every error the page logs collected, so that a test can fail on any of them.
 */
import { chromium, type Browser, type Page } from 'playwright-core';

export interface EditorSession {
  browser: Browser;
  page: Page;
  /** Console errors and uncaught exceptions of the page, in order. */
  pageErrors: string[];
}

export async function openEditor(editorUrl: string, viewport: { width: number; height: number }, loadedType: string): Promise<EditorSession> {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport });
  const pageErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => pageErrors.push(`page: ${error.message}`));
  await page.goto(`${editorUrl}/`);
  await page.waitForSelector('#red-ui-palette-search', { timeout: 60_000 });
  await page.waitForFunction(
    (type) => (window as unknown as { RED?: { nodes?: { getType(t: string): unknown } } }).RED?.nodes?.getType(type) !== undefined,
    loadedType,
  );
  return { browser, page, pageErrors };
}

export const PACKAGE = '@iot-patterns/node-red-enterprise-iot';

/** The node types of this pack that the running Node-RED has loaded (config nodes included). */
export async function packTypes(editorUrl: string): Promise<string[]> {
  const modules = (await fetch(`${editorUrl}/nodes`, { headers: { Accept: 'application/json' } }).then((r) => r.json())) as Array<{ module: string; types: string[] }>;
  return modules.filter((m) => m.module === PACKAGE).flatMap((m) => m.types);
}

/** What the editor knows of a node type (RED.nodes.getType). */
export interface EditorNodeDef {
  category: string;
  outputs?: number;
  defaults: Record<string, { value: unknown; validate?: (...args: unknown[]) => unknown; type?: string }>;
  credentials?: Record<string, { validate?: unknown }>;
}

/**
 * Makes `window.newNodeProps(type, props)` in the page: a node's properties as the editor gives a
 * new node of the type, with props over them, ready for RED.nodes.import.
 */
export async function addNodeMaker(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { RED: { nodes: { getType(t: string): EditorNodeDef } }; newNodeProps?: unknown };
    w.newNodeProps = (type: string, props: Record<string, unknown>) => {
      const made: Record<string, unknown> = {};
      for (const [k, d] of Object.entries(w.RED.nodes.getType(type).defaults)) made[k] = JSON.parse(JSON.stringify(d.value ?? ''));
      return { ...made, ...props, type };
    };
  });
}
export type NodeMaker = { newNodeProps(type: string, props: Record<string, unknown>): Record<string, unknown> };
