/**
 * iot-salesforce-in: what happens in the org, into the flow. It subscribes to one Streaming API
 * channel (platform events on /event/Name__e, Change Data Capture on /data/XChangeEvent) through
 * jsforce's CometD client on the connection's shared session, and resumes after a restart from the
 * last replay id the flow *processed*: every event goes out with a delivery token
 * (nodes/shared/delivery.ts), and the position moves only over events the flow settled. An event
 * settled once is never handed on again within the retention window (its key is remembered), so
 * at-least-once delivery plus the flow's idempotent handling gives each event one effect.
 *
 * The subscription is made again with backoff (its own: 1 s doubling to 60 s, with jitter) when
 * the transport fails or the org refuses the token (which is renewed through the connection, within
 * its cap). faye handles `403::Unknown client` itself: it handshakes and subscribes again, and the
 * replay extension hands it the processed position.
 */
import { randomBytes } from 'node:crypto';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { backoffMs } from '../shared/backoff';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { DeadlineTimer } from '../shared/deadline-timer';
import { DELIVERY_PROPERTY, settleIfReturned, type DeliverySource, type Outcome } from '../shared/delivery';
import { HeldReceipts } from '../shared/held-receipts';
import { NodeState } from '../shared/node-state';
import type { SalesforceClient, SalesforceConnection, StreamingClient } from '../shared/salesforce-client';
import { throttled } from '../shared/throttle';
import { readInConfig, type InProperties, type InSettings } from './node-config';
import { bayeuxCode, replayExtension } from './replay-extension';
import { ReplayState, type HandledEntry, type ReplaySnapshot } from './replay-state';
import { readStreamEvent, type StreamEventInfo } from './stream-event';

type InDef = NodeDef & InProperties & { connection?: string; catchErrors?: boolean };
type InNode = Node & DeliverySource;
type Send = (msg: Array<NodeMessage | null>) => void;
type Done = (err?: Error) => void;

type Phase = 'starting' | 'connecting' | 'replaying' | 'subscribed' | 'reconnecting' | 'failing';

const OUTPUTS = 2;
const RECONNECT_BASE_MS = 1_000;
const RECONNECT_MAX_MS = 60_000;
/** An event this close to now means the replay has caught up. */
const CAUGHT_UP_MS = 10_000;
/** No event for this long after a replay started: nothing more was waiting. */
const QUIET_MS = 2_000;
/** Handled events are remembered for the org's retention window, and at most this many. */
const REMEMBER_MS = 72 * 3_600_000;
const MAX_REMEMBERED = 200_000;

interface Pending {
  info: StreamEventInfo;
  payload: Record<string, unknown>;
  attempts: number;
}

export = function register(RED: NodeAPI): void {
  function IotSalesforceInNode(this: InNode, def: InDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true, RED };
    const t = (key: string, values?: Record<string, string | number>) => RED._(`iot-salesforce-in.${key}`, values);
    node.settleDelivery = () => undefined;
    const connection = def.connection ? (RED.nodes.getNode(def.connection) as (Node & SalesforceConnection) | null) : null;
    const config = readInConfig(def);
    const client = connection?.client;
    if ('problem' in config || !client || !client.apiAccess) {
      const message = 'problem' in config ? config.problem : connection?.problem ? `the connection is not usable: ${connection.problem}` : client ? 'the connection is set for Web-to forms only: choose how it logs in' : 'no Salesforce connection is selected';
      refuseEveryInput(node, 'iot-salesforce-in', message, rejection, !('problem' in config) && Boolean(connection?.problem));
      return;
    }
    const settings: InSettings = config;
    const session: SalesforceClient = client;
    const replay = new ReplayState({ rememberMs: REMEMBER_MS, maxRemembered: MAX_REMEMBERED });

    // --- the saved position ------------------------------------------------------------------
    let state: NodeState<ReplaySnapshot & { channel: string }, HandledEntry> | undefined;
    const userDir = RED.settings.userDir as string | undefined;
    if (settings.persist) {
      if (!userDir) node.warn(t('errors.no-user-dir'));
      else {
        try {
          const opened = NodeState.open<ReplaySnapshot & { channel: string }, HandledEntry>(userDir, {
            name: `salesforce-in-${node.id}`,
            current: () => ({ channel: settings.channel, ...replay.snapshot(Date.now()) }),
            onFailure: (message) => node.warn(t('errors.not-saved', { message })),
          });
          state = opened.state;
          for (const problem of opened.saved.problems) node.warn(problem);
          // A position on another channel means nothing here: the node was set to a new channel.
          if (!opened.saved.snapshot || opened.saved.snapshot.channel === settings.channel) replay.restore(opened.saved.snapshot, opened.saved.entries);
        } catch (err) {
          node.warn(t('errors.not-saved', { message: (err as Error).message }));
        }
      }
    }

    // --- deliveries to the flow --------------------------------------------------------------
    const receipts = new HeldReceipts(`${randomBytes(4).toString('hex')}.`, settings.answerWithinMs);
    const expiry = new DeadlineTimer(expireReceipts);
    const pending = new Map<string, Pending>();
    let delivered = 0;
    let refusedForGood = 0;
    let lastTimeoutAt = 0;
    node.settleDelivery = (id: string, outcome: Outcome) => {
      receipts.settle(id, outcome);
    };

    function expireReceipts(): void {
      if (receipts.expire(Date.now()) > 0) lastTimeoutAt = Date.now();
      const next = receipts.nextDeadline();
      if (next !== undefined) expiry.arm(next);
      status.schedule();
    }

    function handOn(key: string): void {
      const event = pending.get(key);
      if (!event || closed) return;
      const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: event.info.channel, payload: RED.util.cloneMessage({ payload: event.payload } as NodeMessage).payload, event: { ...event.info } };
      if (settings.processed === 'settled') {
        const [id] = receipts.hold(1, (outcome) => settled(key, outcome), Date.now());
        msg[DELIVERY_PROPERTY] = { source: node.id, id };
        expiry.arm(receipts.nextDeadline() as number);
      }
      event.attempts++;
      node.send([msg, null]);
      if (settings.processed === 'sent') settled(key, { ok: true });
      status.schedule();
    }

    function settled(key: string, outcome: Outcome): void {
      const event = pending.get(key);
      if (!event) return;
      if (!outcome.ok && outcome.retry) {
        // Not processed: handed on again after the flow's wait, or a backoff.
        const wait = outcome.retryAfterMs ?? backoffMs(event.attempts, RECONNECT_BASE_MS, RECONNECT_MAX_MS);
        setTimeout(() => handOn(key), wait).unref();
        status.schedule();
        return;
      }
      if (!outcome.ok) refusedForGood++;
      pending.delete(key);
      const entry = replay.settle(key, Date.now());
      if (entry) state?.journal(entry);
      status.schedule();
    }

    // --- the subscription --------------------------------------------------------------------
    let phase: Phase = 'starting';
    let problem: string | undefined;
    let current: StreamingClient | undefined;
    let attempt = 0;
    let retryAt: number | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let quietTimer: NodeJS.Timeout | undefined;
    let replayingFrom: number | undefined;
    let closed = false;
    /** Where to start without a processed position: the setting, or -2 once a lost position was replaced by every retained event. */
    let initialFrom: -1 | -2 = settings.initial;

    const extension = replayExtension({
      replayFrom: (channel) => (channel === settings.channel ? replay.replayFrom(initialFrom) : undefined),
      subscribing: (_channel, from) => {
        // faye subscribes again after a new handshake: what was in flight comes again from the position.
        replayingFrom = from;
        phase = 'replaying';
        quiet();
        status.schedule();
      },
      refused: (error) => {
        if (closed) return;
        stopClient();
        fail(t('status.token-refused', { error }), false);
        session.renewToken().then(
          () => schedule(),
          (err: Error) => {
            fail(t('status.login-failed', { message: err.message }), false);
            schedule();
          },
        );
      },
      handshaken: () => session.tokenWorked(),
    });

    function quiet(): void {
      if (quietTimer) clearTimeout(quietTimer);
      quietTimer = setTimeout(caughtUp, QUIET_MS);
      quietTimer.unref();
    }

    function caughtUp(): void {
      if (quietTimer) clearTimeout(quietTimer);
      quietTimer = undefined;
      if (phase !== 'replaying') return;
      phase = 'subscribed';
      status.schedule();
    }

    function fail(message: string, logIt = true): void {
      phase = 'failing';
      if (logIt && message !== problem) node.warn(message);
      problem = message;
      status.now();
    }

    function stopClient(): void {
      const client = current;
      current = undefined;
      // What was in flight is replayed by the next subscription, from the processed position.
      replay.dropInFlight();
      pending.clear();
      receipts.releaseAll({ ok: false, retry: true, code: 'closed', reason: 'the subscription is made again' });
      try {
        client?.disconnect();
      } catch {
        // A client that never connected has nothing to disconnect.
      }
    }

    /** The next subscription, after the backoff of the attempts so far. */
    function schedule(): void {
      if (closed || retryTimer) return;
      const wait = backoffMs(++attempt, RECONNECT_BASE_MS, RECONNECT_MAX_MS);
      retryAt = Date.now() + wait;
      if (phase !== 'failing') phase = 'reconnecting';
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        retryAt = undefined;
        void subscribe();
      }, wait);
      status.now();
    }

    async function subscribe(): Promise<void> {
      if (closed) return;
      if (phase !== 'failing') phase = 'connecting';
      status.now();
      let client: StreamingClient;
      try {
        client = await session.streamingClient([extension]);
      } catch (err) {
        fail(t('status.login-failed', { message: (err as Error).message }));
        schedule();
        return;
      }
      if (closed) {
        client.disconnect();
        return;
      }
      current = client;
      client.on('transport:down', () => {
        if (current !== client || closed) return;
        stopClient();
        phase = 'reconnecting';
        problem = t('status.transport-down');
        schedule();
      });
      const subscription = client.subscribe(settings.channel, (data) => receive(client, data));
      subscription.callback(() => {
        if (current !== client) return;
        attempt = 0;
        problem = undefined;
        if (phase !== 'replaying') {
          phase = 'replaying';
          quiet();
        }
        status.now();
      });
      subscription.errback((err: Error) => {
        if (current !== client || closed) return;
        const code = bayeuxCode(err);
        stopClient();
        if (code === 400 && /replayId/i.test(err.message)) {
          if (settings.onInvalid === 'all') {
            node.warn(t('errors.replay-gone-all', { from: String(replay.watermark ?? '') }));
            replay.resetWatermark();
            state?.changed();
            initialFrom = -2;
            schedule();
            return;
          }
          // Falling back to -1 silently would lose every event after the position: stop, red, until told.
          fail(t('status.replay-gone', { from: String(replay.watermark ?? '') }));
          return;
        }
        fail(t('status.subscribe-failed', { message: err.message }));
        schedule();
      });
    }
    function receive(client: StreamingClient, data: Record<string, unknown>): void {
      if (current !== client || closed) return;
      const read = readStreamEvent(settings.channel, data);
      if (typeof read === 'string') {
        const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: settings.channel, payload: data };
        reject(node, msg, 'bad_event', read, (out) => node.send(out), () => undefined, rejection);
        return;
      }
      const { info, payload } = read;
      if (phase === 'replaying') {
        if (info.time !== undefined && Date.now() - info.time < CAUGHT_UP_MS) caughtUp();
        else quiet();
      }
      if (replay.arrive(info.key, info.replayId) !== 'new') return;
      delivered++;
      pending.set(info.key, { info, payload, attempts: 0 });
      handOn(info.key);
    }

    // --- input: settlements wired back, and a new start position ------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      if (settleIfReturned(node, msg)) {
        done();
        return;
      }
      const from = Number(msg.replay);
      if (msg.replay !== undefined && (from === -1 || from === -2)) {
        // An operator's decision: start again from new events (-1) or every retained one (-2).
        stopClient();
        replay.resetWatermark();
        initialFrom = from;
        state?.changed();
        attempt = 0;
        problem = undefined;
        phase = 'connecting';
        if (retryTimer) clearTimeout(retryTimer);
        retryTimer = undefined;
        void subscribe();
        done();
        return;
      }
      reject(node, msg, 'unknown_input', t('errors.unknown-input'), send, done, rejection);
    });

    // --- status ------------------------------------------------------------------------------
    const status = throttled(updateStatus, 500);
    const unsubscribeSession = session.subscribe(() => status.schedule());

    function updateStatus(): void {
      const counts = `${t('status.counts', { delivered: delivered.toLocaleString('en-US'), waiting: receipts.waiting.toLocaleString('en-US') })}${refusedForGood > 0 ? ` · ${t('status.refused', { count: refusedForGood })}` : ''}`;
      const timingOut = Date.now() - lastTimeoutAt < 30_000;
      switch (phase) {
        case 'failing':
          node.status({ fill: 'red', shape: 'ring', text: `${problem ?? t('status.failing')}${retryAt ? ` · ${t('status.retry-at', { time: new Date(retryAt).toISOString().slice(11, 19) })}` : ''}` });
          return;
        case 'reconnecting':
          node.status({ fill: 'yellow', shape: 'ring', text: `${t('status.reconnecting')}${retryAt ? ` ${t('status.retry-at', { time: new Date(retryAt).toISOString().slice(11, 19) })}` : ''}${problem ? ` (${problem})` : ''}` });
          return;
        case 'starting':
        case 'connecting':
          node.status({ fill: 'yellow', shape: 'ring', text: t('status.connecting') });
          return;
        case 'replaying':
          node.status({ fill: 'yellow', shape: 'dot', text: `${t('status.replaying', { from: String(replayingFrom ?? '') })} · ${counts}` });
          return;
        case 'subscribed':
          node.status({ fill: timingOut || state?.problem ? 'yellow' : 'green', shape: 'dot', text: `${t('status.subscribed')} · ${counts}${timingOut ? ` · ${t('status.not-settled')}` : ''}${state?.problem ? ` · ${t('status.not-saved')}` : ''}` });
          if (timingOut) status.schedule();
      }
    }
    status.now();
    void subscribe();

    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      if (quietTimer) clearTimeout(quietTimer);
      expiry.cancel();
      status.cancel();
      unsubscribeSession();
      stopClient();
      (state?.close(removed) ?? Promise.resolve()).catch((err: Error) => node.warn(err.message)).finally(done);
    });
  }

  RED.nodes.registerType('iot-salesforce-in', IotSalesforceInNode);
};
