/**
 * The package as users get it: `npm pack`, installed into a plain Node-RED user directory, loads
 * its nodes (with their editor files beside the code) and offers its flows under Import > Examples.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/node-red-process';

const PACKAGE = '@iot-patterns/node-red-enterprise-iot';
const work = mkdtempSync(join(tmpdir(), 'iot-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 180_000 });
  expect(result.status, `${command} ${args.join(' ')}:\n${result.stdout}${result.stderr}`).toBe(0);
  return result.stdout;
}

describe('the packed package in a plain Node-RED user directory', () => {
  it('installs from npm pack, loads every node and lists the examples', async () => {
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], repoRoot)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0].files.map((f) => f.path);
    const declared = Object.values(JSON.parse(run('node', ['-p', 'JSON.stringify(require("./package.json")["node-red"].nodes)'], repoRoot)) as Record<string, string>);
    for (const js of declared) {
      expect(files).toContain(js);
      expect(files).toContain(js.replace(/\.js$/, '.html'));
    }
    expect(files.some((f) => f.startsWith('examples/') && f.endsWith('.json'))).toBe(true);
    expect(files.some((f) => /locales\/en-US\/.+\.json$/.test(f))).toBe(true);
    expect(files.filter((f) => f.endsWith('.ts') || f.startsWith('test/') || f.startsWith('flows/'))).toEqual([]);

    const userDir = join(work, 'userdir');
    run('mkdir', ['-p', userDir], work);
    writeFileSync(join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
    writeFileSync(
      join(userDir, 'settings.js'),
      "module.exports = { uiHost: '127.0.0.1', uiPort: 0, flowFile: 'flows.json', credentialSecret: 'pack-test', telemetry: { enabled: false }, editorTheme: { palette: { catalogues: [] }, tours: false } };\n",
    );
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, packed[0].filename)], userDir);
    expect(readdirSync(join(userDir, 'node_modules', '@iot-patterns'))).toEqual(['node-red-enterprise-iot']);

    // The command-line Node-RED: red.js at the package root (lib/red.js is the embedding API).
    const api = process.env.NODE_RED_PATH ?? createRequire(__filename).resolve('node-red');
    const redJs = join(dirname(dirname(api)), 'red.js');
    const child = spawn(process.execPath, [redJs, '--userDir', userDir], { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let log = '';
      const url = await new Promise<string>((ready, fail) => {
        const timer = setTimeout(() => fail(new Error(`Node-RED did not start:\n${log}`)), 60_000);
        const read = (chunk: Buffer) => {
          log += chunk.toString();
          const m = /Server now running at (http:\/\/127\.0\.0\.1:\d+)\//.exec(log);
          if (m) {
            clearTimeout(timer);
            ready(m[1]);
          }
        };
        child.stdout.on('data', read);
        child.stderr.on('data', read);
      });
      const modules = (await fetch(`${url}/nodes`, { headers: { Accept: 'application/json' } }).then((r) => r.json())) as Array<{ module: string; types: string[]; err?: string }>;
      const ours = modules.filter((m) => m.module === PACKAGE);
      expect(ours.length).toBe(declared.length);
      expect(ours.filter((m) => m.err)).toEqual([]);
      const editorHtml = await fetch(`${url}/nodes`, { headers: { Accept: 'text/html' } }).then((r) => r.text());
      expect(editorHtml).toContain('data-template-name="iot-threshold"');
      expect(editorHtml).toContain('data-help-name="iot-threshold"');
      const examples = (await fetch(`${url}/library/examples/flows/${PACKAGE}`).then((r) => r.json())) as Array<{ fn: string }>;
      expect(examples.map((e) => e.fn)).toContain('threshold-alerts');
      const icon = await fetch(`${url}/icons/${PACKAGE}/threshold.svg`);
      expect(icon.status).toBe(200);
    } finally {
      child.kill('SIGINT');
    }
  });
});
