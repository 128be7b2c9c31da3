/**
 * At most one call of `fn` per `ms`, however often it is asked for: for status lines that would
 * otherwise be redrawn on every message.
 */
export interface Throttled {
  /** Runs fn within ms, once, however many times this is called until then. */
  schedule(): void;
  /** Runs fn now. */
  now(): void;
  cancel(): void;
}

export function throttled(fn: () => void, ms: number): Throttled {
  let timer: NodeJS.Timeout | undefined;
  return {
    schedule() {
      timer ??= setTimeout(() => {
        timer = undefined;
        fn();
      }, ms);
    },
    now() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      fn();
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
