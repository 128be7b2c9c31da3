/**
 * First start: the example flows become the user's flows, one tab each. Later starts find the
 * flows file and leave the user's edits alone.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SeedResult {
  /** false: a flows file was there already and was kept. */
  seeded: boolean;
  tabs: string[];
}

/** Every flow file in flowsDir, in name order, as one array of nodes. */
export function readExampleFlows(flowsDir: string): Array<Record<string, unknown>> {
  if (!existsSync(flowsDir)) return [];
  const nodes: Array<Record<string, unknown>> = [];
  for (const file of readdirSync(flowsDir).filter((f) => f.endsWith('.json')).sort()) {
    const flow = JSON.parse(readFileSync(join(flowsDir, file), 'utf8')) as unknown;
    if (!Array.isArray(flow)) throw new Error(`${file}: a flow file holds an array of nodes`);
    nodes.push(...(flow as Array<Record<string, unknown>>));
  }
  return nodes;
}

export function seedFlows(flowsDir: string, userDir: string, flowFile = 'flows.json'): SeedResult {
  const target = join(userDir, flowFile);
  if (existsSync(target)) return { seeded: false, tabs: [] };
  const nodes = readExampleFlows(flowsDir);
  const seen = new Set<string>();
  for (const node of nodes) {
    const id = String(node.id);
    if (seen.has(id)) throw new Error(`node id ${id} appears in two example flows: ids must be unique across flows/`);
    seen.add(id);
  }
  writeFileSync(target, `${JSON.stringify(nodes, null, 4)}\n`);
  return { seeded: true, tabs: nodes.filter((n) => n.type === 'tab').map((n) => String(n.label ?? n.id)) };
}
