/**
 * The input node's settings, read and checked, or a sentence saying what is wrong.
 */
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
  const channel = (props.channel ?? '').trim();
  const problem = channelProblem(channel);
  if (problem) return { problem };
  const initial = Number(props.replay ?? -1);
  if (initial !== -1 && initial !== -2) return { problem: `the replay option must be -1 (new events only) or -2 (every retained event), not ${String(props.replay)}` };
  const onInvalid = props.onInvalid ?? 'stop';
  if (onInvalid !== 'stop' && onInvalid !== 'all') return { problem: `unknown choice "${onInvalid}" for a replay id that is no longer retained` };
  const processed = props.processed ?? 'settled';
  if (processed !== 'settled' && processed !== 'sent') return { problem: `unknown choice "${processed}" for when an event is processed` };
  const seconds = props.answerWithin === undefined || props.answerWithin === '' ? 60 : Number(props.answerWithin);
  if (!(seconds > 0 && seconds <= 86_400)) return { problem: `the flow's time to settle an event must be 1 to 86,400 seconds, not ${String(props.answerWithin)}` };
  return { channel, initial, onInvalid, processed, answerWithinMs: seconds * 1000, persist: props.persist !== false };
}
