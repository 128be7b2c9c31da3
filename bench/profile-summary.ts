/**
 * Where a process's time went, from a V8 CPU profile (node --cpu-prof): self time by part (the
 * pack's nodes by folder, each dependency, Node-RED, node's core, the garbage collector) and by
 * function, counting only the samples inside a window of the monotonic clock (a run's measured
 * time, without start-up and shutdown). process.hrtime() reads the same clock as the profile.
 */
import { readFileSync } from 'node:fs';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** What part of the process a function belongs to. */
function partOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : 'V8 builtins and natives';
  const pack = /\/nodes\/([^/]+)\//.exec(url);
  if (pack && !url.includes('node_modules')) return `the pack: nodes/${pack[1]}`;
  if (url.includes('/node_modules/@node-red/') || url.includes('/node_modules/node-red/')) return 'Node-RED';
  const dependency = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dependency) return `dependency: ${dependency[1]}`;
  if (url.startsWith('node:')) return "node's core";
  return url;
}

/** Lines of text: busy time, then the top parts and functions by share of it. */
export function summarizeProfile(file: string, window?: { fromUs: number; toUs: number }, top = 25): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byPart = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let at = profile.startTime;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) return;
    const frame = nodes.get(id);
    if (!frame || frame.functionName === '(idle)') return;
    total += delta;
    const part = partOf(frame.url, frame.functionName);
    byPart.set(part, (byPart.get(part) ?? 0) + delta);
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + delta);
  });
  const share = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const ranked = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `busy ${(total / 1e6).toFixed(2)} s${window ? ` in the measured ${((window.toUs - window.fromUs) / 1e6).toFixed(2)} s` : ''}`,
    'by part (self time):',
    ...ranked(byPart).map(([part, us]) => `  ${share(us)}  ${part}`),
    'by function (self time):',
    ...ranked(byFunction).map(([fn, us]) => `  ${share(us)}  ${fn}`),
  ];
}
