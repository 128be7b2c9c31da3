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
