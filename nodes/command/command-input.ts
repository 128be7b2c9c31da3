/**
 * What comes into iot-command, read and checked: a command (`msg.command` from the flow, a command
 * record created in Salesforce, an IoT_Command__e platform event), an alert (automatic action),
 * and what devices say (replies, by a JSON `id` or MQTT 5 correlation data; coming online; an HTTP
 * device's report or poll). Pure: the time is an argument.
 */
import { checkShape, DEFAULT_PARSE_LIMITS, LimitError, parseJsonWithin } from '../shared/json-limits';
import { readingTime } from '../shared/timestamp';
import type { CommandOrigin, ReplyStatus } from './command-life';
import { REPLY_STATUSES } from './command-life';

/** The Salesforce object an agent creates commands as, and its fields. */
export const COMMAND_OBJECT = 'IoT_Command__c';

/** A command as given, before the registry says who carries it. */
export interface CommandRequest {
  id: string;
  device: string;
  name: string;
  args: unknown;
  expires: number;
  origin: CommandOrigin;
}

export interface InputProblem {
  code: string;
  message: string;
  /** A command record the problem is about: its status is written back as Failed. */
  recordId?: string;
  caseId?: string;
}

export interface CommandDefaults {
  /** Expiry when a command names none. */
  expiresInMs: number;
  /** The longest expiry a command may ask for. */
  maxExpiresInMs: number;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:@~/-]{0,254}$/;
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** Arguments are sent to devices: sized for them. */
const MAX_ARGS_BYTES = 16_384;
const ARG_LIMITS = { maxBytes: MAX_ARGS_BYTES, maxDepth: 8, maxKeys: 256 };
const SALESFORCE_ID = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;

/** A command from the flow: `{ id, device, name, args?, expires? | expiresIn? (s), caseId? }`. */
export function readCommand(value: unknown, now: number, defaults: CommandDefaults, origin: CommandOrigin = { kind: 'flow' }): CommandRequest | InputProblem {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { code: 'bad_command', message: 'msg.command must be an object: { id, device, name, args, expires }' };
  const c = value as Record<string, unknown>;
  const caseId = typeof c.caseId === 'string' && SALESFORCE_ID.test(c.caseId) ? c.caseId : origin.caseId;
  const withCase: CommandOrigin = caseId ? { ...origin, caseId } : origin;
  return checked({ id: c.id, device: c.device, name: c.name, args: c.args, expires: c.expires, expiresIn: c.expiresIn, origin: withCase }, now, defaults);
}

/**
 * A command from what iot-salesforce-in hands on: a command record created (Change Data
 * Capture on /data/IoT_Command__ChangeEvent) or an IoT_Command__e platform event. Changes of a
 * command record after its creation are the pack's own status writes (or an agent's edits): they
 * are `ignore`d.
 */
export function readSalesforceEvent(event: Record<string, unknown>, payload: unknown, now: number, defaults: CommandDefaults): CommandRequest | InputProblem | { ignore: string } {
  const fields = payload !== null && typeof payload === 'object' ? (payload as Record<string, unknown>) : {};
  const text = (name: string): string | undefined => (typeof fields[name] === 'string' && fields[name] !== '' ? (fields[name] as string) : undefined);
  if (event.kind === 'change') {
    if (event.entity !== COMMAND_OBJECT) return { code: 'not_a_command', message: `a change of ${String(event.entity)} is not a command (only ${COMMAND_OBJECT} records are)` };
    if (event.changeType !== 'CREATE') return { ignore: `a ${String(event.changeType)} of a command record` };
    const recordId = Array.isArray(event.recordIds) && typeof event.recordIds[0] === 'string' ? event.recordIds[0] : undefined;
    if (!recordId) return { code: 'bad_command', message: 'the change event names no record' };
    // Made already past New (by an integration that sets the status itself): not for the pack to carry.
    const status = text('Status__c');
    if (status !== undefined && status !== 'New') return { ignore: `a command record created as ${status}` };
    const caseId = text('Case__c');
    const origin: CommandOrigin = caseId ? { kind: 'record', recordId, caseId } : { kind: 'record', recordId };
    const args = parseArguments(text('Arguments__c'));
    if (typeof args === 'object' && args !== null && 'problem' in args) return { code: 'bad_arguments', message: String(args.problem), recordId, caseId };
    const request = checked({ id: recordId, device: text('Device__c'), name: text('Name'), args, expires: text('Expires__c'), origin }, now, defaults);
    return 'code' in request ? { ...request, recordId, caseId } : request;
  }
  if (event.kind === 'platform') {
    const caseId = text('Case__c');
    const origin: CommandOrigin = caseId && SALESFORCE_ID.test(caseId) ? { kind: 'event', caseId } : { kind: 'event' };
    const args = parseArguments(text('Arguments__c'));
    if (typeof args === 'object' && args !== null && 'problem' in args) return { code: 'bad_arguments', message: String(args.problem), caseId: origin.caseId };
    return checked({ id: text('Command_Id__c') ?? event.key, device: text('Device__c'), name: text('Name__c'), args, expires: text('Expires__c'), origin }, now, defaults);
  }
  return { code: 'not_a_command', message: `an event of ${String(event.channel)} is not a command` };
}

/** Arguments__c: JSON text of an object (empty: no arguments). */
function parseArguments(text: string | undefined): unknown {
  if (text === undefined || text.trim() === '') return {};
  try {
    return parseJsonWithin(text, ARG_LIMITS);
  } catch (err) {
    return { problem: `the arguments are not JSON within ${MAX_ARGS_BYTES} bytes: ${(err as Error).message}` };
  }
}

function checked(c: { id: unknown; device: unknown; name: unknown; args: unknown; expires: unknown; expiresIn?: unknown; origin: CommandOrigin }, now: number, defaults: CommandDefaults): CommandRequest | InputProblem {
  if (typeof c.id !== 'string' || !ID.test(c.id)) return { code: 'bad_command', message: 'the command id must be text of 1 to 255 letters, digits and ._:@~/-' };
  if (typeof c.device !== 'string' || c.device === '' || c.device.length > 128) return { code: 'bad_command', message: 'the command names no device' };
  if (typeof c.name !== 'string' || !NAME.test(c.name)) return { code: 'bad_command', message: 'the command name must start with a letter: letters, digits and _.- (at most 64)' };
  const args = c.args === undefined || c.args === null ? {} : c.args;
  const shape = checkShape(args, ARG_LIMITS);
  if (shape) return { code: 'bad_arguments', message: `the arguments: ${shape.message}` };
  let size: number;
  try {
    size = Buffer.byteLength(JSON.stringify(args) ?? '');
  } catch (err) {
    return { code: 'bad_arguments', message: `the arguments cannot be sent as JSON: ${(err as Error).message}` };
  }
  if (size > MAX_ARGS_BYTES) return { code: 'bad_arguments', message: `the arguments are ${size} bytes as JSON, more than ${MAX_ARGS_BYTES}` };
  let expires: number;
  if (c.expires !== undefined && c.expires !== null && c.expires !== '') {
    expires = readingTime(c.expires);
    if (Number.isNaN(expires)) return { code: 'bad_command', message: 'expires must be a time: ms since the epoch, or ISO 8601 with a zone' };
  } else if (c.expiresIn !== undefined) {
    const seconds = Number(c.expiresIn);
    if (!(seconds > 0)) return { code: 'bad_command', message: 'expiresIn must be a positive number of seconds' };
    expires = now + seconds * 1000;
  } else {
    expires = now + defaults.expiresInMs;
  }
  expires = Math.min(expires, now + defaults.maxExpiresInMs);
  return { id: c.id, device: c.device, name: c.name, args, expires, origin: c.origin };
}

export interface Reply {
  id: string;
  status: ReplyStatus;
  result?: unknown;
  reason?: string;
}

/**
 * What a device said about its commands: one reply `{ id, status, result?, reason? }`, several
 * (`{ replies: [...] }` or an array), or none. The id comes from the JSON, else from MQTT 5
 * correlation data. Nothing that is not a reply is an error here: an HTTP device's report carries
 * readings and, perhaps, replies.
 */
export function readReplies(payload: unknown, correlationData?: unknown): Reply[] | InputProblem {
  const list: unknown[] = Array.isArray(payload)
    ? payload
    : payload !== null && typeof payload === 'object' && Array.isArray((payload as { replies?: unknown }).replies)
      ? ((payload as { replies: unknown[] }).replies)
      : payload !== null && typeof payload === 'object' && 'status' in payload
        ? [payload]
        : [];
  const correlated = Buffer.isBuffer(correlationData) ? correlationData.toString('utf8') : typeof correlationData === 'string' ? correlationData : undefined;
  const replies: Reply[] = [];
  for (const item of list.slice(0, 100)) {
    if (item === null || typeof item !== 'object') return { code: 'bad_reply', message: 'a reply is an object { id, status, result?, reason? }' };
    const r = item as Record<string, unknown>;
    const id = typeof r.id === 'string' && r.id !== '' ? r.id : list.length === 1 ? correlated : undefined;
    if (!id || !ID.test(id)) return { code: 'bad_reply', message: 'a reply names no command id (a JSON id, or MQTT 5 correlation data)' };
    if (!REPLY_STATUSES.includes(r.status as ReplyStatus)) return { code: 'bad_reply', message: `a reply's status must be one of ${REPLY_STATUSES.join(', ')}` };
    const reply: Reply = { id, status: r.status as ReplyStatus };
    if (r.result !== undefined) {
      const shape = checkShape(r.result, DEFAULT_PARSE_LIMITS);
      if (shape) return { code: shape instanceof LimitError ? shape.code : 'bad_reply', message: `a reply's result: ${shape.message}` };
      reply.result = r.result;
    }
    if (typeof r.reason === 'string') reply.reason = r.reason.slice(0, 1000);
    replies.push(reply);
  }
  return replies;
}
