/**
 * The command node's settings, read and checked, or a sentence saying what is wrong.
 */
import type { AutoRule } from './auto-action';
import { topicTemplateProblem, type DownlinkSettings } from './transports';

export type Transport = 'mqtt' | 'http' | 'downlink';
export const TRANSPORTS: readonly Transport[] = ['mqtt', 'http', 'downlink'];

export interface AutoRuleRow {
  severity?: string;
  reading?: string;
  command?: string;
  args?: string;
  expiresIn?: string | number;
}

export interface CommandProperties {
  transport?: string;
  commandTopic?: string;
  replyTopic?: string;
  downlinkUrl?: string;
  downlinkAuth?: string;
  downlinkOwners?: string;
  signatureHeader?: string;
  timestampHeader?: string;
  signaturePrefix?: string;
  expiresIn?: string | number;
  names?: string;
  maxPerDevice?: string | number;
  autoRules?: AutoRuleRow[];
  autoInterval?: string | number;
  writeBack?: string;
  answerWithin?: string | number;
  persist?: boolean;
}

export interface CommandSettings {
  transport: Transport;
  topics: { command: string; reply: string };
  downlink?: DownlinkSettings & { auth: 'hmac' | 'bearer'; owners: string[] };
  expiresInMs: number;
  maxExpiresInMs: number;
  /** Command names the node carries; empty: any. */
  names: string[];
  maxPerDevice: number;
  autoRules: AutoRule[];
  autoIntervalMs: number;
  /** Writes back tracked until a sink settles them, or sent once. */
  writeBack: 'tracked' | 'once';
  answerWithinMs: number;
  persist: boolean;
}

export const SEVERITIES = ['info', 'warning', 'minor', 'major', 'critical'];
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const HEADER = /^[A-Za-z0-9-]{1,64}$/;
const DAY_MS = 86_400_000;

function seconds(value: string | number | undefined, fallback: number, min: number, max: number, what: string): number | string {
  const n = value === undefined || value === '' ? fallback : Number(value);
  return Number.isFinite(n) && n >= min && n <= max ? n : `${what} must be ${min} to ${max.toLocaleString('en-US')} seconds, not ${String(value)}`;
}

export function readCommandConfig(props: CommandProperties): CommandSettings | { problem: string } {
  const transport = (props.transport || 'mqtt') as Transport;
  if (!TRANSPORTS.includes(transport)) return { problem: `unknown transport "${props.transport}"` };
  const topics = { command: (props.commandTopic || 'devices/{owner}/commands').trim(), reply: (props.replyTopic || 'devices/{owner}/replies').trim() };
  for (const topic of [topics.command, topics.reply]) {
    const problem = topicTemplateProblem(topic);
    if (problem) return { problem: `${problem}: "${topic}"` };
  }
  let downlink: CommandSettings['downlink'];
  if (transport === 'downlink') {
    const url = (props.downlinkUrl ?? '').trim();
    if (!/^https?:\/\/[^/\s]+/i.test(url)) return { problem: `the downlink URL "${url}" is not an http(s) URL` };
    const auth = props.downlinkAuth === 'bearer' ? 'bearer' : 'hmac';
    const signatureHeader = (props.signatureHeader || 'x-signature').trim().toLowerCase();
    const timestampHeader = (props.timestampHeader || 'x-timestamp').trim().toLowerCase();
    if (!HEADER.test(signatureHeader) || !HEADER.test(timestampHeader)) return { problem: 'header names are letters, digits and -' };
    const owners = (props.downlinkOwners ?? '').split(/[\s,]+/).filter((o) => o !== '');
    downlink = { url, auth, owners, signatureHeader, timestampHeader, signaturePrefix: props.signaturePrefix ?? 'sha256=' };
  }
  const expiresIn = seconds(props.expiresIn, 3_600, 1, 30 * 86_400, 'the default expiry');
  if (typeof expiresIn === 'string') return { problem: expiresIn };
  const names = (props.names ?? '').split(/[\s,]+/).filter((n) => n !== '');
  const badName = names.find((n) => !NAME.test(n));
  if (badName) return { problem: `"${badName}" is not a command name` };
  const maxPerDevice = Number(props.maxPerDevice === undefined || props.maxPerDevice === '' ? 100 : props.maxPerDevice);
  if (!(Number.isInteger(maxPerDevice) && maxPerDevice >= 1 && maxPerDevice <= 10_000)) return { problem: `the unfinished commands per device must be a whole number from 1 to 10,000, not ${String(props.maxPerDevice)}` };
  const autoRules: AutoRule[] = [];
  for (const row of props.autoRules ?? []) {
    if (!row || (!row.command && !row.severity)) continue;
    if (!SEVERITIES.includes(row.severity ?? '')) return { problem: `an automatic action's severity must be one of ${SEVERITIES.join(', ')}, not "${String(row.severity)}"` };
    if (!NAME.test(row.command ?? '')) return { problem: `an automatic action's command "${String(row.command)}" is not a command name` };
    let args: unknown = {};
    if (row.args && row.args.trim() !== '') {
      try {
        args = JSON.parse(row.args);
      } catch (err) {
        return { problem: `the arguments of automatic action ${row.command} are not JSON: ${(err as Error).message}` };
      }
    }
    const ruleExpiry = seconds(row.expiresIn, expiresIn, 1, 30 * 86_400, `the expiry of automatic action ${row.command}`);
    if (typeof ruleExpiry === 'string') return { problem: ruleExpiry };
    autoRules.push({ severity: row.severity as string, reading: row.reading?.trim() || undefined, command: row.command as string, args, expiresInMs: ruleExpiry * 1000 });
  }
  const autoInterval = seconds(props.autoInterval, 600, 0, 7 * 86_400, 'the time between automatic commands to one device');
  if (typeof autoInterval === 'string') return { problem: autoInterval };
  const writeBack = props.writeBack ?? 'tracked';
  if (writeBack !== 'tracked' && writeBack !== 'once') return { problem: `unknown choice "${writeBack}" for the writes to Salesforce` };
  const answerWithin = seconds(props.answerWithin, 60, 1, 86_400, "a sink's time to settle a write");
  if (typeof answerWithin === 'string') return { problem: answerWithin };
  return {
    transport,
    topics,
    downlink,
    expiresInMs: expiresIn * 1000,
    maxExpiresInMs: 30 * DAY_MS,
    names,
    maxPerDevice,
    autoRules,
    autoIntervalMs: autoInterval * 1000,
    writeBack,
    answerWithinMs: answerWithin * 1000,
    persist: props.persist !== false,
  };
}
