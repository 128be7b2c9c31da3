/**
 * iot-timeseries-out: the Node-RED side of the time-series writer. It reads the mapped parts of
 * each message, turns them into points, hands them to its batcher, and finishes each message
 * (done, settling its buffer delivery, or the error output) once every point of it is written or
 * has failed for good. It keeps the status line and logs each kind of failure once a minute.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import type { StoreConfigNode } from '../influxdb/store-writer';
import { CapacityAnnouncer } from '../shared/capacity';
import { reject } from '../shared/coded-error';
import { DELIVERY_PROPERTY, settleDelivery, type DeliveryToken } from '../shared/delivery';
import { deviceOf } from '../shared/device';
import { formatTimeOfDay } from '../shared/duration';
import { takeOutTooDeep } from '../shared/json-limits';
import { LogSummary } from '../shared/log-summary';
import { degraded, failing, idle, StatusLine, working } from '../shared/node-status';
import { propertyReader, type PropertyReader } from '../shared/typed-property';
import { Batcher } from './batcher';
import { PointMapper, type Mapped, type MessageParts, type Rejection } from './mapping';
import { batcherOptions, DEFAULTS, mappingOptions, tagRows, type TimeseriesProperties } from './node-config';
import type { Failure } from './write-outcome';
import { WrittenRate } from './written-rate';

type TimeseriesDef = NodeDef & TimeseriesProperties & { wires?: string[][] };
type Send = (msg: Array<NodeMessage | null>) => void;
type Done = (err?: Error) => void;

/** One message on its way: finished when none of its points is outstanding. */
interface Tracker {
  msg: NodeMessage;
  done: Done;
  remaining: number;
  rejections: Rejection[] | undefined;
  /** Whether everything refused could be written by a later attempt. */
  retryable: boolean;
}

/** Written, and not written (the error output). */
const OUTPUTS = 2;
const STATUS_EVERY_MS = 1000;
const LOG_INTERVAL_MS = 60_000;
const CLOSE_DEADLINE_MS = 8000;
/** One outcome object for every written message (settled at high rates). */
const DELIVERED = { ok: true } as const;
/** How long a past error stays in the status line. */
const LAST_ERROR_SHOWN_MS = 5 * 60_000;
/** The rate in the status is taken over this many status periods (seconds). */
const RATE_PERIODS = 5;

export = function register(RED: NodeAPI): void {
  function IotTimeseriesOutNode(this: Node, def: TimeseriesDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true, RED };
    const t = (key: string, values?: Record<string, string | number>) => RED._(`iot-timeseries-out.${key}`, values);

    const config = RED.nodes.getNode(def.store ?? '') as StoreConfigNode | null;
    const store = config?.store;
    let problem = !config ? t('errors.no-store') : config.problem;
    let mapper: PointMapper | undefined;
    let batcher: Batcher<Tracker> | undefined;
    let tagReaders: Array<{ name: string; reader: PropertyReader }> = [];
    let readingsReader: PropertyReader | undefined;
    let measurementReader: PropertyReader | undefined;
    let timeReader: PropertyReader | undefined;
    let maxPending = 0;
    /** Points in the requests in flight when all are full: what a source may usefully hand on. */
    let heldAtOnce = 0;
    if (store && !problem) {
      try {
        mapper = new PointMapper(mappingOptions(def, store.precision));
        const options = batcherOptions(def);
        maxPending = options.maxPending;
        heldAtOnce = Math.min(options.batchSize * options.maxInFlight, options.maxPending);
        batcher = new Batcher<Tracker>(options, (body, signal) => store.write(body, signal), { written, failed, retrying });
        readingsReader = propertyReader(RED, node, def.readings || 'payload', def.readingsType || 'msg');
        if (def.measurementType && def.measurementType !== 'str') measurementReader = propertyReader(RED, node, def.measurement ?? '', def.measurementType);
        if (def.timeType && def.timeType !== 'field' && def.timeType !== 'arrival') timeReader = propertyReader(RED, node, def.time ?? '', def.timeType);
        tagReaders = tagRows(def.tags).map((row) => ({ name: row.name, reader: propertyReader(RED, node, row.value, row.type) }));
      } catch (err) {
        problem = (err as Error).message;
      }
    }
    if (problem || !store || !batcher || !mapper) {
      const reason = problem ?? t('errors.no-store');
      // The status has room for the gist: what comes before the explanation.
      node.status(failing(t('status.invalid-config', { problem: reason.split(':')[0] })));
      node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
        settleDelivery(RED, msg, { ok: false, retry: true, reason });
        msg.rejected = [{ code: 'invalid_config', message: reason }];
        reject(node, msg, 'invalid_config', reason, send, done, rejection);
      });
      return;
    }
    const points = batcher;
    const toPoints = mapper;
    const where = store.describe();
    const measurement = def.measurementType && def.measurementType !== 'str' ? undefined : def.measurement || DEFAULTS.measurement;
    const messageTimeFromMsg = !def.timeType || def.timeType === 'field';
    const arrivalTime = def.timeType === 'arrival';
    const anyAsync = [readingsReader, measurementReader, timeReader, ...tagReaders.map((tag) => tag.reader)].some((reader) => reader?.async);
    const log = new LogSummary(LOG_INTERVAL_MS);
    const capacity = new CapacityAnnouncer(RED, node.id);
    /** Points per message lately (a gateway batch holds many): the capacity is told in messages. */
    let pointsPerMessage = 1;
    // Sending costs even when nothing listens: written messages go out only when the output is wired.
    const writtenOutputWired = (def.wires?.[0]?.length ?? 0) > 0;
    let received = false;
    let writtenSinceStatus = 0;
    let retryReason: string | undefined;
    let unauthorized = false;
    let backlogFull = false;
    let lastError: { code: string; at: number } | undefined;

    // --- messages in -----------------------------------------------------------------------
    // Every message in flight is held until written; the less each one allocates on the way in,
    // the less the garbage collector copies. The synchronous path reuses one parts object and one
    // result, which map() only reads while it runs.
    const scratchParts: MessageParts = { measurement, readings: undefined, tags: [], time: undefined, points: undefined };
    const scratchMapped: Mapped = { lines: [], rejections: [] };
    // Messages leave through node.send, so that a waiting message does not also keep its send
    // function alive (it is the same as the one Node-RED passes in).
    const sendOut: Send = (out) => node.send(out);

    node.on('input', (msg: NodeMessage, _send: Send, done: Done) => {
      // A message too deep for Node-RED to copy would end the process where it is passed on.
      const tooDeep = takeOutTooDeep(msg);
      if (tooDeep !== undefined) {
        refuse(msg, 'too_deep', tooDeep, done);
        return;
      }
      if (!anyAsync) {
        let parts: MessageParts;
        try {
          parts = fillParts(scratchParts, msg, readNow);
        } catch (err) {
          refuse(msg, 'bad_property', (err as Error).message, done);
          return;
        }
        accept(msg, parts, done);
        return;
      }
      const reads: Array<Promise<unknown>> = [];
      const slots = new Map<PropertyReader, number>();
      try {
        fillParts(newParts(), msg, (reader) => {
          slots.set(reader, reads.push(Promise.resolve(reader.read(msg))) - 1);
          return undefined;
        });
      } catch (err) {
        refuse(msg, 'bad_property', (err as Error).message, done);
        return;
      }
      Promise.all(reads)
        .then((values) => fillParts(newParts(), msg, (reader) => values[slots.get(reader) as number]))
        .then(
          (parts) => accept(msg, parts, done),
          (err: Error) => refuse(msg, 'bad_property', err.message, done),
        )
        .catch((err: Error) => log.report('not_passed_on', t('log.not-passed-on', { message: err.message }), (text) => node.error(text)));
    });

    function readNow(reader: PropertyReader, msg: NodeMessage): unknown {
      return reader.read(msg);
    }

    function newParts(): MessageParts {
      return { measurement, readings: undefined, tags: [], time: undefined, points: undefined };
    }

    /** Fills `parts` from a message, with `value` answering for each typed input. */
    function fillParts(parts: MessageParts, msg: NodeMessage, value: (reader: PropertyReader, msg: NodeMessage) => unknown): MessageParts {
      // The same tags every time, in the same places: overwritten, never emptied and refilled.
      const tags = parts.tags;
      let at = 0;
      if (def.deviceTag !== false || def.gatewayTag !== false) {
        const device = deviceOf(msg);
        if (def.deviceTag !== false) {
          tags[at++] = 'device';
          tags[at++] = device?.id;
        }
        if (def.gatewayTag !== false) {
          tags[at++] = 'gateway';
          tags[at++] = device?.gateway;
        }
      }
      if (def.topicTag) {
        tags[at++] = 'topic';
        tags[at++] = msg.topic;
      }
      for (const tag of tagReaders) {
        tags[at++] = tag.name;
        tags[at++] = value(tag.reader, msg);
      }
      if (measurementReader) parts.measurement = value(measurementReader, msg);
      parts.readings = value(readingsReader as PropertyReader, msg);
      parts.time = timeReader ? value(timeReader, msg) : messageTimeFromMsg ? msg.timestamp : undefined;
      parts.points = msg.points;
      return parts;
    }

    function accept(msg: NodeMessage, parts: MessageParts, done: Done): void {
      received = true;
      // The time a message arrived stands in for a missing time only when nothing can deliver it
      // again: a queue's redelivery would become a second point at another time.
      const arrival = arrivalTime || msg[DELIVERY_PROPERTY] === undefined ? Date.now() : undefined;
      const mapped = toPoints.map(parts, arrival, parts === scratchParts ? scratchMapped : undefined);
      const tracker: Tracker = {
        msg,
        done,
        remaining: mapped.lines.length,
        rejections: mapped.rejections.length > 0 ? mapped.rejections.slice() : undefined,
        retryable: mapped.rejections.length === 0,
      };
      if (mapped.lines.length === 0) {
        finish(tracker);
        return;
      }
      if (mapped.lines.length > maxPending) {
        // More points than the node ever holds: no later delivery can do better.
        tracker.remaining = 0;
        addFailure(tracker, { code: 'too_large', message: t('errors.too-many-points', { points: mapped.lines.length, max: maxPending }), retry: false });
        finish(tracker);
        return;
      }
      const token = msg[DELIVERY_PROPERTY] as DeliveryToken | undefined;
      if (token !== undefined) {
        // The source learns how many messages fill the requests in flight, as they now run.
        pointsPerMessage += (mapped.lines.length - pointsPerMessage) / 64;
        capacity.tell(msg, Math.max(1, Math.floor(heldAtOnce / pointsPerMessage)));
      }
      if (!points.add(mapped.lines, tracker)) {
        backlogFull = true;
        tracker.remaining = 0;
        const failure: Failure = { code: 'backlog_full', message: t('errors.backlog-full', { points: mapped.lines.length, pending: points.pending }), retry: true };
        addFailure(tracker, failure);
        noteFailure(failure, mapped.lines.length);
        finish(tracker);
        return;
      }
      // The source had nothing more right after this one: no reason to linger.
      if (token?.last === true) points.flush();
    }

    function refuse(msg: NodeMessage, code: string, message: string, done: Done): void {
      finish({ msg, done, remaining: 0, rejections: [{ code, message }], retryable: false });
    }

    // --- messages out ----------------------------------------------------------------------
    function finish(tracker: Tracker): void {
      // Runs from the database's answers: nothing it throws may escape as an unhandled rejection.
      try {
        passOn(tracker);
      } catch (err) {
        log.report('not_passed_on', t('log.not-passed-on', { message: (err as Error).message }), (text) => node.error(text));
      }
    }

    function passOn(tracker: Tracker): void {
      const { msg, rejections } = tracker;
      if (!rejections) {
        settleDelivery(RED, msg, DELIVERED);
        if (writtenOutputWired) node.send([msg, null]);
        tracker.done();
        return;
      }
      const first = rejections[0];
      const message = rejections.length === 1 ? first.message : t('errors.several', { count: rejections.length, first: first.message });
      const retryAfterMs = tracker.retryable ? Math.max(STATUS_EVERY_MS, points.retryAt - Date.now()) : undefined;
      settleDelivery(RED, msg, tracker.retryable ? { ok: false, retry: true, reason: message, retryAfterMs } : { ok: false, retry: false, reason: message });
      msg.rejected = rejections;
      reject(node, msg, first.code, message, sendOut, tracker.done, rejection);
    }

    function addFailure(tracker: Tracker, failure: Failure, line?: string): void {
      const entry: Rejection = { code: failure.code, message: failure.message };
      if (line !== undefined) entry.line = line;
      if (tracker.rejections) tracker.rejections.push(entry);
      else tracker.rejections = [entry];
      if (!failure.retry) tracker.retryable = false;
    }

    // --- the batcher's news ----------------------------------------------------------------
    function written(owners: readonly Tracker[]): void {
      writtenSinceStatus += owners.length;
      retryReason = undefined;
      unauthorized = false;
      for (const tracker of owners) if (--tracker.remaining === 0) finish(tracker);
    }

    function failed(owners: readonly Tracker[], lines: readonly string[], failure: Failure): void {
      if (failure.code === 'unauthorized') unauthorized = true;
      noteFailure(failure, owners.length);
      for (let i = 0; i < owners.length; i++) {
        const tracker = owners[i];
        addFailure(tracker, failure, lines[i]);
        if (--tracker.remaining === 0) finish(tracker);
      }
    }

    function retrying(reason: string, delayMs: number): void {
      retryReason = reason;
      lastError = { code: 'retrying', at: Date.now() };
      log.report('retrying', t('log.retrying', { store: where, reason, seconds: Math.round(delayMs / 100) / 10, pending: points.pending }), (text) => node.warn(text));
      status.now();
    }

    function noteFailure(failure: Failure, count: number): void {
      lastError = { code: failure.code, at: Date.now() };
      log.report(failure.code, t('log.failed', { count, code: failure.code, store: where, message: failure.message }), (text) => node.error(text));
    }

    // --- status ----------------------------------------------------------------------------
    let statusAt = Date.now();
    /** Points written in each of the last few status periods, and how long each was. */
    const recent = new WrittenRate(RATE_PERIODS);
    // Drawn every period (the rate is taken then) and at once when a retry starts.
    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);

    function currentStatus() {
      // Until the first message, the status keeps saying where points will go.
      if (!received) return undefined;
      const now = Date.now();
      recent.add(writtenSinceStatus, now - statusAt);
      writtenSinceStatus = 0;
      statusAt = now;
      const pending = points.pending;
      const counts = { rate: recent.text(), pending: pending.toLocaleString('en-US') };
      const full = backlogFull;
      backlogFull = false;
      if (unauthorized) return failing(t('status.unauthorized', counts));
      if (full) return failing(t('status.backlog-full', counts));
      if (retryReason) {
        const seconds = Math.max(0, Math.ceil((points.retryAt - now) / 1000));
        return degraded(t('status.retrying', { ...counts, seconds, reason: retryReason.slice(0, 60) }));
      }
      // Points waiting for an answer while none came back lately: writing, not "0 pts/s".
      let text = recent.none() && pending > 0 ? t('status.writing', counts) : t('status.ok', counts);
      if (lastError && now - lastError.at < LAST_ERROR_SHOWN_MS) text += t('status.last-error', { code: lastError.code, time: formatTimeOfDay(lastError.at) });
      return working(text);
    }

    node.status(idle(t('status.waiting', { store: where })));
    const statusTimer = setInterval(() => {
      status.now();
      log.tick();
    }, STATUS_EVERY_MS);

    node.on('close', (_removed: boolean, done: () => void) => {
      clearInterval(statusTimer);
      status.stop();
      capacity.close();
      points.close(CLOSE_DEADLINE_MS).finally(() => {
        log.flush();
        done();
      });
    });
  }

  RED.nodes.registerType('iot-timeseries-out', IotTimeseriesOutNode);
};
