/**
 * The buffer's accepted output in the editor (Debian's Chromium): switching it on adds an output
 * second and moves the wires of the dead letters, control replies and refusals down with their
 * outputs; switching it off takes the output away and moves them back. What a person would
 * otherwise find: dead letters wired to what expects refusals.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEditor } from '../support/browser';
import { NodeRedProcess } from '../support/node-red-process';

const flows = [
  { id: 'wires.tab', type: 'tab', label: 'buffer wires' },
  { id: 'wires.buffer', type: 'iot-buffer', z: 'wires.tab', name: 'queue', maxInFlight: '10', x: 300, y: 200, wires: [['wires.delivered'], ['wires.dead'], ['wires.control'], ['wires.refused']] },
  // As a flow from before settings versions saved it: no version, no window (it had 10 in flight).
  { id: 'wires.old-buffer', type: 'iot-buffer', z: 'wires.tab', name: 'old queue', x: 300, y: 400, wires: [[], [], [], []] },
  ...['delivered', 'accepted', 'dead', 'control', 'refused'].map((name, i) => ({ id: `wires.${name}`, type: 'debug', z: 'wires.tab', name, active: false, x: 600, y: 100 + 60 * i, wires: [] })),
];

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  node = await NodeRedProcess.start({ flows });
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 1400, height: 900 }, 'iot-buffer'));
  await page.evaluate(() => (window as unknown as { RED: { workspaces: { show(id: string): void } } }).RED.workspaces.show('wires.tab'));
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

/** Where each wire of the buffer goes, by output port, as the editor holds them. */
function wiresByPort(): Promise<Record<number, string[]>> {
  return page.evaluate(() => {
    type Link = { source: { id: string }; sourcePort: number; target: { name: string } };
    const RED = (window as unknown as { RED: { nodes: { eachLink(fn: (l: Link) => void): void } } }).RED;
    const byPort: Record<number, string[]> = {};
    RED.nodes.eachLink((l) => {
      if (l.source.id === 'wires.buffer') (byPort[l.sourcePort] ??= []).push(l.target.name);
    });
    return byPort;
  });
}

const outputCount = () => page.evaluate(() => (window as unknown as { RED: { nodes: { node(id: string): { outputs: number } } } }).RED.nodes.node('wires.buffer').outputs);

async function switchAccepted(on: boolean): Promise<void> {
  await page.locator('[id="wires.buffer"]').dblclick();
  await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
  await page.locator('#node-input-acceptedOutput').setChecked(on);
  await page.click('#node-dialog-ok');
  await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
}

describe('the buffer in the editor', () => {
  it('moves the wires of the later outputs with them when the accepted output is switched on and off', async () => {
    expect(await wiresByPort()).toEqual({ 0: ['delivered'], 1: ['dead'], 2: ['control'], 3: ['refused'] });
    await switchAccepted(true);
    expect(await outputCount()).toBe(5);
    expect(await wiresByPort()).toEqual({ 0: ['delivered'], 2: ['dead'], 3: ['control'], 4: ['refused'] });
    // Wire the new output, then switch it off again: its wire goes, the others move back.
    await page.evaluate(() => {
      const RED = (window as unknown as { RED: { nodes: { node(id: string): unknown; addLink(l: object): void } } }).RED;
      RED.nodes.addLink({ source: RED.nodes.node('wires.buffer'), sourcePort: 1, target: RED.nodes.node('wires.accepted') });
    });
    expect(await wiresByPort()).toEqual({ 0: ['delivered'], 1: ['accepted'], 2: ['dead'], 3: ['control'], 4: ['refused'] });
    await switchAccepted(false);
    expect(await outputCount()).toBe(4);
    expect(await wiresByPort()).toEqual({ 0: ['delivered'], 1: ['dead'], 2: ['control'], 3: ['refused'] });
    // Opening and closing the dialog without switching moves nothing.
    await switchAccepted(false);
    expect(await wiresByPort()).toEqual({ 0: ['delivered'], 1: ['dead'], 2: ['control'], 3: ['refused'] });
  });

  it('keeps a node from before settings versions at 10 in flight when opened and saved, at version 2', async () => {
    await page.locator('[id="wires.old-buffer"]').dblclick();
    await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
    expect(await page.inputValue('#node-input-maxInFlight')).toBe('10');
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
    const saved = await page.evaluate(() => {
      const n = (window as unknown as { RED: { nodes: { node(id: string): { settingsVersion?: unknown; maxInFlight?: unknown } } } }).RED.nodes.node('wires.old-buffer');
      return { settingsVersion: n.settingsVersion, maxInFlight: n.maxInFlight };
    });
    expect(saved).toEqual({ settingsVersion: 2, maxInFlight: '10' });
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
