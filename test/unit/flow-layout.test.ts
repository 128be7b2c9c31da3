/**
 * The example flows read well in the editor (scripts/flow-layout.ts): no node touches another,
 * no wire loops back, crosses another or runs through a node, and a pattern tab has one title
 * comment and one named group per stage, each explained by a comment. The checker itself is
 * tested on small tabs that break each rule.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { estimatedSize, isPatternFlow, layoutProblems, STAGES, type FlowNode } from '../../scripts/flow-layout';

const root = join(__dirname, '..', '..');
const files = readdirSync(join(root, 'flows')).filter((f) => f.endsWith('.json'));

const tab: FlowNode = { id: 't', type: 'tab' };
const node = (id: string, x: number, y: number, wires: string[][] = [], extra: Partial<FlowNode> = {}): FlowNode => ({ id, type: 'function', z: 't', name: id, x, y, wires, ...extra });

describe('the layout checker', () => {
  it('sizes a node as the editor does: at least 100 × 30, wider for a long label, taller for many outputs', () => {
    expect(estimatedSize(node('a', 0, 0))).toEqual({ w: 100, h: 30 });
    expect(estimatedSize(node('a', 0, 0, [[], [], [], [], []], { name: 'open, update or close the Case' })).h).toBe(75);
    expect(estimatedSize({ ...node('a', 0, 0), name: 'open, update or close the Case' }).w).toBeGreaterThanOrEqual(260);
  });

  it.each<[string, FlowNode[], RegExp]>([
    ['two nodes on top of each other', [node('a', 100, 100), node('b', 150, 110)], /"a" and "b" touch/],
    ['a node on the status line of the one above', [node('a', 100, 100), node('b', 100, 140)], /"a" and "b" touch/],
    ['a wire back to the left', [node('a', 300, 100, [['b']]), node('b', 100, 100)], /from "a" to "b" loops back/],
    ['a wire through a node', [node('a', 100, 100, [['c']]), node('b', 300, 100), node('c', 500, 100)], /from "a" to "c" runs through "b"/],
    ['two crossing wires', [node('a', 100, 100, [['d']]), node('b', 100, 200, [['c']]), node('c', 400, 100), node('d', 400, 200)], /"a" → "d" and "b" → "c" cross/],
    ['a wire to a node of another tab', [node('a', 100, 100, [['elsewhere']])], /wired to elsewhere, which is not on the tab/],
  ])('finds %s', (_, nodes, problem) => {
    const problems = layoutProblems([tab, ...nodes]);
    expect(problems.some((p) => problem.test(p)), problems.join('\n')).toBe(true);
  });

  it('lets wires that share an end meet, and a tab laid out left to right pass', () => {
    const nodes = [node('a', 100, 100, [['c', 'd']]), node('b', 100, 200, [['d']]), node('c', 400, 60), node('d', 400, 200)];
    expect(layoutProblems([tab, ...nodes])).toEqual([]);
  });

  it('asks a pattern tab for a title above named stage groups, each with its comment', () => {
    const title: FlowNode = { id: 'title', type: 'comment', z: 't', name: 'Pattern', x: 200, y: 20, wires: [] };
    const note: FlowNode = { id: 'note', type: 'comment', z: 't', name: 'what happens here', g: 'g1', x: 150, y: 100, wires: [] };
    const inGroup = { ...node('a', 150, 160), g: 'g1' };
    const loose = node('b', 500, 160);
    const group: FlowNode = { id: 'g1', type: 'group', z: 't', name: 'somewhere', nodes: ['note', 'a'] };
    const problems = layoutProblems([tab, title, group, note, inGroup, loose], { stages: true });
    expect(problems).toEqual([`"b" is in no stage's group`, `groups named somewhere: a stage is one of ${STAGES.join(', ')}`]);
    expect(layoutProblems([tab, title, { ...group, name: 'ingest' }, note, inGroup], { stages: true })).toEqual([]);
    expect(layoutProblems([tab, { ...title, x: 600, y: 140 }, { ...group, name: 'ingest' }, note, inGroup], { stages: true })).toEqual([`the title comment "Pattern" is not above the groups`]);
  });
});

describe('the example flows, as the editor draws them', () => {
  it.each(files)('%s reads well', (file) => {
    const flow = JSON.parse(readFileSync(join(root, 'flows', file), 'utf8')) as FlowNode[];
    expect(layoutProblems(flow, { stages: isPatternFlow(file) })).toEqual([]);
  });
});
