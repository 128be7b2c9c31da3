/**
 * iot-summary: per-device windows of readings (count, min, max, mean, first, last) for sending
 * a CRM summaries instead of every reading. Windows survive redeploys, restarts and crashes:
 * every reading is journalled before the node goes on, and the open windows are snapshotted.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { DeadlineTimer } from '../shared/deadline-timer';
import { savableDevice, StateKeyReader } from '../shared/device';
import { formatTimeOfDay } from '../shared/duration';
import { degraded, idle, StatusLine, working } from '../shared/node-status';
import { NodeState } from '../shared/node-state';
import { badTimestampMessage, messageTime } from '../shared/timestamp';
import { propertyReader, readProperty, type PropertyReader } from '../shared/typed-property';
import { windowConfig, type SummaryProperties } from './node-config';
import { WindowAggregator, type Summary, type WindowsJournalEntry, type WindowsSnapshot } from './windows';

type Send = (msg: Array<NodeMessage | NodeMessage[] | null>) => void;
type Done = (err?: Error) => void;

interface SavedState {
  windows: WindowsSnapshot;
  devices: Record<string, unknown>;
}

const STATUS_EVERY_MS = 1_000;

export = function register(RED: NodeAPI): void {
  function IotSummaryNode(this: Node, def: NodeDef & SummaryProperties): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: 2, catchErrors: def.catchErrors === true, RED };

    let aggregator: WindowAggregator;
    let valueReader: PropertyReader;
    let keys: StateKeyReader;
    try {
      aggregator = new WindowAggregator(windowConfig(def));
      valueReader = propertyReader(RED, node, def.property || 'payload', def.propertyType || 'msg');
      keys = new StateKeyReader(RED, node, def.keyProperty, def.keyPropertyType);
    } catch (err) {
      refuseEveryInput(node, 'iot-summary', (err as Error).message, rejection);
      return;
    }
    const eventTime = def.timeSource === 'message';
    const lastDevice = new Map<string, unknown>();
    let state: NodeState<SavedState, WindowsJournalEntry> | undefined;
    /** Why the state could not be opened at all (then there is no NodeState to ask). */
    let notOpened: string | undefined;
    let summariesSent = 0;
    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);

    // --- restoring -------------------------------------------------------------------------
    let replayed: Summary[] = [];
    const userDir = RED.settings.userDir as string | undefined;
    if (def.persist !== false) {
      const notSaved = (message: string) => {
        node.warn(RED._('iot-summary.errors.not-saved', { message }));
        status.changed();
      };
      if (!userDir) {
        node.warn(RED._('iot-summary.errors.no-user-dir'));
      } else {
        try {
          const opened = NodeState.open<SavedState, WindowsJournalEntry>(userDir, { name: `summary-${node.id}`, current: currentState, onFailure: notSaved, onRecovered: () => status.changed() });
          state = opened.state;
          for (const problem of opened.saved.problems) node.warn(problem);
          for (const [key, device] of Object.entries(opened.saved.snapshot?.devices ?? {})) lastDevice.set(key, device);
          replayed = aggregator.restore(opened.saved.snapshot?.windows, opened.saved.entries);
        } catch (err) {
          notOpened = (err as Error).message;
          notSaved(notOpened);
        }
      }
    }

    // --- summaries out ---------------------------------------------------------------------
    function summaryMessage(summary: Summary): NodeMessage {
      const msg: NodeMessage = {
        _msgid: RED.util.generateId(),
        topic: summary.key,
        payload: summary.readings,
        summary: { id: summary.id, key: summary.key, start: summary.start, end: summary.end, count: summary.count },
      };
      const device = lastDevice.get(summary.key);
      if (device !== undefined) msg.device = RED.util.cloneMessage({ device } as NodeMessage).device;
      return msg;
    }

    function emit(summaries: Summary[], send: Send): void {
      if (summaries.length === 0) return;
      summariesSent += summaries.length;
      send([summaries.map(summaryMessage), null]);
    }

    const timer = new DeadlineTimer(closeDueWindows);

    function closeDueWindows(): void {
      const due = aggregator.closeDue(Date.now());
      if (due.length > 0) state?.journal(...due.map((summary) => ({ k: summary.key, c: summary.start })));
      emit(due, (out) => node.send(out));
      timer.arm(aggregator.nextClose());
      status.now();
    }

    // Windows that ended while Node-RED was down close at start; replayed ones leave again.
    const startup = setImmediate(() => {
      emit(replayed, (out) => node.send(out));
      replayed = [];
      closeDueWindows();
    });

    // --- messages in -----------------------------------------------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      try {
        if (msg.flush !== undefined && msg.flush !== false) {
          const all = aggregator.closeAll();
          if (all.length > 0) state?.journal(...all.map((summary) => ({ k: summary.key, c: summary.start })));
          emit(all, send);
          status.now();
          done();
          return;
        }
        keys.read(
          msg,
          (key) => readProperty(valueReader, msg, (value) => accept(msg, key, value, send, done), (err) => reject(node, msg, 'no_numeric_reading', err.message, send, done, rejection)),
          (problem) => reject(node, msg, problem.code, problem.message, send, done, rejection),
        );
      } catch (err) {
        reject(node, msg, 'internal', (err as Error).message, send, done, rejection);
      }
    });

    function accept(msg: NodeMessage, key: string, raw: unknown, send: Send, done: Done): void {
      const values = aggregator.valuesOf(raw);
      if ('code' in values) {
        reject(node, msg, values.code as string, `${def.propertyType || 'msg'}.${def.property || 'payload'}: ${values.message as string}`, send, done, rejection);
        return;
      }
      const now = Date.now();
      const at = eventTime ? messageTime(msg, now) : now;
      if (Number.isNaN(at)) {
        reject(node, msg, 'bad_timestamp', badTimestampMessage(msg), send, done, rejection);
        return;
      }
      const closed = aggregator.add(key, values, at);
      if (!Array.isArray(closed)) {
        reject(node, msg, closed.code, closed.message, send, done, rejection);
        return;
      }
      state?.journal({ k: key, v: values, t: at });
      const device = savableDevice(msg.device, lastDevice.get(key));
      if (device !== undefined) lastDevice.set(key, device);
      emit(closed, send);
      timer.arm(aggregator.nextClose());
      status.changed();
      done();
    }

    // --- status and saving -----------------------------------------------------------------
    function currentStatus() {
      const windows = aggregator.keyCount;
      if (windows === 0 && summariesSent === 0) return idle(RED._('iot-summary.status.no-readings'));
      const t = (key: string, count: number) => RED._(`iot-summary.status.${key}-${count === 1 ? 'one' : 'many'}`, { count: count.toLocaleString('en-US') });
      const parts = [
        windows === 0 ? RED._('iot-summary.status.no-window') : RED._('iot-summary.status.open', { readings: t('reading', aggregator.pendingReadings), windows: t('window', windows) }),
        t('sent', summariesSent),
      ];
      const next = aggregator.nextClose();
      if (Number.isFinite(next)) parts.push(RED._('iot-summary.status.next', { time: formatTimeOfDay(next) }));
      const unsaved = state ? state.problem : notOpened;
      if (unsaved) return degraded(`${parts.join(' · ')} · ${RED._('iot-summary.status.not-saved')}`);
      return working(parts.join(' · '));
    }
    status.now();

    function currentState(): SavedState {
      return { windows: aggregator.snapshot(), devices: Object.fromEntries(lastDevice) };
    }

    node.on('close', (removed: boolean, done: () => void) => {
      clearImmediate(startup);
      timer.cancel();
      status.stop();
      (state?.close(removed) ?? Promise.resolve()).catch((err: Error) => node.warn(err.message)).finally(done);
    });
  }

  RED.nodes.registerType('iot-summary', IotSummaryNode);
};
