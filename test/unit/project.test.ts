/**
 * The project's own plumbing: first-start seeding of flows, the example flows as files, the
 * package manifest, and the Debian package check of the test harness.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readExampleFlows, seedFlows } from '../../scripts/seed-flows';
import { ensureInstalled } from '../support/system-packages';

const root = join(__dirname, '..', '..');
const dirs: string[] = [];
afterEach(() => {
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
  vi.restoreAllMocks();
});
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), 'project-'));
  dirs.push(dir);
  return dir;
};

describe('first-start flows', () => {
  it('deploys every example flow once, then leaves the user flows alone', () => {
    const userDir = fresh();
    const first = seedFlows(join(root, 'flows'), userDir);
    expect(first.seeded).toBe(true);
    expect(first.tabs).toContain('Threshold alerts');
    // The tabs open on the patterns, in their order; the single-node examples come after.
    const patterns = readdirSync(join(root, 'flows')).filter((f) => f.startsWith('pattern-')).length;
    expect(first.tabs.slice(0, patterns)).toEqual(Array.from({ length: patterns }, (_, i) => expect.stringMatching(new RegExp(`^Pattern ${i + 1} · `))));
    expect(first.tabs.slice(patterns).filter((t) => t.startsWith('Pattern'))).toEqual([]);
    writeFileSync(join(userDir, 'flows.json'), '[]');
    expect(seedFlows(join(root, 'flows'), userDir)).toEqual({ seeded: false, tabs: [] });
    expect(readFileSync(join(userDir, 'flows.json'), 'utf8')).toBe('[]');
  });

  it('refuses example flows that share a node id, but takes a shared config node once', () => {
    const flows = fresh();
    const shared = { id: 'shared.config', type: 'iot-influxdb', url: '${INFLUX_URL}' };
    writeFileSync(join(flows, 'a.json'), JSON.stringify([{ id: 'a.tab', type: 'tab' }, shared]));
    writeFileSync(join(flows, 'b.json'), JSON.stringify([{ id: 'b.tab', type: 'tab' }, shared]));
    const userDir = fresh();
    expect(seedFlows(flows, userDir).tabs).toEqual(['a.tab', 'b.tab']);
    expect(JSON.parse(readFileSync(join(userDir, 'flows.json'), 'utf8')).filter((n: { id: string }) => n.id === 'shared.config')).toHaveLength(1);
    writeFileSync(join(flows, 'b.json'), JSON.stringify([{ id: 'b.tab', type: 'tab' }, { ...shared, url: 'http://elsewhere' }]));
    expect(() => seedFlows(flows, fresh())).toThrow(/node id shared.config is in a.json and b.json/);
    writeFileSync(join(flows, 'b.json'), JSON.stringify([{ id: 'a.tab', type: 'tab' }]));
    expect(() => seedFlows(flows, fresh())).toThrow(/node id a.tab is in a.json and b.json/);
  });
});

describe('the example flows', () => {
  const files = readdirSync(join(root, 'flows')).filter((f) => f.endsWith('.json'));

  it.each(files)('%s is one tab, explained by a comment, with no secret in it', (file) => {
    const text = readFileSync(join(root, 'flows', file), 'utf8');
    const nodes = JSON.parse(text) as Array<{ id: string; type: string; z?: string; name?: string }>;
    const tabs = nodes.filter((n) => n.type === 'tab');
    expect(tabs).toHaveLength(1);
    expect(nodes.filter((n) => n.type !== 'tab' && n.z !== undefined).every((n) => n.z === tabs[0].id)).toBe(true);
    expect(nodes.some((n) => n.type === 'comment' && n.z === tabs[0].id)).toBe(true);
    expect(text).not.toMatch(/"(password|secret|token|privateKey|apiKey|clientSecret)"\s*:\s*"[^"$]/i);
  });

  it('have unique node ids across all files, but for shared config nodes of the same content', () => {
    const ids = readExampleFlows(join(root, 'flows')).map((n) => n.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('together use every non-config node type of the pack', () => {
    const used = new Set(readExampleFlows(join(root, 'flows')).map((n) => n.type));
    const declared = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))['node-red'].nodes);
    const html = declared.map((name) => readFileSync(join(root, 'nodes', name.replace(/^iot-/, ''), `${name.replace(/^iot-/, '')}.html`), 'utf8')).join('\n');
    const nodeTypes = [...html.matchAll(/registerType\("([^"]+)",\s*\{[\s\S]*?category:\s*"([^"]+)"/g)].filter((m) => m[2] !== 'config').map((m) => m[1]);
    expect(nodeTypes.length).toBeGreaterThan(0);
    expect(nodeTypes.filter((t) => !used.has(t))).toEqual([]);
  });
});

describe('the package manifest', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

  it('is a scoped node-red package that covers Node-RED 4.1 and 5 and Node 20 up', () => {
    expect(pkg.name).toMatch(/^@[a-z0-9-]+\/[a-z0-9-]+$/);
    expect(pkg.keywords).toContain('node-red');
    expect(pkg.license).toBeTruthy();
    expect(pkg.repository.url).toMatch(/^git\+https:/);
    expect(pkg.engines.node).toBe('>=20');
    expect(pkg['node-red'].version).toBe('>=4.1.0 <6.0.0');
  });

  it('lists every node folder, and every node folder has its editor file, locales and help', () => {
    const folders = readdirSync(join(root, 'nodes'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name !== 'shared')
      .map((d) => d.name);
    const listed = Object.values(pkg['node-red'].nodes as Record<string, string>).map((path) => path.split('/')[2]);
    for (const folder of folders) {
      expect(listed).toContain(folder);
      const files = readdirSync(join(root, 'nodes', folder));
      expect(files).toContain(`${folder}.html`);
      expect(readdirSync(join(root, 'nodes', folder, 'locales', 'en-US')).sort()).toEqual([`${folder}.html`, `${folder}.json`]);
    }
  });

  it('pins dependencies that must run on Node 20 and Node 22', () => {
    const all = { ...pkg.dependencies, ...pkg.devDependencies } as Record<string, string>;
    expect(all['node-red']).toMatch(/^[~^]?4\.1\./);
    expect(all.vitest).toMatch(/^[~^]?(3\.2|4\.1)\./);
    if (all.jsforce) expect(all.jsforce).toMatch(/^3\.10\.(1[0-6]|[0-9])$/);
  });
});

describe('Debian packages for the tests', () => {
  it('names the missing package instead of skipping when it cannot install', () => {
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    expect(() => ensureInstalled({ name: 'no-such-package', binary: '/nonexistent/bin/tool' })).toThrow(/Missing Debian package\(s\): no-such-package/);
  });

  it('does nothing when the program is there', () => {
    expect(() => ensureInstalled({ name: 'coreutils', binary: '/bin/ls' })).not.toThrow();
  });
});
