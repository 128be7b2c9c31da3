/**
 * `npm run check:flows`: whether the example flows read well in the editor. A tab is read left to
 * right, so every wire goes forward (none loops back), no two wires cross, no wire runs through a
 * node, and no node touches another or the status line under it. A pattern tab is explained by
 * one title comment above everything, and each stage of the pattern (ingest, authenticate, queue,
 * store, decide, CRM) is a named group holding a one-line comment; groups do not overlap.
 *
 * The geometry is the editor's (Node-RED 4 view.js): a node's x and y are its centre, it is at
 * least 100 × 30 px and as wide as its label needs, its output ports are 13 px apart around its
 * middle, a wire is a cubic Bézier curve from an output port to the input port on the left edge,
 * and a group's box is its nodes' boxes with 26 px around. Node sizes come from the caller: the
 * browser test measures them in the editor, the unit test and this script estimate them from the
 * label's text (as rendered in DejaVu Sans, which is wider than the usual Helvetica or Arial).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  g?: string;
  name?: string;
  x?: number;
  y?: number;
  w?: number;
  h?: number;
  wires?: string[][];
  nodes?: string[];
  [property: string]: unknown;
}

export interface Size {
  w: number;
  h: number;
}

/** The stages of a pattern, in the order a tab shows them: each is a group of that name. */
export const STAGES = ['ingest', 'authenticate', 'queue', 'store', 'decide', 'CRM'] as const;

const NODE_WIDTH = 100;
const NODE_HEIGHT = 30;
const PORT_SPACING = 13;
const CURVE_SCALE = 0.75;
const GROUP_MARGIN = 26;
/** What a node needs free around it: a gap to its neighbours, and its status line below. */
const GAP = 10;
const STATUS_LINE = 20;
/** Nodes with a button beside them: the debug node's on its right, the inject node's on its left. */
const BUTTONS: Readonly<Record<string, 'left' | 'right'>> = { debug: 'right', inject: 'left' };
const BUTTON_WIDTH = 20;

/** The label the editor shows for a node of the pack's example flows: its name, else its type. */
export function labelOf(node: FlowNode): string {
  if (typeof node.name === 'string' && node.name !== '') return node.name;
  if (node.type === 'http in') return `[${String(node.method ?? 'get')}] ${String(node.url ?? '')}`;
  return node.type;
}

/** A label's width in px, a little over what DejaVu Sans at 14 px takes (measured in Chromium). */
export function estimatedTextWidth(text: string): number {
  let width = 0;
  for (const c of text) {
    if (/[ il.,:;|!'fjtrIJ()[\]/\\·-]/.test(c)) width += 5.6;
    else if (/[mwMW@%#]/.test(c)) width += 14;
    else if (/[A-Z0-9<>=+~]/.test(c)) width += 11.8;
    else width += 9;
  }
  return Math.ceil(width);
}

/** The editor's size of a node with this label and these outputs. */
export function estimatedSize(node: FlowNode): Size {
  if (node.type === 'junction') return { w: 10, h: 10 };
  const outputs = node.wires?.length ?? 0;
  const hasInput = !['http in', 'comment', 'catch', 'complete', 'status', 'inject', 'link in', 'iot-mqtt-broker'].includes(node.type);
  return {
    w: Math.max(NODE_WIDTH, 20 * Math.ceil((estimatedTextWidth(labelOf(node)) + 50 + (hasInput ? 7 : 0)) / 20)),
    h: Math.max(NODE_HEIGHT, outputs * 15),
  };
}

interface Rect {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

type Point = [number, number];

interface Placed {
  node: FlowNode;
  size: Size;
  /** The node itself, with its button. */
  box: Rect;
  /** What must stay free of other nodes: the box with its status line and a gap around. */
  room: Rect;
}

interface Wire {
  from: FlowNode;
  port: number;
  to: FlowNode;
  path: Point[];
}

function overlaps(a: Rect, b: Rect): boolean {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

function place(node: FlowNode, size: Size): Placed {
  const x = node.x ?? 0;
  const y = node.y ?? 0;
  const button = BUTTONS[node.type];
  const box: Rect = {
    left: x - size.w / 2 - (button === 'left' ? BUTTON_WIDTH : 0),
    right: x + size.w / 2 + (button === 'right' ? BUTTON_WIDTH : 0),
    top: y - size.h / 2,
    bottom: y + size.h / 2,
  };
  const status = node.type === 'comment' || node.type === 'junction' ? 0 : STATUS_LINE;
  return { node, size, box, room: { left: box.left - GAP / 2, right: box.right + GAP / 2, top: box.top - GAP / 2, bottom: box.bottom + status + GAP / 2 } };
}

/** The editor's curve from an output port to an input port, as points along it. */
export function wirePath(from: Point, to: Point, steps = 24): Point[] {
  const [ox, oy] = from;
  const [dx, dy] = to;
  const distance = Math.hypot(dx - ox, dy - oy);
  const scale = distance < NODE_WIDTH ? CURVE_SCALE - CURVE_SCALE * ((NODE_WIDTH - distance) / NODE_WIDTH) : CURVE_SCALE;
  const c1: Point = [ox + NODE_WIDTH * scale, oy];
  const c2: Point = [dx - NODE_WIDTH * scale, dy];
  const points: Point[] = [];
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    const u = 1 - t;
    points.push([
      u * u * u * ox + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t * t * t * dx,
      u * u * u * oy + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t * t * t * dy,
    ]);
  }
  return points;
}

function segmentsCross(a: Point, b: Point, c: Point, d: Point): boolean {
  const side = (p: Point, q: Point, r: Point) => (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]);
  const d1 = side(c, d, a);
  const d2 = side(c, d, b);
  const d3 = side(a, b, c);
  const d4 = side(a, b, d);
  // Touching counts: two curves crossing exactly at a sampled point meet at the ends of segments.
  if ((d1 === 0 && d2 === 0) || (d3 === 0 && d4 === 0)) return false;
  return d1 * d2 <= 0 && d3 * d4 <= 0;
}

function pathsCross(a: Point[], b: Point[]): boolean {
  for (let i = 1; i < a.length; i++) for (let j = 1; j < b.length; j++) if (segmentsCross(a[i - 1], a[i], b[j - 1], b[j])) return true;
  return false;
}

function pathEnters(path: Point[], r: Rect): boolean {
  // The ends touch their own nodes' edges: only the inside of another node counts.
  return path.some(([x, y]) => x > r.left && x < r.right && y > r.top && y < r.bottom);
}

function describe(node: FlowNode): string {
  return `"${labelOf(node)}"`;
}

/** The group box the editor draws around these nodes. */
export function groupBox(members: Placed[]): Rect {
  return {
    left: Math.min(...members.map((m) => m.box.left)) - GROUP_MARGIN,
    right: Math.max(...members.map((m) => m.box.right)) + GROUP_MARGIN,
    top: Math.min(...members.map((m) => m.box.top)) - GROUP_MARGIN,
    bottom: Math.max(...members.map((m) => m.box.bottom)) + GROUP_MARGIN,
  };
}

export interface LayoutOptions {
  /** Each node's size as the editor draws it (default: estimated from its label). */
  sizeOf?: (node: FlowNode) => Size;
  /** A pattern tab: a title comment and one group per stage, each with its comment. */
  stages?: boolean;
}

/** What makes a tab hard to read, one sentence each; empty when it reads well. */
export function layoutProblems(flow: FlowNode[], options: LayoutOptions = {}): string[] {
  const sizeOf = options.sizeOf ?? estimatedSize;
  const problems: string[] = [];
  const tab = flow.find((n) => n.type === 'tab');
  const onTab = flow.filter((n) => n.z !== undefined && n.z === tab?.id);
  const groups = onTab.filter((n) => n.type === 'group');
  const placed = new Map(onTab.filter((n) => n.type !== 'group').map((n) => [n.id, place(n, sizeOf(n))]));
  const nodes = [...placed.values()];

  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      if (overlaps(nodes[i].room, nodes[j].box) || overlaps(nodes[j].room, nodes[i].box)) problems.push(`${describe(nodes[i].node)} and ${describe(nodes[j].node)} touch`);
    }
  }

  const wires: Wire[] = [];
  for (const { node, size } of nodes) {
    const outputs = node.wires ?? [];
    outputs.forEach((targets, port) => {
      const from: Point = [(node.x ?? 0) + size.w / 2, (node.y ?? 0) - ((outputs.length - 1) / 2) * PORT_SPACING + PORT_SPACING * port];
      for (const id of targets) {
        const target = placed.get(id);
        if (!target) {
          problems.push(`${describe(node)} is wired to ${id}, which is not on the tab`);
          continue;
        }
        const to: Point = [(target.node.x ?? 0) - target.size.w / 2, target.node.y ?? 0];
        if (to[0] <= from[0]) problems.push(`the wire from ${describe(node)} to ${describe(target.node)} loops back`);
        wires.push({ from: node, port, to: target.node, path: wirePath(from, to) });
      }
    });
  }
  for (let i = 0; i < wires.length; i++) {
    const a = wires[i];
    for (const other of nodes) {
      if (other.node === a.from || other.node === a.to) continue;
      if (pathEnters(a.path, other.box)) problems.push(`the wire from ${describe(a.from)} to ${describe(a.to)} runs through ${describe(other.node)}`);
    }
    for (let j = i + 1; j < wires.length; j++) {
      const b = wires[j];
      // Wires that share an end meet there: that is not a crossing.
      if ((a.from === b.from && a.port === b.port) || a.to === b.to) continue;
      if (pathsCross(a.path, b.path)) problems.push(`the wires ${describe(a.from)} → ${describe(a.to)} and ${describe(b.from)} → ${describe(b.to)} cross`);
    }
  }

  if (options.stages) problems.push(...stageProblems(onTab, groups, placed));
  return problems;
}

function stageProblems(onTab: FlowNode[], groups: FlowNode[], placed: Map<string, Placed>): string[] {
  const problems: string[] = [];
  const titles = onTab.filter((n) => n.type === 'comment' && n.g === undefined);
  if (titles.length !== 1) problems.push(`the tab has ${titles.length} title comments outside its groups, not one`);
  const ungrouped = onTab.filter((n) => n.type !== 'group' && n.type !== 'comment' && n.g === undefined);
  for (const n of ungrouped) problems.push(`${describe(n)} is in no stage's group`);
  const names = groups.map((g) => String(g.name ?? ''));
  const unknown = names.filter((name) => !(STAGES as readonly string[]).includes(name));
  if (unknown.length > 0) problems.push(`groups named ${unknown.join(', ')}: a stage is one of ${STAGES.join(', ')}`);
  if (new Set(names).size !== names.length) problems.push(`a stage has more than one group: ${names.join(', ')}`);
  const boxes = new Map<string, Rect>();
  for (const group of groups) {
    const members = onTab.filter((n) => n.g === group.id);
    const listed = new Set(group.nodes ?? []);
    if (members.length !== listed.size || members.some((m) => !listed.has(m.id))) problems.push(`group ${group.name} does not list exactly the nodes that say they are in it`);
    const comments = members.filter((n) => n.type === 'comment');
    if (comments.length !== 1) problems.push(`group ${group.name} has ${comments.length} comments, not one line that says what the stage does`);
    if (members.length === 0) continue;
    boxes.set(String(group.name), groupBox(members.map((m) => placed.get(m.id) as Placed)));
  }
  const entries = [...boxes];
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) if (overlaps(entries[i][1], entries[j][1])) problems.push(`the groups ${entries[i][0]} and ${entries[j][0]} overlap`);
  }
  const title = titles[0] ? placed.get(titles[0].id) : undefined;
  const highest = Math.min(...[...boxes.values()].map((b) => b.top));
  if (title && title.box.bottom > highest) problems.push(`the title comment ${describe(title.node)} is not above the groups`);
  return problems;
}

/** The pattern flows are the files named pattern-*.json. */
export function isPatternFlow(file: string): boolean {
  return /^pattern-.*\.json$/.test(file);
}

function main(): void {
  const dir = resolve(__dirname, '..', '..', 'flows');
  let failed = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const flow = JSON.parse(readFileSync(join(dir, file), 'utf8')) as FlowNode[];
    const problems = layoutProblems(flow, { stages: isPatternFlow(file) });
    if (problems.length > 0) failed++;
    console.log(problems.length === 0 ? `${file}: reads well` : `${file}:\n  ${problems.join('\n  ')}`);
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

if (require.main === module) main();
