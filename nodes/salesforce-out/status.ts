/**
 * The output node's status line (the pack's colours, shared/node-status.ts), from the session's
 * state and the record sink's, or from the Web-to posts: green while records are written, yellow
 * while the node retries or holds (saying what and until when), red while it fails (a login
 * refused, calls failing past their retries), grey before the first login.
 *
 * Pure: the time and the translation come in as arguments.
 */
import { formatTimeOfDay } from '../shared/duration';
import { degraded, failing, idle, working, type NodeStatus } from '../shared/node-status';
import type { ClientState } from '../shared/salesforce-client';

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

export interface WebToView {
  /** Posts made today, and whether that is the org's daily cap. */
  submitted: number;
  capped: boolean;
  /** Posts under way (retries included). */
  pending: number;
  trouble: Trouble | undefined;
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
    const retry = state.retryAt ? ` · ${t('status.next-login', { at: formatTimeOfDay(state.retryAt) })}` : '';
    return failing(`${t('status.login-failed')}: ${(state.error ?? '').slice(0, 80)}${retry}`);
  }
  if (state.hold) {
    const released = sink.counts.released > 0 ? ` · ${t('status.in-buffer', { count: sink.counts.released })}` : '';
    return degraded(`${t(`status.hold-${state.hold.reason}`, { until: formatTimeOfDay(state.hold.until) })} · ${tail}${released}`);
  }
  const trouble = troubleStatus(sink.trouble, tail, t);
  if (trouble) return trouble;
  if (state.phase === 'connecting') return degraded(t('status.connecting'));
  if (state.phase === 'idle') return idle(t('status.ready'));
  return working(tail);
}

/** Web-to-Case and Web-to-Lead: what was submitted today, the daily cap, and posts retrying or failing. */
export function webToStatus(view: WebToView, t: Translate): NodeStatus {
  let tail = t(`status.${view.capped ? 'web-to-capped' : 'submitted'}`, { count: view.submitted.toLocaleString('en-US') });
  if (view.pending > 0) tail += ` · ${t('status.sending', { count: view.pending.toLocaleString('en-US') })}`;
  const trouble = troubleStatus(view.trouble, tail, t);
  if (trouble) return trouble;
  // Past the cap, Salesforce queues posts and then drops them: degraded, though each post is answered 200.
  if (view.capped) return degraded(tail);
  if (view.submitted === 0 && view.pending === 0) return idle(tail);
  return working(tail);
}

function troubleStatus(trouble: Trouble | undefined, tail: string, t: Translate): NodeStatus | undefined {
  if (trouble?.kind === 'retrying') return degraded(`${t('status.retrying', { code: trouble.errorCode, at: formatTimeOfDay(trouble.at) })} · ${tail}`);
  if (trouble?.kind === 'failing') return failing(`${t('status.failing', { code: trouble.errorCode })} · ${tail}`);
  return undefined;
}
