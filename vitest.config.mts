import { defineConfig } from 'vitest/config';

/**
 * One project per kind of test, so each can be run alone (`vitest run --project unit`) and the
 * Node-RED 5 leg can pick the node and browser projects. Servers are started per file by
 * test/support/services.ts; the projects that need servers or Chromium first install the Debian
 * packages that are missing (test/support/system-packages.ts).
 */
export default defineConfig({
  test: {
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'nodes', include: ['test/nodes/**/*.test.ts'], testTimeout: 20_000 } },
      { extends: true, test: { name: 'integration', globalSetup: ['test/support/system-packages.ts'], include: ['test/integration/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 240_000 } },
      { extends: true, test: { name: 'e2e', globalSetup: ['test/support/system-packages.ts'], include: ['test/e2e/**/*.test.ts'], testTimeout: 300_000, hookTimeout: 240_000 } },
      { extends: true, test: { name: 'attack', globalSetup: ['test/support/system-packages.ts'], include: ['test/attack/**/*.test.ts'], testTimeout: 300_000, hookTimeout: 240_000 } },
      { extends: true, test: { name: 'browser', globalSetup: ['test/support/system-packages.ts'], include: ['test/browser/**/*.test.ts'], testTimeout: 180_000, hookTimeout: 240_000 } },
    ],
  },
});
