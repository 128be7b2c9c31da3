/**
 * The command node's settings, read and checked, or a sentence saying what is wrong.
 */
import type { AutoRule } from './auto-action';
import { listSetting, numberSetting, SettingsError, settingsOrProblem } from '../shared/settings';
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

export function readCommandConfig(props: CommandProperties): CommandSettings | { problem: string } {
  return settingsOrProblem(() => commandSettings(props));
}

function commandSettings(props: CommandProperties): CommandSettings {
  const transport = (props.transport || 'mqtt') as Transport;
  if (!TRANSPORTS.includes(transport)) throw new SettingsError(`unknown transport "${props.transport}"`);
  const topics = { command: (props.commandTopic || 'devices/{owner}/commands').trim(), reply: (props.replyTopic || 'devices/{owner}/replies').trim() };
  for (const topic of [topics.command, topics.reply]) {
    const problem = topicTemplateProblem(topic);
    if (problem) throw new SettingsError(`${problem}: "${topic}"`);
  }
  let downlink: CommandSettings['downlink'];
  if (transport === 'downlink') {
    const url = (props.downlinkUrl ?? '').trim();
    if (!/^https?:\/\/[^/\s]+/i.test(url)) throw new SettingsError(`the downlink URL "${url}" is not an http(s) URL`);
    const auth = props.downlinkAuth === 'bearer' ? 'bearer' : 'hmac';
    const signatureHeader = (props.signatureHeader || 'x-signature').trim().toLowerCase();
    const timestampHeader = (props.timestampHeader || 'x-timestamp').trim().toLowerCase();
    if (!HEADER.test(signatureHeader) || !HEADER.test(timestampHeader)) throw new SettingsError('header names are letters, digits and -');
    const owners = listSetting(props.downlinkOwners);
    downlink = { url, auth, owners, signatureHeader, timestampHeader, signaturePrefix: props.signaturePrefix ?? 'sha256=' };
  }
  const expiresIn = numberSetting(props.expiresIn, 3_600, 'the default expiry (s)', { min: 1, max: 30 * 86_400 });
  const names = listSetting(props.names);
  const badName = names.find((n) => !NAME.test(n));
  if (badName) throw new SettingsError(`"${badName}" is not a command name`);
  const maxPerDevice = numberSetting(props.maxPerDevice, 100, 'the unfinished commands per device', { min: 1, max: 10_000, integer: true });
  const autoRules: AutoRule[] = [];
  for (const row of props.autoRules ?? []) {
    if (!row || (!row.command && !row.severity)) continue;
    if (!SEVERITIES.includes(row.severity ?? '')) throw new SettingsError(`an automatic action's severity must be one of ${SEVERITIES.join(', ')}, not "${String(row.severity)}"`);
    if (!NAME.test(row.command ?? '')) throw new SettingsError(`an automatic action's command "${String(row.command)}" is not a command name`);
    let args: unknown = {};
    if (row.args && row.args.trim() !== '') {
      try {
        args = JSON.parse(row.args);
      } catch (err) {
        throw new SettingsError(`the arguments of automatic action ${row.command} are not JSON: ${(err as Error).message}`);
      }
    }
    const ruleExpiry = numberSetting(row.expiresIn, expiresIn, `the expiry of automatic action ${row.command} (s)`, { min: 1, max: 30 * 86_400 });
    autoRules.push({ severity: row.severity as string, reading: row.reading?.trim() || undefined, command: row.command as string, args, expiresInMs: ruleExpiry * 1000 });
  }
  const autoInterval = numberSetting(props.autoInterval, 600, 'the time between automatic commands to one device (s)', { min: 0, max: 7 * 86_400 });
  const writeBack = props.writeBack ?? 'tracked';
  if (writeBack !== 'tracked' && writeBack !== 'once') throw new SettingsError(`unknown choice "${writeBack}" for the writes to Salesforce`);
  const answerWithin = numberSetting(props.answerWithin, 60, "a sink's time to settle a write (s)", { min: 1, max: 86_400 });
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
