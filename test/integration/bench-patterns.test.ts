/**
 * The pattern benchmark (`npm run bench patterns`) kept from rotting: every chain run with a few
 * readings, each reading acknowledged and counted back exactly from the store, every figure of
 * the report present and finite, and nothing the bench started left running. No speed is asserted:
 * the figures of a run this small on a shared machine say nothing (the benchmark itself measures).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHAINS, patternFigures, runPatternBench, type ChainResult } from '../../bench/patterns';
import { repoRoot } from '../support/node-red-process';

const READINGS = 2_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run bench patterns', () => {
  let results: ChainResult[] = [];

  it('loads compiled in plain node, as npm run bench runs it (no test-runner module on its way)', () => {
    const loaded = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(repoRoot, 'dist', 'bench', 'patterns.js'))})`], { encoding: 'utf8', timeout: 60_000 });
    expect(loaded.stderr.split('\n').slice(0, 5).join('\n')).toBe('');
    expect(loaded.status).toBe(0);
  });

  it(
    'measures every chain on the same readings, each acknowledged and read back exactly, and stops all it started',
    async () => {
      results = await runPatternBench({ readings: READINGS });
      expect(results.map((r) => r.chain)).toEqual([...CHAINS]);
      const problems = results.flatMap((r) => {
        const found: string[] = [];
        if (r.error) found.push(`${r.chain}: ${r.error}`);
        if (r.acknowledged !== r.readings) found.push(`${r.chain}: ${r.acknowledged} of ${r.readings} acknowledged (${r.refusals.join('; ')})`);
        if (!r.readBack) found.push(`${r.chain}: not read back`);
        else if (r.readBack.stored !== r.readings || r.readBack.missing !== 0 || r.readBack.extra !== 0) found.push(`${r.chain}: ${r.readBack.stored} stored, ${r.readBack.missing} missing, ${r.readBack.extra} extra of ${r.readings}`);
        return found;
      });
      expect(problems).toEqual([]);
      expect(results.map((r) => r.readings)).toEqual(CHAINS.map(() => READINGS));
      expect(results.flatMap((r) => r.processes.filter(alive).map((pid) => `${r.chain}: pid ${pid} still running`))).toEqual([]);
    },
    900_000,
  );

  it('reports every figure: rate, CPU and peak memory of each chain, ratios to the ceiling and the peer chain', () => {
    const measured = results.flatMap((r) =>
      [
        ['rate', r.rate],
        ['CPU per reading', r.cpuPerReading],
        ['peak RSS', r.peakRss],
        ['acknowledged rate', r.acknowledgedRate],
      ]
        .filter(([, value]) => !(Number.isFinite(value) && (value as number) > 0))
        .map(([what, value]) => `${r.chain} ${what}: ${value}`),
    );
    expect(measured).toEqual([]);
    const figures = patternFigures(results);
    const patterns = results.filter((r) => r.chain !== 'ceiling' && r.chain !== 'peer');
    // Ceiling and peer: one row each; each pattern: rate, ratio to the ceiling, to the peer chain, RSS ratio; one row of readings lost.
    expect(figures).toHaveLength(2 + 4 * patterns.length + 1);
    expect(figures.filter((f) => !Number.isFinite(f.value)).map((f) => f.name)).toEqual([]);
    expect(figures.at(-1)).toMatchObject({ unit: 'readings', value: 0 });
  });
});
