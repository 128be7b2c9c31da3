/**
 * The threshold node's forecast and anomaly settings in the editor (Debian's Chromium, driven by
 * playwright-core): each invalid value typed into the dialog marks the node invalid, with the
 * reason among its validation errors and the red triangle on the canvas, and a valid value clears
 * it. Every validated forecast and anomaly setting has a case here, or the test fails.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEditor } from '../support/browser';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';

interface EditorNode {
  valid: boolean;
  validationErrors?: string[];
}
type Red = { nodes: { node(id: string): EditorNode; getType(t: string): { defaults: Record<string, { validate?: unknown }> } } };

const screenshots = join(repoRoot, 'test-results', process.env.NODE_RED_PATH ? 'node-red-5' : 'node-red-4');
const FORECAST = 'predict.forecast';
const ANOMALY = 'predict.anomaly';

const flows = [
  { id: 'predict.tab', type: 'tab', label: 'predict' },
  {
    id: FORECAST,
    type: 'iot-threshold',
    z: 'predict.tab',
    name: 'battery forecast',
    property: 'payload',
    propertyType: 'msg',
    field: 'battery',
    rule: 'forecast',
    forecastDirection: 'below',
    forecastTarget: '3.3',
    forecastWindow: '48h',
    forecastMinReadings: '10',
    forecastMinConfidence: '0.9',
    forecastClearMargin: '100',
    unit: 'V',
    levels: [
      { severity: 'warning', value: '48h' },
      { severity: 'critical', value: '6h' },
    ],
    x: 200,
    y: 100,
    wires: [[], [], []],
  },
  {
    id: ANOMALY,
    type: 'iot-threshold',
    z: 'predict.tab',
    name: 'unusual temperature',
    property: 'payload',
    propertyType: 'msg',
    field: 'temperature',
    rule: 'anomaly',
    anomalyHistory: '100',
    anomalyWarmup: '30',
    anomalySide: 'both',
    anomalyMinDeviation: '',
    hysteresis: 'none',
    levels: [{ severity: 'warning', value: '4' }],
    x: 200,
    y: 200,
    wires: [[], [], []],
  },
];

/** What to type where, what must then be wrong, and what puts it right. */
interface Case {
  node: string;
  /** The dialog input, or the first level row's input for `level`. */
  input: string;
  /** The node property it sets (to match the node's validated defaults). */
  property: string;
  invalid: string;
  reason: RegExp;
  valid: string;
}

const cases: Case[] = [
  { node: FORECAST, input: '#node-input-forecastTarget', property: 'forecastTarget', invalid: '', reason: /numeric target/, valid: '3.3' },
  { node: FORECAST, input: '#node-input-forecastTarget', property: 'forecastTarget', invalid: 'low', reason: /numeric target/, valid: '3.25' },
  { node: FORECAST, input: '#node-input-forecastWindow', property: 'forecastWindow', invalid: 'two days', reason: /trend window must be a duration/, valid: '2d' },
  { node: FORECAST, input: '#node-input-forecastMinReadings', property: 'forecastMinReadings', invalid: '2', reason: /whole number, 3 or more/, valid: '12' },
  { node: FORECAST, input: '#node-input-forecastMinReadings', property: 'forecastMinReadings', invalid: '7.5', reason: /whole number, 3 or more/, valid: '10' },
  { node: FORECAST, input: '#node-input-forecastMinConfidence', property: 'forecastMinConfidence', invalid: '1.5', reason: /between 0 and 1/, valid: '0.8' },
  { node: FORECAST, input: '#node-input-forecastClearMargin', property: 'forecastClearMargin', invalid: '-10', reason: /percentage, 0 or more/, valid: '50' },
  { node: FORECAST, input: '.iot-l-silent-for', property: 'levels', invalid: 'soon', reason: /needs a lead time/, valid: '36' },
  { node: ANOMALY, input: '#node-input-anomalyHistory', property: 'anomalyHistory', invalid: '1', reason: /history must be a whole number/, valid: '200' },
  { node: ANOMALY, input: '#node-input-anomalyWarmup', property: 'anomalyWarmup', invalid: 'some', reason: /warm-up must be a whole number/, valid: '20' },
  { node: ANOMALY, input: '#node-input-anomalyMinDeviation', property: 'anomalyMinDeviation', invalid: '-1', reason: /minimum deviation must be a number/, valid: '0.5' },
  { node: ANOMALY, input: '.iot-l-threshold', property: 'levels', invalid: '0', reason: /needs a score above zero/, valid: '5' },
];

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  node = await NodeRedProcess.start({ flows });
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 1400, height: 900 }, 'iot-threshold'));
  await page.evaluate(() => (window as unknown as { RED: { workspaces: { show(id: string): void } } }).RED.workspaces.show('predict.tab'));
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

async function edit(id: string, input: string, value: string): Promise<void> {
  await page.locator(`[id="${id}"]`).dblclick();
  await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
  const box = page.locator(input).first();
  await box.waitFor({ state: 'visible' });
  // The dialog fills its inputs while it slides open; a value typed before that is overwritten.
  await page.waitForTimeout(200);
  await box.fill(value);
  await page.waitForTimeout(100);
  if ((await box.inputValue()) !== value) await box.fill(value);
  expect(await box.inputValue()).toBe(value);
  await page.click('#node-dialog-ok');
  await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
}

async function validity(id: string): Promise<{ valid: boolean; errors: string[]; triangle: boolean }> {
  const state = await page.evaluate((nodeId) => {
    const found = (window as unknown as { RED: Red }).RED.nodes.node(nodeId);
    return { valid: found.valid, errors: found.validationErrors ?? [] };
  }, id);
  const triangle = await page.locator(`[id="${id}"] .red-ui-flow-node-error`).isVisible();
  return { ...state, triangle };
}

describe('threshold editor: forecast and anomaly settings', () => {
  it.each([
    [FORECAST, '.iot-threshold-forecast-row', '.iot-threshold-anomaly-row', 'threshold-forecast-edit.png'],
    [ANOMALY, '.iot-threshold-anomaly-row', '.iot-threshold-forecast-row', 'threshold-anomaly-edit.png'],
  ])('%s shows its own settings and not the other rule', async (id, own, other, picture) => {
    await page.locator(`[id="${id}"]`).dblclick();
    await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
    await expect(page.locator(own).first().isVisible()).resolves.toBe(true);
    await expect(page.locator(other).first().isVisible()).resolves.toBe(false);
    await expect(page.locator('.iot-threshold-measure-row').isVisible()).resolves.toBe(false);
    await expect(page.locator('.iot-threshold-hysteresis-row').isVisible()).resolves.toBe(id === ANOMALY);
    mkdirSync(screenshots, { recursive: true });
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(screenshots, picture) });
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#node-dialog-cancel', { state: 'detached' });
  });

  it('has a case for every validated forecast and anomaly setting', async () => {
    const validated = await page.evaluate(() => {
      const defaults = (window as unknown as { RED: Red }).RED.nodes.getType('iot-threshold').defaults;
      return Object.keys(defaults).filter((name) => /^(forecast|anomaly)/.test(name) && typeof defaults[name].validate === 'function');
    });
    const covered = new Set(cases.map((c) => c.property));
    expect(validated.filter((name) => !covered.has(name))).toEqual([]);
  });

  it.each(cases)('$property "$invalid" marks the node invalid; "$valid" makes it valid again', async ({ node: id, input, invalid, reason, valid }) => {
    expect(await validity(id)).toMatchObject({ valid: true, triangle: false });
    await edit(id, input, invalid);
    const bad = await validity(id);
    expect(bad.valid).toBe(false);
    expect(bad.triangle).toBe(true);
    expect(bad.errors.join('\n')).toMatch(reason);
    await edit(id, input, valid);
    expect(await validity(id)).toMatchObject({ valid: true, triangle: false, errors: [] });
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
