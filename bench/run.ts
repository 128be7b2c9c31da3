/**
 * `npm run bench [name ...]`: runs the benchmarks, prints every figure beside its goal, and
 * writes them into README.md between <!-- bench:NAME --> and <!-- /bench:NAME --> markers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { format, met, type Figure } from './measure';
import { benchBuffer } from './buffer';
import { benchDeviceAuth } from './device-auth';
import { benchFrontDoors } from './front-doors';
import { benchSalesforce } from './salesforce';
import { benchThreshold } from './threshold';
import { benchTimeseries } from './timeseries';

const BENCHES: Record<string, () => Promise<Figure[]>> = {
  threshold: benchThreshold,
  'device-auth': benchDeviceAuth,
  'front-doors': benchFrontDoors,
  salesforce: benchSalesforce,
  timeseries: benchTimeseries,
  buffer: benchBuffer,
};

const readme = join(resolve(__dirname, '..', '..'), 'README.md');

function row(f: Figure): string {
  const verdict = met(f);
  const goal = f.goal ? `${f.goal.op} ${format(f.goal.value)}` : '';
  const mark = verdict === undefined ? '' : verdict ? 'met' : 'MISSED';
  return `| ${f.name} | ${format(f.value)} ${f.unit} | ${goal} | ${mark} | ${f.note ?? ''} |`;
}

function table(figures: Figure[]): string {
  return ['| measured | value | goal | | notes |', '|---|---|---|---|---|', ...figures.map(row)].join('\n');
}

function record(name: string, figures: Figure[], machine: string): boolean {
  const text = readFileSync(readme, 'utf8');
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) return false;
  const body = `${start}\n${table(figures)}\n\n<sub>${machine}</sub>\n${end}`;
  writeFileSync(readme, text.slice(0, from) + body + text.slice(to + end.length));
  return true;
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
    const figures = await BENCHES[name]();
    for (const f of figures) {
      console.log(row(f));
      if (met(f) === false) missed++;
    }
    console.log(record(name, figures, machine) ? `(written to README.md)` : `(README.md has no <!-- bench:${name} --> section: not written)`);
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
