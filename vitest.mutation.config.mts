import { defineConfig } from 'vitest/config';

/**
 * The unit tests alone, for `npm run mutation` (Stryker runs them against each mutant of a pure
 * core: the cores have no servers and no Node-RED, so nothing else can kill a mutant of theirs).
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
  },
});
