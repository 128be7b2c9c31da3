import type { KnipConfig } from 'knip';
import pkg from './package.json';

/**
 * `npm run knip` (run by `npm test`): files, exports and dependencies nothing uses. Entries are
 * what runs: each adapter package.json's node-red.nodes loads (listed there as its compiled file),
 * the scripts and benches npm runs or spawns, and the sandbox server the benches start; the tests
 * come from vitest's configs (knip's vitest plugin).
 */
const adapters = Object.values(pkg['node-red'].nodes).map((compiled) => compiled.replace(/^dist\//, '').replace(/\.js$/, '.ts'));

const config: KnipConfig = {
  entry: [...adapters, 'scripts/{copy-assets,start,simulate,nr5,validate}.ts', 'bench/{run,evaluate-forecast,timeseries-memory,bare-subscriber}.ts', 'sandbox/salesforce/server.ts'],
  project: ['nodes/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts', 'simulator/**/*.ts', 'sandbox/**/*.ts', 'test/**/*.ts', 'settings.ts'],
  // An export its own file also uses is not dead code: report only exports nothing uses.
  ignoreExportsUsedInFile: true,
  // Loaded by Node-RED from node_modules, never imported: the dashboard (npm start, the browser
  // tests), the old influxdb nodes (the time-series bench's comparison); node-red-dev's bin is
  // what `npm run validate` runs.
  ignoreDependencies: ['@flowfuse/node-red-dashboard', 'node-red-contrib-influxdb', 'node-red-dev'],
  // Debian's, installed by .ci/run or test/support/system-packages.ts.
  ignoreBinaries: ['openssl', 'apt-get'],
};

export default config;
