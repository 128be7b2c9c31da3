/**
 * The life of commands to devices, whatever carries them: queued -> sent -> delivered -> done |
 * failed | expired. Per device, commands are applied in order and one at a time: only the oldest
 * unfinished command of a device (its head) is ever sent, and the next one only once the head is
 * done, failed or expired, because broker queues and retries may reorder what is sent together.
 * A command id is taken once: the same command again (a Salesforce event delivered twice, an
 * alert retried) changes nothing. Finished commands are remembered for a while (7 days by
 * default, longer than Salesforce's 72-hour replay window), so a late duplicate is still known.
 *
 * Pure: the time is an argument; every change comes back as a Change for the caller to journal,
 * send and write back.
 */

export type CommandState = 'queued' | 'sent' | 'delivered' | 'done' | 'failed' | 'expired';
export const COMMAND_STATES: readonly CommandState[] = ['queued', 'sent', 'delivered', 'done', 'failed', 'expired'];
const FINAL: ReadonlySet<CommandState> = new Set(['done', 'failed', 'expired']);

export function isFinal(state: CommandState): boolean {
  return FINAL.has(state);
}

/** Where a command came from, so that its life is written back there. */
export interface CommandOrigin {
  kind: 'record' | 'event' | 'automatic' | 'flow';
  /** The command record (IoT_Command__c) whose status is written back. */
  recordId?: string;
  /** The Case that gets a comment for the command. */
  caseId?: string;
  /** The alert an automatic command acted on (its Case may be learned later). */
  alertId?: string;
  /** Why an automatic command was sent, in words. */
  because?: string;
}

export interface Command {
  id: string;
  device: string;
  /** Who carries it to the device: the device itself, or its owner (a gateway, a vendor cloud, a partner). */
  owner: string;
  name: string;
  args: unknown;
  /** Ms since epoch; not executed after it. */
  expires: number;
  origin: CommandOrigin;
  /** Order of arrival across all devices. */
  seq: number;
  state: CommandState;
  /** When it reached its state. */
  at: number;
  created: number;
  /** Times it was handed to its transport. */
  attempts: number;
  result?: unknown;
  /** Why it failed or expired. */
  reason?: string;
}

export interface Change {
  command: Command;
  /** The state before; undefined for a new command. */
  from?: CommandState;
}

export type NewCommand = Pick<Command, 'id' | 'device' | 'owner' | 'name' | 'args' | 'expires' | 'origin'>;

export interface CommandLifeOptions {
  /** How long a finished command is remembered (duplicates of it are recognised). */
  rememberMs: number;
  /** The most unfinished commands one device may have. */
  maxPerDevice: number;
}

export type ReplyStatus = 'delivered' | 'done' | 'failed' | 'expired';
export const REPLY_STATUSES: readonly ReplyStatus[] = ['delivered', 'done', 'failed', 'expired'];

export type ReplyOutcome =
  | { ok: true; change?: Change }
  /** Nothing changed: the command is finished already (a reply sent again), or the reply says less than is known. */
  | { ok: true; unchanged: true }
  | { ok: false; code: 'unknown_command' | 'not_owner'; message: string };

export class CommandLife {
  private readonly commands = new Map<string, Command>();
  /** Per device, its unfinished commands in order. */
  private readonly queues = new Map<string, Command[]>();
  private nextSeq = 1;

  constructor(private readonly options: CommandLifeOptions) {}

  get(id: string): Command | undefined {
    return this.commands.get(id);
  }

  /** Every command remembered, oldest first. */
  all(): Command[] {
    return [...this.commands.values()];
  }

  /** Unfinished commands, by state. */
  counts(): Record<CommandState, number> {
    const counts = Object.fromEntries(COMMAND_STATES.map((s) => [s, 0])) as Record<CommandState, number>;
    for (const command of this.commands.values()) counts[command.state]++;
    return counts;
  }

  /**
   * Takes a new command, queued behind the device's others. A known id changes nothing
   * (`duplicate`); a device with too many unfinished commands gets this one failed (`queue_full`).
   */
  add(input: NewCommand, now: number): { change: Change } | { duplicate: Command } {
    const known = this.commands.get(input.id);
    if (known) return { duplicate: known };
    const command: Command = { ...input, seq: this.nextSeq++, state: 'queued', at: now, created: now, attempts: 0 };
    this.commands.set(command.id, command);
    if (command.expires <= now) return { change: this.finish(command, 'expired', now, 'it had expired when it came') };
    const queue = this.queues.get(command.device) ?? [];
    if (queue.length >= this.options.maxPerDevice) return { change: this.finish(command, 'failed', now, `the device has ${queue.length} unfinished commands, the most it may have`) };
    queue.push(command);
    this.queues.set(command.device, queue);
    return { change: { command: { ...command } } };
  }

  /** A command that cannot be carried (an unknown device, no owner to carry it): taken, and failed at once. */
  refuse(input: NewCommand, reason: string, now: number): { change: Change } | { duplicate: Command } {
    const known = this.commands.get(input.id);
    if (known) return { duplicate: known };
    const command: Command = { ...input, seq: this.nextSeq++, state: 'queued', at: now, created: now, attempts: 0 };
    this.commands.set(command.id, command);
    return { change: this.finish(command, 'failed', now, reason) };
  }

  /** The device's command that may be sent now: the oldest unfinished one. */
  head(device: string): Command | undefined {
    return this.queues.get(device)?.[0];
  }

  /** Every device's head. */
  heads(): Command[] {
    const heads: Command[] = [];
    for (const queue of this.queues.values()) if (queue.length > 0) heads.push(queue[0]);
    return heads.sort((a, b) => a.seq - b.seq);
  }

  /** Commands waiting behind their device's head. */
  waiting(device: string): number {
    return Math.max(0, (this.queues.get(device)?.length ?? 0) - 1);
  }

  /** The head was handed to its transport (again, when it was sent before and not yet delivered). */
  sent(id: string, now: number): Change | undefined {
    const command = this.commands.get(id);
    if (!command || isFinal(command.state) || this.head(command.device) !== command) return undefined;
    command.attempts++;
    if (command.state !== 'queued') return undefined;
    return this.move(command, 'sent', now);
  }

  /**
   * What the device (or its owner) answered. Only the device itself or the owner that carries its
   * commands may answer for it. A reply about a finished command changes nothing.
   */
  reply(id: string, from: string, status: ReplyStatus, now: number, detail: { result?: unknown; reason?: string } = {}): ReplyOutcome {
    const command = this.commands.get(id);
    if (!command) return { ok: false, code: 'unknown_command', message: `no command ${id} is known (never taken, or finished long ago)` };
    if (from !== command.device && from !== command.owner) return { ok: false, code: 'not_owner', message: `${from} may not answer for ${command.device}: only the device or ${command.owner} may` };
    if (isFinal(command.state)) return { ok: true, unchanged: true };
    if (status === 'delivered') {
      if (command.state === 'delivered') return { ok: true, unchanged: true };
      return { ok: true, change: this.move(command, 'delivered', now) };
    }
    if (detail.result !== undefined) command.result = detail.result;
    return { ok: true, change: this.finish(command, status, now, detail.reason) };
  }

  /** The transport cannot carry a command (its downlink API refused it for good): failed. */
  fail(id: string, reason: string, now: number): Change | undefined {
    const command = this.commands.get(id);
    if (!command || isFinal(command.state)) return undefined;
    return this.finish(command, 'failed', now, reason);
  }

  /** Commands whose time is up: expired (the device refuses them too, by their expiresAt). */
  expire(now: number): Change[] {
    const changes: Change[] = [];
    for (const queue of [...this.queues.values()]) {
      for (const command of [...queue]) if (command.expires <= now) changes.push(this.finish(command, 'expired', now, 'not done before it expired'));
    }
    return changes;
  }

  /** The next time a command expires, or Infinity. */
  nextExpiry(): number {
    let next = Infinity;
    for (const queue of this.queues.values()) for (const command of queue) next = Math.min(next, command.expires);
    return next;
  }

  /** Learns the Case of an alert: automatic commands for it are recorded there. Returns the commands that gained a Case. */
  linkCase(alertId: string, caseId: string): Command[] {
    const linked: Command[] = [];
    for (const command of this.commands.values()) {
      if (command.origin.alertId === alertId && !command.origin.caseId) {
        command.origin = { ...command.origin, caseId };
        linked.push({ ...command });
      }
    }
    return linked;
  }

  /** Forgets finished commands older than the memory. */
  forget(now: number): void {
    const before = now - this.options.rememberMs;
    for (const [id, command] of this.commands) if (isFinal(command.state) && command.at < before) this.commands.delete(id);
  }

  /** Takes a command as journalled: the last record of an id wins. */
  restore(command: Command): void {
    const previous = this.commands.get(command.id);
    if (previous) this.unqueue(previous);
    const copy = { ...command };
    this.commands.set(copy.id, copy);
    this.nextSeq = Math.max(this.nextSeq, copy.seq + 1);
    if (!isFinal(copy.state)) {
      const queue = this.queues.get(copy.device) ?? [];
      queue.push(copy);
      queue.sort((a, b) => a.seq - b.seq);
      this.queues.set(copy.device, queue);
    }
  }

  private move(command: Command, state: CommandState, now: number): Change {
    const from = command.state;
    command.state = state;
    command.at = now;
    return { command: { ...command }, from };
  }

  private finish(command: Command, state: CommandState, now: number, reason?: string): Change {
    if (reason !== undefined) command.reason = reason;
    this.unqueue(command);
    return this.move(command, state, now);
  }

  private unqueue(command: Command): void {
    const queue = this.queues.get(command.device);
    if (!queue) return;
    const at = queue.indexOf(command);
    if (at >= 0) queue.splice(at, 1);
    if (queue.length === 0) this.queues.delete(command.device);
  }
}
