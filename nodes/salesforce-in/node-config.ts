/**
 * The input node's settings, read and checked, or a sentence saying what is wrong.
 */
import { numberSetting, SettingsError, settingsOrProblem } from '../shared/settings';
import { channelProblem } from './stream-event';

export interface InProperties {
  channel?: string;
  /** Where a subscription starts when nothing was processed yet: -1 new events only, -2 every retained one. */
  replay?: string | number;
  /** When the saved position is no longer retained: `stop` (red, until told), `all` (replay every retained event). */
  onInvalid?: string;
  /** When an event counts as processed: `settled` by the flow, or `sent` into it. */
  processed?: string;
  /** Seconds the flow has to settle an event before it is delivered again. */
  answerWithin?: string | number;
  persist?: boolean;
}

export interface InSettings {
  channel: string;
  initial: -1 | -2;
  onInvalid: 'stop' | 'all';
  processed: 'settled' | 'sent';
  answerWithinMs: number;
  persist: boolean;
}

export function readInConfig(props: InProperties): InSettings | { problem: string } {
  return settingsOrProblem(() => inSettings(props));
}

function inSettings(props: InProperties): InSettings {
  const channel = (props.channel ?? '').trim();
  const problem = channelProblem(channel);
  if (problem) throw new SettingsError(problem);
  const initial = Number(props.replay ?? -1);
  if (initial !== -1 && initial !== -2) throw new SettingsError(`the replay option must be -1 (new events only) or -2 (every retained event), not ${String(props.replay)}`);
  const onInvalid = props.onInvalid ?? 'stop';
  if (onInvalid !== 'stop' && onInvalid !== 'all') throw new SettingsError(`unknown choice "${onInvalid}" for a replay id that is no longer retained`);
  const processed = props.processed ?? 'settled';
  if (processed !== 'settled' && processed !== 'sent') throw new SettingsError(`unknown choice "${processed}" for when an event is processed`);
  const seconds = numberSetting(props.answerWithin, 60, "the flow's time to settle an event (s)", { min: 0.001, max: 86_400 });
  return { channel, initial, onInvalid, processed, answerWithinMs: seconds * 1000, persist: props.persist !== false };
}
