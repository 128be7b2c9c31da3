/**
 * What a command's life writes back to Salesforce: the command record's status and time (an
 * update of IoT_Command__c by its Id), and comments on the Case it came from, or that the alert of
 * an automatic command opened (CaseComment), so that the agent sees what happened and what the
 * system did by itself. And the outbox that keeps each write until a sink (iot-salesforce-out, or
 * an iot-buffer in front of it) settled it, across restarts, so that a crash between a device's
 * answer and the write loses no status. Pure: the time is an argument.
 */
import type { Change, Command, CommandState } from './command-life';

export const STATUS_VALUES: Readonly<Record<CommandState, string>> = {
  queued: 'Queued',
  sent: 'Sent',
  delivered: 'Delivered',
  done: 'Done',
  failed: 'Failed',
  expired: 'Expired',
};

/** Salesforce's date-time format. */
function salesforceTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

/** Result__c holds at most this much (a long text area of 32,768 characters, with room). */
const MAX_RESULT = 32_000;

/** The update of the command record, or undefined for a command that has none. */
export function recordUpdate(command: Command): Record<string, unknown> | undefined {
  if (!command.origin.recordId) return undefined;
  const record: Record<string, unknown> = { Id: command.origin.recordId, Status__c: STATUS_VALUES[command.state], Status_Time__c: salesforceTime(command.at) };
  const result = resultText(command);
  if (result !== undefined) record.Result__c = result;
  return record;
}

function resultText(command: Command): string | undefined {
  const parts: string[] = [];
  if (command.reason) parts.push(command.reason);
  if (command.result !== undefined) parts.push(typeof command.result === 'string' ? command.result : JSON.stringify(command.result));
  if (parts.length === 0) return undefined;
  const text = parts.join(': ');
  return text.length > MAX_RESULT ? `${text.slice(0, MAX_RESULT - 1)}…` : text;
}

/**
 * A Case comment for a change worth telling the agent: a command taken (or refused at once) and
 * a command finished. Sent and delivered are on the command record, not worth a comment each.
 */
export function caseComment(change: Change): Record<string, unknown> | undefined {
  const { command, from } = change;
  if (!command.origin.caseId) return undefined;
  const isNew = from === undefined;
  if (!isNew && !['done', 'failed', 'expired'].includes(command.state)) return undefined;
  return { ParentId: command.origin.caseId, CommentBody: describe(command, isNew) };
}

/** A comment for a command that learned its Case late (an automatic one, once the alert's Case was written). */
export function lateCaseComment(command: Command): Record<string, unknown> | undefined {
  if (!command.origin.caseId) return undefined;
  return { ParentId: command.origin.caseId, CommentBody: describe(command, true) };
}

function describe(command: Command, isNew: boolean): string {
  const who = command.origin.kind === 'automatic' ? 'Automatic action' : 'Command';
  const what = `${who}: ${command.name}${argsText(command.args)} to ${command.device}${command.owner !== command.device ? ` (through ${command.owner})` : ''}`;
  const why = command.origin.because ? `, because ${command.origin.because}` : '';
  const at = new Date(command.at).toISOString();
  const lines = [`${what}${why}.`];
  if (isNew && command.state === 'queued') lines.push(`Queued at ${at}; expires ${new Date(command.expires).toISOString()}.`);
  else lines.push(`${STATUS_VALUES[command.state]} at ${at}${command.reason ? `: ${command.reason}` : ''}.`);
  if (command.result !== undefined && command.state === 'done') lines.push(`Result: ${typeof command.result === 'string' ? command.result : JSON.stringify(command.result)}`.slice(0, 2_000));
  lines.push(`Command id: ${command.id}`);
  return lines.join('\n').slice(0, 4_000);
}

function argsText(args: unknown): string {
  if (args === null || args === undefined || (typeof args === 'object' && Object.keys(args as object).length === 0)) return '';
  return ` ${JSON.stringify(args)}`.slice(0, 200);
}

/** One write to Salesforce, kept until a sink settled it. */
export interface OutboxItem {
  /** Unique per write. */
  id: string;
  kind: 'record' | 'comment';
  commandId: string;
  payload: Record<string, unknown>;
  created: number;
}

/**
 * Writes not yet settled. A newer status of a command record replaces an older one waiting (the
 * record holds the latest state; an older one written after it would undo it); comments are each
 * written.
 */
export class Outbox {
  private readonly items = new Map<string, OutboxItem>();
  private next = 0;

  constructor(private readonly prefix: string) {}

  get size(): number {
    return this.items.size;
  }

  get(id: string): OutboxItem | undefined {
    return this.items.get(id);
  }

  all(): OutboxItem[] {
    return [...this.items.values()];
  }

  /** A new write; returns it and the ids of the writes it replaces. */
  add(kind: OutboxItem['kind'], commandId: string, payload: Record<string, unknown>, now: number): { item: OutboxItem; replaced: string[] } {
    const item: OutboxItem = { id: `${this.prefix}${(this.next++).toString(36)}`, kind, commandId, payload, created: now };
    const replaced = kind === 'record' ? this.drop((other) => other.kind === 'record' && other.commandId === commandId) : [];
    this.items.set(item.id, item);
    return { item, replaced };
  }

  /** A write settled (written, or refused for good): gone. */
  done(id: string): boolean {
    return this.items.delete(id);
  }

  /** Takes an item as journalled (it replaces older record writes of its command, as when added). */
  restore(item: OutboxItem): void {
    if (item.kind === 'record') this.drop((other) => other.kind === 'record' && other.commandId === item.commandId);
    this.items.set(item.id, item);
  }

  /** Drops writes older than `before` (the org refused them for that long): returns them. */
  expire(before: number): OutboxItem[] {
    const old = [...this.items.values()].filter((item) => item.created < before);
    for (const item of old) this.items.delete(item.id);
    return old;
  }

  private drop(match: (item: OutboxItem) => boolean): string[] {
    const dropped: string[] = [];
    for (const [id, item] of this.items) {
      if (!match(item)) continue;
      this.items.delete(id);
      dropped.push(id);
    }
    return dropped;
  }
}
