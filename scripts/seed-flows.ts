/**
 * First start: the example flows become the user's flows, one tab each. Later starts find the
 * flows file and leave the user's edits alone.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPatternFlow } from './flow-layout';

export interface SeedResult {
  /** false: a flows file was there already and was kept. */
  seeded: boolean;
  tabs: string[];
}

/**
 * Every flow file in flowsDir as one array of nodes: the pattern flows first, in their order
 * (pattern-1-…, pattern-2-…), then the other examples by name, so that the tabs open on the
 * patterns. Each file can be imported
 * alone, so files share config nodes (the pattern flows' one registry, Salesforce connection and
 * store) by giving them the same id and the same content: those are taken once. Any other id
 * found twice is an error.
 */
export function readExampleFlows(flowsDir: string): Array<Record<string, unknown>> {
  if (!existsSync(flowsDir)) return [];
  const byId = new Map<string, { node: Record<string, unknown>; file: string }>();
  const nodes: Array<Record<string, unknown>> = [];
  const files = readdirSync(flowsDir).filter((f) => f.endsWith('.json'));
  const ordered = [...files.filter(isPatternFlow).sort(), ...files.filter((f) => !isPatternFlow(f)).sort()];
  for (const file of ordered) {
    const flow = JSON.parse(readFileSync(join(flowsDir, file), 'utf8')) as unknown;
    if (!Array.isArray(flow)) throw new Error(`${file}: a flow file holds an array of nodes`);
    for (const node of flow as Array<Record<string, unknown>>) {
      const id = String(node.id);
      const earlier = byId.get(id);
      if (!earlier) {
        byId.set(id, { node, file });
        nodes.push(node);
      } else if (node.type === 'tab' || node.z !== undefined || JSON.stringify(node) !== JSON.stringify(earlier.node)) {
        throw new Error(`node id ${id} is in ${earlier.file} and ${file}: only config nodes with the same content may share an id`);
      }
    }
  }
  return nodes;
}

export function seedFlows(flowsDir: string, userDir: string, flowFile = 'flows.json'): SeedResult {
  const target = join(userDir, flowFile);
  if (existsSync(target)) return { seeded: false, tabs: [] };
  const nodes = readExampleFlows(flowsDir);
  writeFileSync(target, `${JSON.stringify(nodes, null, 4)}\n`);
  return { seeded: true, tabs: nodes.filter((n) => n.type === 'tab').map((n) => String(n.label ?? n.id)) };
}
