/**
 * Records what would end a Node-RED process: unhandled promise rejections and uncaught
 * exceptions (Node 20 exits on either), while a test runs.
 *
 *   const failures = watchProcessFailures();
 *   ...
 *   failures.stop();
 *   expect(failures.seen).toEqual([]);
 */
export interface ProcessFailures {
  /** What was thrown or rejected, as text. */
  readonly seen: string[];
  stop(): void;
}

/** A deep value: `levels` objects each holding the next, as a hostile device would send. */
export function nested(levels: number): Record<string, unknown> {
  const top: Record<string, unknown> = {};
  let at = top;
  for (let i = 1; i < levels; i++) {
    const next: Record<string, unknown> = {};
    at.a = next;
    at = next;
  }
  return top;
}

export function watchProcessFailures(): ProcessFailures {
  const seen: string[] = [];
  const onRejection = (reason: unknown) => seen.push(`unhandled rejection: ${describe(reason)}`);
  const onException = (err: unknown) => seen.push(`uncaught exception: ${describe(err)}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    seen,
    stop: () => {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

/** What was thrown, with where (the first frames of its stack), so that a report points at the code. */
function describe(value: unknown): string {
  if (!(value instanceof Error)) return String(value);
  const frames = (value.stack ?? '').split('\n').filter((line) => line.trim().startsWith('at ')).slice(0, 3).map((line) => line.trim());
  return [`${value.name}: ${value.message}`, ...frames].join(' ');
}
