/** Figures as README table rows, and README sections rewritten between their markers. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { format, met, type Figure } from './measure';

const readme = join(resolve(__dirname, '..', '..'), 'README.md');

export function row(f: Figure): string {
  const verdict = met(f);
  const goal = f.goal ? `${f.goal.op} ${format(f.goal.value)}` : '';
  const mark = verdict === undefined ? '' : verdict ? 'met' : 'MISSED';
  return `| ${f.name} | ${format(f.value)} ${f.unit} | ${goal} | ${mark} | ${f.note ?? ''} |`;
}

export function table(figures: Figure[]): string {
  return ['| measured | value | goal | | notes |', '|---|---|---|---|---|', ...figures.map(row)].join('\n');
}

/** Replaces what lies between <!-- marker --> and <!-- /marker --> in README.md; false when the markers are missing. */
export function writeSection(marker: string, body: string): boolean {
  const text = readFileSync(readme, 'utf8');
  const start = `<!-- ${marker} -->`;
  const end = `<!-- /${marker} -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) return false;
  writeFileSync(readme, `${text.slice(0, from)}${start}\n${body}\n${end}${text.slice(to + end.length)}`);
  return true;
}
