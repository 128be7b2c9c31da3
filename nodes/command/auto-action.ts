/**
 * Automatic action: an alert from iot-threshold that is raised or escalated to a severity a rule
 * names sends that rule's command to the alert's device ("reduce_power" at critical), so that the
 * system acts at once and the agent finds on the Case what it already did. One alert episode at
 * one severity sends a rule's command once (its command id is made from them, so a retried or
 * re-delivered alert is a duplicate), and one device is commanded automatically at most once per
 * interval. Pure: the time is an argument.
 */
import { createHash } from 'node:crypto';

export interface AutoRule {
  /** The severity the alert is raised or escalated to. */
  severity: string;
  /** Only alerts of this reading (empty: any). */
  reading?: string;
  command: string;
  args: unknown;
  /** How long the command may wait for the device. */
  expiresInMs: number;
}

export interface AlertLike {
  id?: unknown;
  key?: unknown;
  state?: unknown;
  change?: unknown;
  severity?: unknown;
  reading?: unknown;
  value?: unknown;
  text?: unknown;
}

export type AutoDecision =
  | { act: true; id: string; rule: AutoRule; because: string }
  /** `duplicate`: this alert at this severity sent its command already (it came again). */
  | { act: false; code?: 'auto_limited' | 'duplicate'; reason: string };

/** Alert changes that act: a new alert, or one that got worse. */
const ACTING_CHANGES = new Set(['raised', 'escalated']);

export class AutoAction {
  /** Per device, when it was last commanded automatically. */
  private readonly last = new Map<string, number>();

  constructor(
    private readonly rules: readonly AutoRule[],
    /** The shortest time between two automatic commands to one device. */
    private readonly minIntervalMs: number,
  ) {}

  get enabled(): boolean {
    return this.rules.length > 0;
  }

  /**
   * Whether (and what) to send for this alert of this device; `known` tells whether a command id
   * was taken already. Records the send: call it once per alert message.
   */
  decide(alert: AlertLike, device: string, now: number, known: (id: string) => boolean): AutoDecision {
    if (alert.state !== 'raised' || !ACTING_CHANGES.has(String(alert.change ?? 'raised'))) return { act: false, reason: 'the alert was not raised or escalated' };
    const rule = this.rules.find((r) => r.severity === alert.severity && (!r.reading || r.reading === alert.reading));
    if (!rule) return { act: false, reason: `no rule for ${String(alert.reading ?? 'a reading')} at ${String(alert.severity)}` };
    const id = `auto-${createHash('sha256').update(`${String(alert.id)}\n${rule.severity}\n${rule.command}\n${device}`).digest('hex').slice(0, 24)}`;
    if (known(id)) return { act: false, code: 'duplicate', reason: `the command for alert ${String(alert.id)} at ${rule.severity} was sent already` };
    const last = this.last.get(device);
    if (last !== undefined && now - last < this.minIntervalMs) {
      return { act: false, code: 'auto_limited', reason: `${device} was commanded automatically ${Math.round((now - last) / 1000)} s ago: at most once every ${Math.round(this.minIntervalMs / 1000)} s` };
    }
    this.last.set(device, now);
    const reading = alert.reading ? `${String(alert.reading)} ` : '';
    const value = alert.value !== undefined ? ` (${String(alert.value)})` : '';
    return { act: true, id, rule, because: `${reading}alert ${String(alert.change ?? 'raised')} to ${String(alert.severity)}${value}` };
  }

  /** What is remembered across restarts: when each device was last commanded automatically. */
  snapshot(): Array<[device: string, at: number]> {
    return [...this.last];
  }

  restore(entries: ReadonlyArray<[string, number]>): void {
    for (const [device, at] of entries) this.last.set(device, Math.max(this.last.get(device) ?? 0, at));
  }

  /** Forgets devices commanded longer ago than the interval. */
  forget(now: number): void {
    for (const [device, at] of this.last) if (now - at >= this.minIntervalMs) this.last.delete(device);
  }
}
