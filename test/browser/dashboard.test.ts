/**
 * The fleet dashboard (flows/fleet-dashboard.json, FlowFuse Dashboard 2.0) as `npm start --
 * --simulate` serves it, in Chromium: its URL printed with the others; within a minute the charts
 * hold the simulated devices' points (counted in the charts' own data, compared with the store),
 * with the threshold levels as lines; a tile per device; live updates. Alerts and queue figures
 * arrive through the dashboard's link nodes (the pattern flows will send them there; here a test
 * tab does): the open alert with its Case link, its mark on the chart, the queue's depth and age.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';
import { eventually } from '../support/wait';

const pictures = join(repoRoot, 'test-results', process.env.NODE_RED_PATH ? 'node-red-5' : 'node-red-4', 'dashboard');

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

interface ChartSeries {
  name: string;
  points: number;
  lastX: number;
  marks: number;
  lines: number[];
}

beforeAll(async () => {
  mkdirSync(pictures, { recursive: true });
  node = await NodeRedProcess.start({ args: ['--simulate'] });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  page = await browser.newPage({ viewport: { width: 1600, height: 1200 } });
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  page.on('pageerror', (error) => pageErrors.push(error.message));
});

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

/** What a chart of the page holds, read from its ECharts instance (not from pixels). */
async function chartSeries(nodeId: string): Promise<ChartSeries[]> {
  return page.evaluate((id) => {
    type VNode = { component?: Component; children?: unknown; dynamicChildren?: VNode[] } | null;
    type Component = { type: { name?: string }; props: { id?: string }; proxy: { chart?: { getOption(): { series: Array<{ name: string; data: unknown[]; markPoint?: { data?: unknown[] }; markLine?: { data?: Array<{ yAxis: number }> } }> } } }; subTree: VNode };
    const host = Array.from(document.querySelectorAll('*')).find((e) => (e as unknown as { _vnode?: unknown })._vnode && (e as unknown as { __vue_app__?: unknown }).__vue_app__);
    let found: Component | undefined;
    const walk = (vnode: VNode, depth: number): void => {
      if (!vnode || found || depth > 400) return;
      if (vnode.component) {
        if (vnode.component.type.name === 'DBUIChart' && vnode.component.props.id === id) found = vnode.component;
        walk(vnode.component.subTree, depth + 1);
      }
      if (Array.isArray(vnode.children)) for (const child of vnode.children as VNode[]) walk(child, depth + 1);
      if (vnode.dynamicChildren) for (const child of vnode.dynamicChildren) walk(child, depth + 1);
    };
    walk((host as unknown as { _vnode: VNode })._vnode, 0);
    const option = found?.proxy.chart?.getOption();
    return (option?.series ?? []).map((s) => ({
      name: s.name,
      points: s.data.length,
      lastX: Math.max(0, ...s.data.map((d) => Number(Array.isArray(d) ? d[0] : (d as { value?: unknown[] })?.value?.[0] ?? 0))),
      marks: s.markPoint?.data?.length ?? 0,
      lines: (s.markLine?.data ?? []).map((l) => l.yAxis),
    }));
  }, nodeId);
}

/** Devices and their temperature points in the store since `from` (victoria-metrics' export). */
async function storedTemperatures(from: number): Promise<Map<string, number>> {
  const body = await fetch(`${node.timeSeriesUrl}/api/v1/export?match[]=${encodeURIComponent('readings_temperature')}&start=${Math.floor(from / 1000)}`).then((r) => r.text());
  const found = new Map<string, number>();
  for (const line of body.split('\n').filter((l) => l.trim() !== '')) {
    const series = JSON.parse(line) as { metric: { device: string }; values: number[] };
    found.set(series.metric.device, (found.get(series.metric.device) ?? 0) + series.values.length);
  }
  return found;
}

describe('the fleet dashboard', () => {
  it('is printed with the other URLs', () => {
    expect(node.dashboardUrl).toBe(`${node.editorUrl}/dashboard`);
  });

  it("charts the simulated devices' points within a minute, with the threshold levels as lines", async () => {
    const opened = Date.now();
    await page.goto(`${node.dashboardUrl}/fleet`);
    const series = await eventually(
      'every device of the store charted with its points',
      async () => {
        const stored = await storedTemperatures(opened - 15 * 60_000);
        const charted = await chartSeries('fleet.chart.temperature');
        const byName = new Map(charted.map((s) => [s.name, s]));
        // Every device the store holds is a line, with the store's points of the window (a few
        // more may have arrived since the chart was drawn).
        const missing = [...stored].filter(([device, n]) => (byName.get(device)?.points ?? 0) < Math.min(n, 3));
        return stored.size >= 9 && missing.length === 0 ? charted : undefined;
      },
      60_000,
      1_000,
    );
    expect(Date.now() - opened).toBeLessThan(60_000);
    expect(series.filter((s) => s.points >= 3).length).toBeGreaterThanOrEqual(9);
    expect(series[0].lines.sort((a, b) => a - b)).toEqual([80, 90]);
    const battery = await chartSeries('fleet.chart.battery');
    expect(battery.length).toBeGreaterThanOrEqual(9);
    expect(battery[0].lines).toEqual([3.3]);
    await page.screenshot({ path: join(pictures, 'fleet.png') });
  });

  it('shows a tile per device with its last reading, and updates live', async () => {
    const charted = await chartSeries('fleet.chart.temperature');
    const tiles = await eventually('a tile per charted device', async () => {
      const shown = await page.locator('.fleet-tile').evaluateAll((els) => els.map((el) => ({ device: el.getAttribute('data-device'), text: (el as HTMLElement).innerText })));
      return shown.length === charted.length ? shown : undefined;
    });
    expect(tiles.map((t) => t.device).sort()).toEqual(charted.map((s) => s.name).sort());
    expect(tiles.filter((t) => !/temperature \d/.test(t.text)).map((t) => t.device)).toEqual([]);
    expect(tiles.filter((t) => t.text.includes('online')).length).toBeGreaterThanOrEqual(9);
    // Newer points arrive while the page stays open.
    const before = Math.max(...charted.map((s) => s.lastX));
    await eventually('newer points on the chart', async () => (Math.max(...(await chartSeries('fleet.chart.temperature')).map((s) => s.lastX)) > before ? true : undefined), 20_000, 500);
  });

  it('shows the alerts and queues the flows send: the open alert with its Case, its marks, the queue', async () => {
    const device = (await chartSeries('fleet.chart.temperature'))[0].name;
    const caseId = '500000000000123AAA';
    const alert = { id: `${device}-temperature-1`, state: 'raised', key: device, reading: 'temperature', rule: 'above', severity: 'critical', value: 93.5, threshold: 90, since: Date.now() - 10_000, at: Date.now() - 10_000 };
    // What the pattern flows will send: the threshold's alert, the Case written for it, a buffer's status.
    const sender = (id: string, func: string, target: string, y: number) => [
      { id: `t.${id}`, type: 'inject', z: 't.tab', props: [], repeat: '', once: true, onceDelay: '1', x: 120, y, wires: [[`t.${id}.f`]] },
      { id: `t.${id}.f`, type: 'function', z: 't.tab', func, outputs: 1, x: 300, y, wires: [[`t.${id}.out`]] },
      { id: `t.${id}.out`, type: 'link out', z: 't.tab', mode: 'link', links: [target], x: 480, y, wires: [] },
    ];
    const response = await fetch(`${node.editorUrl}/flow`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        id: 't.tab',
        label: 'what the flows send',
        nodes: [
          ...sender('alert', `msg.alert = ${JSON.stringify(alert)}; msg.device = { id: ${JSON.stringify(device)} }; return msg;`, 'fleet.alerts-in', 60),
          ...sender('case', `msg.alert = ${JSON.stringify(alert)}; msg.salesforce = { success: true, id: ${JSON.stringify(caseId)}, created: true }; return msg;`, 'fleet.alerts-in', 120),
          ...sender('queue', 'msg.topic = "Pattern 3 · durable queue"; msg.payload = { depth: 915, inFlight: 10, oldestAgeMs: 300000, deadLettered: 2 }; return msg;', 'fleet.queues-in', 180),
        ],
      }),
    });
    expect(response.status).toBe(200);

    const row = page.locator(`.fleet-alerts tr[data-alert="${alert.id}"]`);
    await row.waitFor({ timeout: 15_000 });
    await expect(row.innerText()).resolves.toContain('critical');
    const link = await eventually('the Case link', async () => (await row.locator('a').count()) === 1 ? row.locator('a').getAttribute('href') : undefined);
    expect(link).toBe(`${node.salesforceUrl}/${caseId}`);
    // The link opens the CRM page at that Case (the sandbox answers a record's address as Salesforce does).
    const opened = await fetch(link as string);
    expect(opened.status).toBe(200);
    expect(opened.url).toBe(`${node.salesforceUrl}/?case=${caseId}`);
    await eventually('the tile in alert', async () => ((await page.locator(`.fleet-tile[data-device="${device}"]`).getAttribute('class'))?.includes('critical') ? true : undefined), 15_000);
    await eventually('the raise marked on the chart', async () => ((await chartSeries('fleet.chart.temperature')).find((s) => s.name === device)?.marks === 1 ? true : undefined), 15_000);

    const queue = page.locator('.fleet-queues tr[data-queue="Pattern 3 · durable queue"]');
    await queue.waitFor({ timeout: 15_000 });
    expect((await queue.innerText()).split('\t').map((c) => c.trim())).toEqual(['Pattern 3 · durable queue', '915', '10', '300 s', '2']);
    await page.screenshot({ path: join(pictures, 'fleet-alerts.png'), fullPage: true });
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
