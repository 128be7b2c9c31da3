/**
 * The faye extension that makes a subscription resume where the flow left off. jsforce's own
 * Replay extension cannot: it puts its one channel's id on every subscribe (so two channels
 * subscribe from the wrong ids), and it replays from the last event *received*, not the last one
 * processed. This one asks, at every subscribe (the first, and each one faye makes again after
 * `403::Unknown client`), where each channel's processed events end. It also watches for the
 * answers that stop faye for good (`advice.reconnect: none`: a token the org no longer accepts), so
 * that the node can renew the token and start a new client.
 */
import type { StreamingExtension } from '../shared/salesforce-client';

export interface ReplayHooks {
  /** The replay option for a channel's subscribe (-1, -2 or a replay id), or undefined to send none. */
  replayFrom(channel: string): number | undefined;
  /** A subscribe is going out with this option (the first, or faye's own after a new handshake). */
  subscribing?(channel: string, from: number): void;
  /** The server will not take this client again (advice reconnect none): `error` says why. */
  refused(error: string): void;
  /** A handshake succeeded: the token works. */
  handshaken?(): void;
}

type Message = Record<string, unknown>;

export function replayExtension(hooks: ReplayHooks): StreamingExtension {
  return {
    outgoing(message: Message, callback: (message: Message) => void): void {
      if (message.channel === '/meta/subscribe' && typeof message.subscription === 'string') {
        const from = hooks.replayFrom(message.subscription);
        if (from !== undefined) {
          const ext = (message.ext ?? {}) as Message;
          message.ext = { ...ext, replay: { [message.subscription]: from } };
          hooks.subscribing?.(message.subscription, from);
        }
      }
      callback(message);
    },
    incoming(message: Message, callback: (message: Message) => void): void {
      const channel = message.channel;
      if (channel === '/meta/handshake' || channel === '/meta/connect') {
        const advice = message.advice as { reconnect?: unknown } | undefined;
        if (message.successful === false && advice?.reconnect === 'none') {
          const ext = message.ext as { sfdc?: { failureReason?: unknown } } | undefined;
          hooks.refused(String(ext?.sfdc?.failureReason ?? message.error ?? 'refused'));
        } else if (channel === '/meta/handshake' && message.successful === true) {
          hooks.handshaken?.();
        }
      }
      callback(message);
    },
  };
}

/** The status code a Bayeux error starts with (`400::...` gives 400; faye's own parse leaves it null). */
export function bayeuxCode(error: { message?: unknown } | string | undefined): number | undefined {
  const text = typeof error === 'string' ? error : String(error?.message ?? '');
  const match = /^(\d{3}):/.exec(text);
  return match ? Number(match[1]) : undefined;
}
