/**
 * The output node's status line, from the session's state and the record sink's: green while
 * records are written, yellow while the node retries or holds (saying what and until when), red
 * while it fails (a login refused, calls failing past their retries), grey before the first login.
 *
 * Pure: the time and the translation come in as arguments.
 */
import type { ClientState } from '../shared/salesforce-client';

export interface NodeStatus {
  fill: 'red' | 'green' | 'yellow' | 'grey';
  shape: 'dot' | 'ring';
  text: string;
}

/** What went wrong with the latest calls, as the record sink saw it. */
export type Trouble =
  /** Records wait to be sent again after a passing failure (503, a lost answer, a row lock). */
  | { kind: 'retrying'; errorCode: string; at: number }
  /** Records failed after their last retry, and nothing was written since. */
  | { kind: 'failing'; errorCode: string };

export interface SinkView {
  counts: { written: number; refused: number; failed: number; released: number };
  waiting: number;
  trouble: Trouble | undefined;
}

type Translate = (key: string, values?: Record<string, string | number>) => string;

/** HH:MM:SS, as the status line shows a time. */
export function clockTime(ms: number): string {
  return new Date(ms).toLocaleTimeString('en-GB');
}

export function apiStatus(state: ClientState, sink: SinkView, t: Translate): NodeStatus {
  const n = (value: number) => value.toLocaleString('en-US');
  const counts = [`${n(sink.counts.written)} ${t('status.written')}`];
  if (sink.waiting > 0) counts.push(`${n(sink.waiting)} ${t('status.waiting')}`);
  if (sink.counts.refused > 0) counts.push(`${n(sink.counts.refused)} ${t('status.refused')}`);
  if (sink.counts.failed > 0) counts.push(`${n(sink.counts.failed)} ${t('status.failed')}`);
  if (state.usage) counts.push(`API ${n(state.usage.used)}/${n(state.usage.limit)}`);
  const tail = counts.join(' · ');
  if (state.phase === 'failed') {
    const retry = state.retryAt ? ` · ${t('status.next-login', { at: clockTime(state.retryAt) })}` : '';
    return { fill: 'red', shape: 'ring', text: `${t('status.login-failed')}: ${(state.error ?? '').slice(0, 80)}${retry}` };
  }
  if (state.hold) {
    const released = sink.counts.released > 0 ? ` · ${t('status.in-buffer', { count: sink.counts.released })}` : '';
    return { fill: 'yellow', shape: 'ring', text: `${t(`status.hold-${state.hold.reason}`, { until: clockTime(state.hold.until) })} · ${tail}${released}` };
  }
  const trouble = sink.trouble;
  if (trouble?.kind === 'retrying') return { fill: 'yellow', shape: 'ring', text: `${t('status.retrying', { code: trouble.errorCode, at: clockTime(trouble.at) })} · ${tail}` };
  if (trouble?.kind === 'failing') return { fill: 'red', shape: 'dot', text: `${t('status.failing', { code: trouble.errorCode })} · ${tail}` };
  if (state.phase === 'connecting') return { fill: 'yellow', shape: 'ring', text: t('status.connecting') };
  if (state.phase === 'idle') return { fill: 'grey', shape: 'ring', text: t('status.ready') };
  return { fill: 'green', shape: 'dot', text: tail };
}
