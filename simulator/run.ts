/**
 * Runs simulated devices against the pattern flows: one scenario per pattern, a round every
 * 1/rate seconds for the duration, then the bad actors; prints what happens and, at the end,
 * totals. Used by `npm run simulate`, by `npm start -- --simulate`, and by the end-to-end tests
 * (which read the report to know exactly what the flows must have done).
 */
import { DeviceKeys } from './credentials';
import { Random } from './devices';
import { DEFAULT_TARGET, scenarioFor, type PatternName, type Scenario, type Sent, type Target } from './scenarios';

export interface SimulationOptions {
  patterns: readonly PatternName[];
  /** Devices per pattern (buttons, devices, gateways, cameras...). */
  devices: number;
  /** Rounds per second: each device sends one message a round. */
  rate: number;
  /** Seconds of honest traffic; Infinity runs until stop() is called. */
  duration: number;
  bad: boolean;
  seed: number;
  keys: DeviceKeys;
  target?: Target;
  log?: (line: string) => void;
  /** Per pattern, the round at which device i overheats (so that alerts come early). */
  overheatAt?: Record<number, number>;
  silentAt?: Record<number, number>;
}

export interface Totals {
  sent: number;
  accepted: number;
  rejected: number;
  bad: number;
  badAccepted: number;
  readings: number;
  byCode: Record<string, number>;
}

export interface Report {
  sent: Sent[];
  totals: Record<string, Totals>;
}

export class Simulation {
  readonly sent: Sent[] = [];
  private stopping = false;
  private readonly log: (line: string) => void;

  constructor(private readonly options: SimulationOptions) {
    this.log = options.log ?? (() => undefined);
  }

  /** Asks a running simulation to end its rounds (then the bad actors run, if asked for). */
  stop(): void {
    this.stopping = true;
  }

  async run(): Promise<Report> {
    const o = this.options;
    const intervalMs = 1000 / o.rate;
    const scenarios: Scenario[] = o.patterns.map((pattern, i) =>
      scenarioFor(
        pattern,
        {
          devices: o.devices,
          bad: o.bad,
          random: new Random(o.seed + i * 7919),
          keys: o.keys,
          target: o.target ?? DEFAULT_TARGET,
          record: (sent) => this.sent.push(sent),
          log: this.log,
          overheatAt: o.overheatAt,
          silentAt: o.silentAt,
        },
        intervalMs,
      ),
    );
    await Promise.all(scenarios.map((s) => s.start()));
    const rounds = Number.isFinite(o.duration) ? Math.max(1, Math.round(o.duration * o.rate)) : Infinity;
    const started = Date.now();
    let lastProgress = started;
    try {
      for (let round = 0; round < rounds && !this.stopping; round++) {
        await Promise.all(scenarios.map((s) => s.step(round).catch((err: Error) => this.log(`${s.pattern}: round ${round} failed: ${err.message}`))));
        if (Date.now() - lastProgress >= 5_000) {
          lastProgress = Date.now();
          this.log(this.progressLine());
        }
        const wait = started + (round + 1) * intervalMs - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      if (o.bad) for (const s of scenarios) await s.misbehave();
    } finally {
      await Promise.all(scenarios.map((s) => s.stop()));
    }
    return { sent: this.sent, totals: this.totals() };
  }

  totals(): Record<string, Totals> {
    const totals: Record<string, Totals> = {};
    for (const s of this.sent) {
      const t = (totals[s.pattern] ??= { sent: 0, accepted: 0, rejected: 0, bad: 0, badAccepted: 0, readings: 0, byCode: {} });
      t.sent++;
      if (s.accepted) t.accepted++;
      else t.rejected++;
      if (s.bad) {
        t.bad++;
        if (s.accepted) t.badAccepted++;
      }
      if (s.accepted && !s.bad) t.readings += s.readings?.length ?? 0;
      if (!s.accepted) {
        const code = `${s.status ?? ''}${s.code ? ` ${s.code}` : ''}`.trim();
        t.byCode[code] = (t.byCode[code] ?? 0) + 1;
      }
    }
    return totals;
  }

  private progressLine(): string {
    return Object.entries(this.totals())
      .map(([pattern, t]) => `${pattern} ${t.accepted}/${t.sent} accepted`)
      .join(' · ');
  }
}

/** The totals as a few lines for people. */
export function describeTotals(totals: Record<string, Totals>): string[] {
  return Object.entries(totals).map(([pattern, t]) => {
    const codes = Object.entries(t.byCode)
      .map(([code, n]) => `${n}× ${code}`)
      .join(', ');
    return `${pattern.padEnd(10)} sent ${t.sent}, accepted ${t.accepted} (${t.readings} readings), rejected ${t.rejected}${codes ? ` (${codes})` : ''}${t.bad ? `; bad actors ${t.bad}, of which accepted ${t.badAccepted}` : ''}`;
  });
}
