/**
 * iot-threshold: the Node-RED side of the threshold engine. It reads the key, the value and any
 * per-message or per-device thresholds from each message, feeds the engine, turns its events
 * into messages, runs the one timer, keeps the status line, and saves state across restarts.
 * With an iot-redis chosen, the state lives in Redis instead (shared-state.ts), shared by every
 * instance running the same flow, and the deadlines are claimed from there.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { DeadlineTimer } from '../shared/deadline-timer';
import { degraded, failing, idle, StatusLine, working } from '../shared/node-status';
import { deviceOf, savableDevice, StateKeyReader } from '../shared/device';
import { propertyReader, readProperty, type PropertyReader } from '../shared/typed-property';
import { describeAlert, type AlertWording } from './alert-text';
import { applyJournal, ThresholdEngine, type AlertEvent, type EngineSnapshot, type JournalEntry } from './engine';
import { expectedKeyList, readingName, ruleFromProperties, type ThresholdProperties } from './node-config';
import { Thresholds, type RuleConfig } from './rules';
import { NodeState } from '../shared/node-state';
import { connectionProblem, redisService } from '../shared/redis-api';
import { SharedThresholdState } from './shared-state';
import { badTimestampMessage, messageTime } from '../shared/timestamp';

type ThresholdDef = NodeDef & ThresholdProperties;
type Send = (msg: Array<NodeMessage | NodeMessage[] | null>) => void;
type Done = (err?: Error) => void;

/** What is saved for a node: the engine's state and the last device seen per key. */
interface SavedState {
  engine: EngineSnapshot;
  devices: Record<string, unknown>;
}

const STATUS_EVERY_MS = 500;
/** Shared state: how often each instance looks for deadlines due (the resolution of silence and durations). */
const SHARED_DEADLINES_EVERY_MS = 1_000;
const OVERRIDE_CACHE_SIZE = 1000;
const OUTPUT = { raised: 0, cleared: 1, state: 2 } as const;

export = function register(RED: NodeAPI): void {
  function IotThresholdNode(this: Node, def: ThresholdDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const outputs = def.stateOutput ? 4 : 3;
    const rejection = { outputs, catchErrors: def.catchErrors === true, RED };

    let rule: RuleConfig;
    let valueReader: PropertyReader | undefined;
    let keys: StateKeyReader;
    const redis = redisService(RED, def.redis);
    try {
      rule = ruleFromProperties(def);
      if (rule.rule !== 'silence') valueReader = propertyReader(RED, node, def.property || 'payload', def.propertyType || 'msg');
      keys = new StateKeyReader(RED, node, def.keyProperty, def.keyPropertyType);
      // A chosen iot-redis that is gone or invalid must not fall back to state of this instance only.
      if (def.redis && !redis) throw new Error(RED._('iot-threshold.errors.no-redis'));
    } catch (err) {
      refuseEveryInput(node, 'iot-threshold', (err as Error).message, rejection);
      return;
    }

    const reading = readingName(def);
    const field = def.field?.trim() || undefined;
    const wording: AlertWording = { reading, rule: rule.rule, measure: rule.measure, rateUnit: rule.rateUnitMs === 1000 ? '/s' : '/min', unit: def.unit?.trim() };
    // Rates and trends go by when each reading was measured, so that late batches still fit.
    const measuredAt = rule.measure === 'rate' || rule.rule === 'forecast';
    const pending: AlertEvent[] = [];
    const lastDevice = new Map<string, unknown>();
    const overrideCache = new Map<string, Thresholds>();
    let state: NodeState<SavedState, JournalEntry> | undefined;
    /** Why the state could not be opened at all (then there is no NodeState to ask). */
    let notOpened: string | undefined;

    const engine = new ThresholdEngine(
      rule,
      node.id,
      {
        alert: (event) => pending.push(event),
        stateChanged: (key, active, since) => state?.journal({ k: key, a: active, s: Number.isNaN(since) ? null : since }),
      },
      { localTimers: !redis },
    );
    const shared = redis && new SharedThresholdState(redis, node.id, engine, pending);

    // Raised alerts are counted in the text; the colour tells how the node itself is doing.
    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);

    // --- restoring state -------------------------------------------------------------------
    const userDir = RED.settings.userDir as string | undefined;
    // Shared state is kept in Redis: no file of this instance's own.
    if (def.persist !== false && !shared) {
      const notSaved = (message: string) => {
        node.warn(RED._('iot-threshold.errors.not-saved', { message }));
        status.changed();
      };
      if (!userDir) {
        node.warn(RED._('iot-threshold.errors.no-user-dir'));
      } else {
        try {
          const opened = NodeState.open<SavedState, JournalEntry>(userDir, { name: `threshold-${node.id}`, current: currentState, onFailure: notSaved, onRecovered: () => status.changed() });
          state = opened.state;
          for (const problem of opened.saved.problems) node.warn(problem);
          const now = Date.now();
          const snapshot = applyJournal(opened.saved.snapshot?.engine ?? engine.snapshot(now), opened.saved.entries);
          for (const [key, device] of Object.entries(opened.saved.snapshot?.devices ?? {})) lastDevice.set(key, device);
          engine.restore(snapshot, now);
        } catch (err) {
          notOpened = (err as Error).message;
          notSaved(notOpened);
        }
      }
    }
    if (def.startup === 'expect') expectKeys(expectedKeyList(def.expectedKeys), Date.now());
    // Alerts ended by a changed rule are announced once every node of the flow is running.
    const startup = setImmediate(() => {
      deliverUnprompted();
      armTimer();
      status.now();
    });

    // --- messages in -----------------------------------------------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      try {
        if (msg.reset !== undefined && msg.reset !== false) {
          if (shared) resetShared(msg, send, done);
          else {
            resetFrom(msg);
            done();
          }
          return;
        }
        keys.read(
          msg,
          (key) => {
            if (!valueReader) {
              evaluate(msg, key, undefined, send, done);
              return;
            }
            readProperty(valueReader, msg, (value) => evaluate(msg, key, value, send, done), (err) => reject(node, msg, 'missing_value', err.message, send, done, rejection));
          },
          (problem) => reject(node, msg, problem.code, problem.message, send, done, rejection),
        );
      } catch (err) {
        reject(node, msg, 'internal', (err as Error).message, send, done, rejection);
      }
    });

    function evaluate(msg: NodeMessage, key: string, raw: unknown, send: Send, done: Done): void {
      if (field !== undefined && raw !== null && typeof raw === 'object' && !Array.isArray(raw) && !Buffer.isBuffer(raw)) {
        raw = (raw as Record<string, unknown>)[field];
      }
      const now = Date.now();
      let thresholds: Thresholds | undefined;
      let sampleAt = now;
      try {
        thresholds = thresholdsFor(msg);
      } catch (err) {
        // Only msg.threshold is read here: whatever fails in it (a cycle, a BigInt) is a bad threshold.
        reject(node, msg, 'bad_threshold', (err as Error).message, send, done, rejection);
        return;
      }
      if (measuredAt) {
        sampleAt = messageTime(msg, now);
        if (Number.isNaN(sampleAt)) {
          reject(node, msg, 'bad_timestamp', badTimestampMessage(msg), send, done, rejection);
          return;
        }
      }
      if (shared) {
        shared
          .update(
            key,
            now,
            () => engine.read(key, raw, now, sampleAt, thresholds),
            () => (def.stateOutput ? engine.status(key) : undefined),
          )
          .then(
            ({ refused, events, after }) => {
              if (refused) reject(node, msg, refused.code, `${valueName()}: ${refused.message}`, send, done, rejection);
              else readingDone(msg, key, events, after, send, done);
            },
            (err: Error) => reject(node, msg, 'shared_state_unavailable', err.message, send, done, rejection),
          );
        return;
      }
      const error = engine.read(key, raw, now, sampleAt, thresholds);
      if (error) {
        reject(node, msg, error.code, `${valueName()}: ${error.message}`, send, done, rejection);
        return;
      }
      state?.changed();
      readingDone(msg, key, pending.splice(0), def.stateOutput ? engine.status(key) : undefined, send, done);
      if (rule.raise.mode === 'duration' || rule.clear.mode === 'duration' || rule.rule === 'silence') armTimer();
    }

    function readingDone(msg: NodeMessage, key: string, events: AlertEvent[], alertState: unknown, send: Send, done: Done): void {
      const device = savableDevice(msg.device, lastDevice.get(key));
      if (device !== undefined) lastDevice.set(key, device);
      const out = routeEvents(msg, events);
      if (def.stateOutput) {
        msg.alertState = alertState;
        out[OUTPUT.state] = msg;
      }
      if (out.some((o) => o !== null)) send(out);
      status.changed();
      done();
    }

    function valueName(): string {
      const base = `${def.propertyType || 'msg'}.${def.property || 'payload'}`;
      return field ? `${base}.${field}` : base;
    }

    /** Device thresholds (msg.device.meta.thresholds[reading]), then msg.threshold. */
    function thresholdsFor(msg: NodeMessage): Thresholds | undefined {
      const meta = deviceOf(msg)?.meta?.thresholds as Record<string, unknown> | undefined;
      const fromDevice = meta !== null && typeof meta === 'object' ? meta[reading] : undefined;
      const fromMessage = msg.threshold;
      if (fromDevice === undefined && fromMessage === undefined) return undefined;
      const overrides = [fromDevice, fromMessage].filter((o) => o !== undefined);
      const cacheKey = JSON.stringify(overrides);
      let compiled = overrideCache.get(cacheKey);
      if (!compiled) {
        compiled = Thresholds.withOverrides(rule, overrides);
        if (overrideCache.size >= OVERRIDE_CACHE_SIZE) overrideCache.clear();
        overrideCache.set(cacheKey, compiled);
      }
      return compiled;
    }

    /** Shared state: one key is reset in Redis; every key would need every instance's keys, so it is refused. */
    function resetShared(msg: NodeMessage, send: Send, done: Done): void {
      const key = keys.readNow(msg);
      if (key === '' || !shared) {
        reject(node, msg, 'reset_all_not_shared', RED._('iot-threshold.errors.reset-all-shared'), send, done, rejection);
        return;
      }
      const now = Date.now();
      shared.update(key, now, () => engine.reset(now, key), () => undefined).then(
        ({ events }) => {
          lastDevice.delete(key);
          deliverUnprompted(events);
          done();
        },
        (err: Error) => reject(node, msg, 'shared_state_unavailable', err.message, send, done, rejection),
      );
    }

    /** silence rules: keys watched from the start, as if each had reported now. */
    function expectKeys(expected: string[], now: number): void {
      if (!shared) {
        engine.expect(expected, now);
        return;
      }
      // Stored only where no instance has stored the key yet (the engine leaves a key it holds alone).
      for (const key of expected) {
        shared.update(key, now, () => engine.expect([key], now), () => undefined, true).catch((err: Error) => node.warn(err.message));
      }
    }

    function resetFrom(msg: NodeMessage): void {
      const key = keys.readNow(msg);
      engine.reset(Date.now(), key === '' ? undefined : key);
      if (key === '') lastDevice.clear();
      else lastDevice.delete(key);
      state?.changed();
      deliverUnprompted();
    }

    // --- alerts out ------------------------------------------------------------------------
    /** Attaches this reading's alert events to it (and to clones when there are several). */
    function routeEvents(msg: NodeMessage, events: AlertEvent[]): Array<NodeMessage | NodeMessage[] | null> {
      const out: Array<NodeMessage | NodeMessage[] | null> = new Array(outputs).fill(null);
      events.forEach((event, i) => {
        const carrier = i === events.length - 1 ? msg : RED.util.cloneMessage(msg);
        carrier.alert = alertOf(event);
        addTo(out, event.state === 'raised' ? OUTPUT.raised : OUTPUT.cleared, carrier);
      });
      return out;
    }

    /** Alerts that no message brought: timers, resets, a changed rule at start. */
    function deliverUnprompted(events = pending.splice(0)): void {
      if (events.length === 0) return;
      const out: Array<NodeMessage | NodeMessage[] | null> = new Array(outputs).fill(null);
      for (const event of events) {
        const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: event.key, payload: event.value };
        const device = lastDevice.get(event.key);
        if (device !== undefined) msg.device = RED.util.cloneMessage({ device } as NodeMessage).device;
        msg.alert = alertOf(event);
        addTo(out, event.state === 'raised' ? OUTPUT.raised : OUTPUT.cleared, msg);
      }
      node.send(out);
      status.changed();
    }

    function alertOf(event: AlertEvent): Record<string, unknown> {
      const alert: Record<string, unknown> = {
        id: event.id,
        key: event.key,
        reading,
        rule: rule.rule,
        severity: event.severity,
        state: event.state,
        change: event.change,
        value: event.value,
        threshold: event.threshold,
        since: event.since,
        at: event.at,
        text: describeAlert(event, wording),
      };
      if (rule.measure === 'rate') alert.measure = rule.rateUnitMs === 1000 ? 'rate per second' : 'rate per minute';
      if (event.previousSeverity) alert.previousSeverity = event.previousSeverity;
      if (event.reason) alert.reason = event.reason;
      if (event.forecast) alert.forecast = event.forecast;
      if (event.anomaly) alert.anomaly = event.anomaly;
      if (wording.unit) alert.unit = wording.unit;
      return alert;
    }

    // --- the one timer ---------------------------------------------------------------------
    const timer = new DeadlineTimer(() => {
      engine.tick(Date.now());
      state?.changed();
      deliverUnprompted();
      armTimer();
    });

    function armTimer(): void {
      timer.arm(engine.nextDeadline());
    }

    // Shared state: every instance looks for due deadlines; the one that claims a key fires it.
    let sharedProblem: string | undefined;
    let lookingForDeadlines = false;
    const sharedDeadlines =
      shared &&
      setInterval(() => {
        if (lookingForDeadlines || redis?.state !== 'ready') return;
        lookingForDeadlines = true;
        shared
          .fireDue(Date.now())
          .then(
            ({ events, problem }) => {
              deliverUnprompted(events);
              if (problem === undefined) sharedProblem = undefined;
              else {
                if (sharedProblem === undefined) node.warn(RED._('iot-threshold.errors.deadlines-shared', { message: problem }));
                sharedProblem = problem;
              }
            },
            (err: Error) => {
              if (sharedProblem === undefined) node.warn(RED._('iot-threshold.errors.deadlines-shared', { message: err.message }));
              sharedProblem = err.message;
            },
          )
          .finally(() => {
            lookingForDeadlines = false;
            status.changed();
          });
      }, SHARED_DEADLINES_EVERY_MS);
    const unwatchRedis = redis?.onChange(() => status.changed());

    // --- status ----------------------------------------------------------------------------
    function currentStatus() {
      const counts = engine.activeCounts();
      const severities = engine.severities;
      const parts: string[] = [];
      for (let i = severities.length - 1; i >= 0; i--) {
        if (counts[i] > 0) parts.push(`${counts[i]} ${severities[i]}`);
      }
      const keys = `${engine.keyCount.toLocaleString('en-US')} ${engine.keyCount === 1 ? 'key' : 'keys'}`;
      const text = engine.keyCount === 0 ? RED._('iot-threshold.status.no-readings') : `${parts.length > 0 ? parts.join(', ') : RED._('iot-threshold.status.ok')} · ${keys}`;
      // Shared state: the connection comes first (the keys counted are those this instance has seen).
      const redisProblem = redis && connectionProblem(redis);
      if (redisProblem) return redisProblem.fill === 'red' ? failing(`${redisProblem.text} · ${text}`) : degraded(`${redisProblem.text} · ${text}`);
      if (sharedProblem) return degraded(`${RED._('iot-threshold.status.deadlines-shared')} · ${text}`);
      if (engine.keyCount === 0) return idle(text);
      const unsaved = state ? state.problem : notOpened;
      return unsaved ? degraded(`${text} · ${RED._('iot-threshold.status.not-saved')}`) : working(text);
    }

    // --- saving ----------------------------------------------------------------------------
    function currentState(): SavedState {
      return { engine: engine.snapshot(Date.now()), devices: Object.fromEntries(lastDevice) };
    }

    node.on('close', (removed: boolean, done: () => void) => {
      clearImmediate(startup);
      timer.cancel();
      if (sharedDeadlines) clearInterval(sharedDeadlines);
      unwatchRedis?.();
      status.stop();
      (state?.close(removed) ?? Promise.resolve()).catch((err: Error) => node.warn(err.message)).finally(done);
    });
  }

  RED.nodes.registerType('iot-threshold', IotThresholdNode);
};

function addTo(out: Array<NodeMessage | NodeMessage[] | null>, port: number, msg: NodeMessage): void {
  const current = out[port];
  if (current === null) out[port] = msg;
  else if (Array.isArray(current)) current.push(msg);
  else out[port] = [current, msg];
}
