/**
 * The flow library's scorecard (node-red-dev validate) passes every check. See scripts/validate.ts
 * for how it runs without the online catalogue.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/node-red-process';

describe('node-red-dev validate', () => {
  it('reports no error and every check passes', () => {
    const run = spawnSync(process.execPath, [join(repoRoot, 'dist/scripts/validate.js')], { cwd: repoRoot, encoding: 'utf8', timeout: 240_000 });
    const output = `${run.stdout}${run.stderr}`;
    expect(run.status, output).toBe(0);
    expect(output).toMatch(/every (other )?check passes/);
    expect(output).toContain('Examples found for all nodes');
    expect(output).not.toMatch(/\bError\b/);
  });
});
