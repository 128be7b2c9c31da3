import { defineConfig } from 'vitest/config';

/**
 * `npm run test:chaos`: the long runs kept out of `npm test` (kill loops, outages, soaks), each a
 * file in test/chaos/ against real processes and servers. Files run one after another: each loads
 * the machine on its own, and timing is part of what they prove.
 */
export default defineConfig({
  test: {
    name: 'chaos',
    pool: 'forks',
    include: ['test/chaos/**/*.test.ts'],
    globalSetup: ['test/support/system-packages.ts'],
    fileParallelism: false,
    testTimeout: 30 * 60_000,
    hookTimeout: 5 * 60_000,
  },
});
