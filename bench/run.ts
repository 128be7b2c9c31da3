/**
 * `npm run bench [name ...]`: runs the benchmarks, prints every figure beside its goal, and
 * writes them into README.md between <!-- bench:NAME --> and <!-- /bench:NAME --> markers.
 */
import { cpus } from 'node:os';
import { met, type Figure } from './measure';
import { benchBuffer } from './buffer';
import { row, table, writeSection } from './report';
import { benchDeviceAuth } from './device-auth';
import { benchFrontDoors } from './front-doors';
import { benchPatterns } from './patterns';
import { benchSalesforce } from './salesforce';
import { benchThreshold } from './threshold';
import { benchTimeseries } from './timeseries';
import { benchTimeseriesMemory } from './timeseries-memory';

/** A bench's figures; with `notRecorded` (why), they are printed but not written into the README. */
type BenchResult = Figure[] | { figures: Figure[]; notRecorded?: string };

const BENCHES: Record<string, () => Promise<BenchResult>> = {
  threshold: benchThreshold,
  'device-auth': benchDeviceAuth,
  'front-doors': benchFrontDoors,
  salesforce: benchSalesforce,
  timeseries: async () => [...(await benchTimeseries()), ...(await benchTimeseriesMemory())],
  buffer: benchBuffer,
  patterns: benchPatterns,
};

function record(name: string, figures: Figure[], machine: string): boolean {
  return writeSection(`bench:${name}`, `${table(figures)}\n\n<sub>${machine}</sub>`);
}

async function main(): Promise<number> {
  const chosen = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = chosen.length > 0 ? chosen : Object.keys(BENCHES);
  const unknown = names.filter((n) => !BENCHES[n]);
  if (unknown.length > 0) throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  const machine = `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run bench\` on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}.`;
  let missed = 0;
  for (const name of names) {
    console.log(`\n== ${name}`);
    const result = await BENCHES[name]();
    const { figures, notRecorded } = Array.isArray(result) ? { figures: result, notRecorded: undefined } : result;
    for (const f of figures) {
      console.log(row(f));
      if (met(f) === false) missed++;
    }
    if (notRecorded) console.log(`(${notRecorded})`);
    else console.log(record(name, figures, machine) ? `(written to README.md)` : `(README.md has no <!-- bench:${name} --> section: not written)`);
  }
  if (missed > 0) console.log(`\n${missed} figure(s) missed their goal`);
  return missed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
