/**
 * Runs simulated devices against the pattern flows: one scenario per pattern, a round every
 * 1/rate seconds for the duration, then the bad actors; logs a summary line every interval and
 * keeps, per message, what became of it (acknowledged, refused, resent, never answered). Used by `npm run simulate`, by `npm start -- --simulate`, and by the end-to-end tests
 * (which read the report to know exactly what the flows must have done).
 */
import { DeviceKeys } from './credentials';
import { Random, type DeviceModelOptions } from './devices';
import { DEFAULT_TARGET, scenarioFor, type PatternName, type Scenario, type Sent, type Target } from './scenarios';
import { notNow } from './transport';

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
  /** How often a summary line is logged (default 30 s). */
  summaryEveryMs?: number;
  /** Addresses repeated at the end of every summary line, so that they never scroll away. */
  urls?: Record<string, string | undefined>;
  /** After the rounds, how long messages not yet acknowledged may take (default 30 s). */
  settleMs?: number;
  /** Changes to the devices' physics (DEFAULT_MODEL). */
  model?: Partial<DeviceModelOptions>;
  /**
   * How often a button is pressed and a camera inspects (default 60 s: one press a minute across
   * the buttons, one inspection a minute per camera); 0: every round, as the tests want.
   */
  occasionalMs?: number;
}

export interface Totals {
  sent: number;
  /** A 2xx over HTTP, a PUBACK at QoS 1. */
  acknowledged: number;
  /** An answer that refused it (4xx, a refused connection). */
  refused: number;
  /** Still waiting for the answer. */
  waiting: number;
  /** Given up on: no PUBACK, no answer, or only "not now" answers until the sender gave up. */
  unacknowledged: number;
  /** Sends beyond the first of a message that was not acknowledged at once. */
  resent: number;
  bad: number;
  badAccepted: number;
  readings: number;
  byCode: Record<string, number>;
}

export interface Report {
  sent: Sent[];
  totals: Record<string, Totals>;
}

/** People press an easy button now and then; a camera inspects a few times an hour. */
const OCCASIONAL_MS = 60_000;

/** What an answer that never came is called in Sent.status. */
const NOT_ANSWERED = new Set(['waiting', 'no puback', 'no answer']);

export class Simulation {
  readonly sent: Sent[] = [];
  private stopping = false;
  private scenarios: Scenario[] = [];
  private readonly log: (line: string) => void;
  private readonly giveUp = new AbortController();
  /** Problems since the last summary line, by message. */
  private problems = new Map<string, number>();

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
          signal: this.giveUp.signal,
          model: o.model,
          occasionalEvery: Math.max(1, Math.round((o.occasionalMs ?? OCCASIONAL_MS) / intervalMs)),
        },
        intervalMs,
      ),
    );
    this.scenarios = scenarios;
    await Promise.all(scenarios.map((s) => s.start()));
    const rounds = Number.isFinite(o.duration) ? Math.max(1, Math.round(o.duration * o.rate)) : Infinity;
    const started = Date.now();
    let lastSummary = started;
    // Rounds keep their time while earlier messages still wait for an answer, as devices keep measuring.
    const unsettled = new Set<Promise<void>>();
    try {
      for (let round = 0; round < rounds && !this.stopping; round++) {
        for (const s of scenarios) {
          const step: Promise<void> = s
            .step(round)
            .catch((err: Error) => this.problem(`${s.pattern}: ${err.message}`))
            .finally(() => unsettled.delete(step));
          unsettled.add(step);
        }
        if (Date.now() - lastSummary >= (o.summaryEveryMs ?? 30_000)) {
          lastSummary = Date.now();
          this.log(this.summaryLine());
        }
        const wait = started + (round + 1) * intervalMs - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      await Promise.race([Promise.all(unsettled), new Promise((resolve) => setTimeout(resolve, o.settleMs ?? 30_000).unref())]);
      if (o.bad) for (const s of scenarios) await s.misbehave();
    } finally {
      this.giveUp.abort();
      await Promise.all(scenarios.map((s) => s.stop()));
      await Promise.all(unsettled);
      // Every sender settled its messages when stopped; nothing may stay 'waiting' in a report.
      for (const s of this.sent) if (s.status === 'waiting') s.status = 'no answer';
    }
    return { sent: this.sent, totals: this.totals() };
  }

  totals(): Record<string, Totals> {
    const totals: Record<string, Totals> = {};
    const of = (pattern: string) => (totals[pattern] ??= { sent: 0, acknowledged: 0, refused: 0, waiting: 0, unacknowledged: 0, resent: 0, bad: 0, badAccepted: 0, readings: 0, byCode: {} });
    for (const s of this.sent) {
      const t = of(s.pattern);
      t.sent++;
      if (s.accepted) t.acknowledged++;
      else if (s.status === 'waiting') t.waiting++;
      else if (NOT_ANSWERED.has(String(s.status)) || (typeof s.status === 'number' && notNow(s.status))) t.unacknowledged++;
      else t.refused++;
      if (s.bad) {
        t.bad++;
        if (s.accepted) t.badAccepted++;
      }
      if (s.accepted && !s.bad) t.readings += s.readings?.length ?? 0;
      if (!s.accepted && s.status !== 'waiting') {
        const code = `${s.status ?? ''}${s.code ? ` ${s.code}` : ''}`.trim();
        t.byCode[code] = (t.byCode[code] ?? 0) + 1;
      }
    }
    for (const s of this.scenarios) of(s.pattern).resent += s.resent();
    return totals;
  }

  private problem(message: string): void {
    this.problems.set(message, (this.problems.get(message) ?? 0) + 1);
  }

  /**
   * One line for people: the time, what was sent and what became of it so far (all patterns
   * together, then any pattern with something not acknowledged), the problems since the last
   * line, and the addresses.
   */
  summaryLine(): string {
    const all = Object.entries(this.totals());
    const sum = (key: 'sent' | 'acknowledged' | 'refused' | 'waiting' | 'unacknowledged' | 'resent') => all.reduce((n, [, t]) => n + t[key], 0);
    const counts = [`${sum('sent')} sent`, `${sum('acknowledged')} acknowledged`, `${sum('refused')} refused`];
    if (sum('waiting') > 0) counts.push(`${sum('waiting')} waiting`);
    if (sum('unacknowledged') > 0) counts.push(`${sum('unacknowledged')} unacknowledged`);
    counts.push(`${sum('resent')} resent`);
    const troubled = all.filter(([, t]) => t.refused + t.unacknowledged > 0).map(([pattern, t]) => `${pattern} ${t.refused} refused, ${t.unacknowledged} unacknowledged`);
    const problems = [...this.problems].map(([message, n]) => (n > 1 ? `${message} (${n}×)` : message));
    this.problems = new Map();
    const urls = Object.entries(this.options.urls ?? {}).flatMap(([name, url]) => (url ? [`${name} ${url}`] : []));
    return [new Date().toTimeString().slice(0, 8), counts.join(', '), ...troubled, ...problems, ...urls].join(' · ');
  }
}

/** The totals as a few lines for people. */
export function describeTotals(totals: Record<string, Totals>): string[] {
  return Object.entries(totals).map(([pattern, t]) => {
    const codes = Object.entries(t.byCode)
      .map(([code, n]) => `${n}× ${code}`)
      .join(', ');
    const outcome = [`acknowledged ${t.acknowledged} (${t.readings} readings)`, `refused ${t.refused}`, ...(t.unacknowledged ? [`unacknowledged ${t.unacknowledged}`] : []), `resent ${t.resent}`].join(', ');
    return `${pattern.padEnd(10)} sent ${t.sent}, ${outcome}${codes ? ` (${codes})` : ''}${t.bad ? `; bad actors ${t.bad}, of which accepted ${t.badAccepted}` : ''}`;
  });
}
