/** Small tools for benchmarks: timing, memory, and one line per figure. */

export interface Figure {
  /** What was measured, in words. */
  name: string;
  value: number;
  unit: string;
  /** The goal, when the issue sets one: at least (>=), at most (<=) or below (<) this. */
  goal?: { op: '>=' | '<=' | '<'; value: number };
  /** Further words: a comparison, a ratio. */
  note?: string;
}

export function met(figure: Figure): boolean | undefined {
  if (!figure.goal) return undefined;
  const { op, value } = figure.goal;
  return op === '>=' ? figure.value >= value : op === '<=' ? figure.value <= value : figure.value < value;
}

export function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run the benchmarks with node --expose-gc (npm run bench does)');
  collect();
  collect();
}

/** Heap plus typed-array backing stores, after a full collection. */
export function memoryInUse(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

export function format(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** Runs fn over `count` items and returns items per second. */
export function rate(count: number, fn: () => void): number {
  const started = process.hrtime.bigint();
  fn();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return count / seconds;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
