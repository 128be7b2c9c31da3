/**
 * Logging a repeated problem without flooding the log: the first occurrence of a kind is logged
 * at once; repeats within the interval are counted and logged as one line when the interval ends
 * ("... (and 41 more times in the last 60 s)"). Kinds are independent, so a new kind of problem
 * is never hidden behind an old one.
 */

export type LogLine = (text: string) => void;

interface Kind {
  /** When the current interval of this kind started. */
  since: number;
  /** Occurrences since the last line written. */
  repeats: number;
  /** The latest text, shown with the count. */
  latest: string;
  log: LogLine;
}

export class LogSummary {
  private readonly kinds = new Map<string, Kind>();

  constructor(private readonly intervalMs: number) {}

  /** Reports one occurrence of `kind`; `log` writes a line when one is due. */
  report(kind: string, text: string, log: LogLine, now = Date.now()): void {
    const known = this.kinds.get(kind);
    if (!known) {
      this.kinds.set(kind, { since: now, repeats: 0, latest: text, log });
      log(text);
      return;
    }
    known.repeats++;
    known.latest = text;
    known.log = log;
    this.tick(now);
  }

  /** Writes the count of every kind whose interval has ended; call it now and then (a status timer). */
  tick(now = Date.now()): void {
    for (const [kind, state] of this.kinds) {
      if (now - state.since < this.intervalMs) continue;
      if (state.repeats === 0) {
        // Quiet for a whole interval: the next occurrence is logged at once again.
        this.kinds.delete(kind);
        continue;
      }
      writeCount(state, now);
      state.since = now;
      state.repeats = 0;
    }
  }

  /** Writes what is counted and not yet written (at close), and forgets every kind. */
  flush(now = Date.now()): void {
    for (const state of this.kinds.values()) if (state.repeats > 0) writeCount(state, now);
    this.kinds.clear();
  }
}

function writeCount(state: Kind, now: number): void {
  const times = state.repeats === 1 ? 'time' : 'times';
  const seconds = Math.max(1, Math.round((now - state.since) / 1000));
  state.log(`${state.latest} (and ${state.repeats.toLocaleString('en-US')} more ${times} in the last ${seconds} s)`);
}
