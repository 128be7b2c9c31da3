/**
 * The second half of `npm run build`: tsc compiles the code, this puts beside each compiled node
 * what Node-RED loads from there (its .html, locales/ and icons/), and copies the flows to
 * examples/, the only folder Node-RED offers under Import > Examples: the pattern flows into
 * examples/patterns/, the editor's first entry (it lists folders before files), the others beside.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isPatternFlow } from './flow-layout';

const root = resolve(__dirname, '..', '..');
const ASSET_DIRS = ['locales', 'icons'];

function copyNodeAssets(): number {
  let copied = 0;
  const nodesDir = join(root, 'nodes');
  for (const name of readdirSync(nodesDir)) {
    const source = join(nodesDir, name);
    if (!statSync(source).isDirectory()) continue;
    const target = join(root, 'dist', 'nodes', name);
    for (const entry of readdirSync(source)) {
      const from = join(source, entry);
      if (entry.endsWith('.html') || (ASSET_DIRS.includes(entry) && statSync(from).isDirectory())) {
        cpSync(from, join(target, entry), { recursive: true });
        copied++;
      }
    }
  }
  return copied;
}

function copyExamples(): number {
  const flows = join(root, 'flows');
  const examples = join(root, 'examples');
  rmSync(examples, { recursive: true, force: true });
  if (!existsSync(flows)) return 0;
  const files = readdirSync(flows).filter((file) => file.endsWith('.json'));
  mkdirSync(join(examples, 'patterns'), { recursive: true });
  for (const file of files) cpSync(join(flows, file), join(examples, isPatternFlow(file) ? 'patterns' : '', file));
  return files.length;
}

const assets = copyNodeAssets();
const examples = copyExamples();
console.error(`build: ${assets} node asset(s), ${examples} example flow(s)`);
