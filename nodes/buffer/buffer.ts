/**
 * iot-buffer: the Node-RED side of the durable queue. It parses the configuration, opens the
 * store (local log or Redis Streams), turns messages into stored bodies and back, recognises
 * acknowledgements and control messages on its input, delivers with the delivery token, sends
 * dead letters and refusals, keeps the status line, and settles deliveries for the pack's sinks.
 *
 * Outputs: 1 delivered messages (or batches), [accepted messages, when on,] dead letters, replies
 * to control messages, refused messages (msg.error).
 */
import { hostname } from 'node:os';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { migrateSettings } from '../shared/settings-version';
import { deliveryOf, outcomeOfReturned, settleDelivery, type DeliverySource, type Outcome } from '../shared/delivery';
import { defaultKey } from '../shared/device';
import { LogSummary } from '../shared/log-summary';
import { failing, idle, StatusLine, type NodeStatus } from '../shared/node-status';
import { propertyReader, type PropertyReader } from '../shared/typed-property';
import { CrashRecord } from './crash-record';
import { LocalStore } from './local-store';
import { BUFFER_MIGRATIONS } from './migrations';
import { encodeMessage, EncodingError, readStored, shapeProblem, storedContent, type ShapeProblem } from './message-codec';
import { bufferConfig, type BufferConfig, type BufferCredentials, type BufferProperties } from './node-config';
import { BufferQueue, type Delivery, type QueueStats } from './queue';
import { RedisStore } from './redis-store';
import { statusLine } from './status';
import { StoreError, type EncodedMessage, type QueueStore, type StoredMessage } from './store';

type BufferDef = NodeDef & BufferProperties;
type BufferNode = Node<BufferCredentials> & DeliverySource;
type Send = (msg: Array<NodeMessage | NodeMessage[] | null>) => void;
type Done = (err?: Error) => void;

/** Where each output is: the accepted output, when on, comes second and moves the others on. */
function outputsOf(accepted: boolean) {
  const shift = accepted ? 1 : 0;
  return { count: 4 + shift, deliver: 0, accepted: accepted ? 1 : -1, deadLetter: 1 + shift, control: 2 + shift };
}
const STATUS_EVERY_MS = 500;
const REOPEN_AFTER_MS = 10_000;
/** A problem stays in the status this long after it last happened. */
const PROBLEM_SHOWN_MS = 30_000;
/** A kind of problem is logged at once, then at most once this often with a count of repeats. */
const PROBLEM_LOG_EVERY_MS = 10_000;
/** Store problems that refuse messages: they end when a message is stored again. */
const REFUSING = new Set(['disk_full', 'no_permission', 'io_error', 'backend_unavailable', 'overloaded', 'queue_full']);
const CONTROLS = ['pause', 'resume', 'purge', 'status'] as const;
type Control = (typeof CONTROLS)[number];

export = function register(RED: NodeAPI): void {
  function IotBufferNode(this: BufferNode, def: BufferDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const outputs = outputsOf(def.acceptedOutput === true);
    const rejection = { outputs: outputs.count, catchErrors: def.catchErrors === true, RED };

    let config: BufferConfig;
    let keyReader: PropertyReader | undefined;
    try {
      const migrated = migrateSettings(def, BUFFER_MIGRATIONS);
      for (const note of migrated.notes) node.log(RED._(`iot-buffer.migrated.${note}`, { from: migrated.from }));
      config = bufferConfig(migrated.props, node.credentials ?? {}, { nodeId: node.id, userDir: RED.settings.userDir as string | undefined, hostname: hostname() });
      if (config.queue.order === 'key' && def.keyPropertyType && def.keyPropertyType !== 'device' && def.keyProperty) {
        keyReader = propertyReader(RED, node, def.keyProperty, def.keyPropertyType);
      }
    } catch (err) {
      node.settleDelivery = () => undefined;
      refuseEveryInput(node, 'iot-buffer', (err as Error).message, rejection);
      return;
    }

    // --- the store and the queue ----------------------------------------------------------
    let queue: BufferQueue | undefined;
    let store: QueueStore | undefined;
    let openError: StoreError | undefined;
    let reopenTimer: NodeJS.Timeout | undefined;
    let closing = false;
    /** Messages that came before the store was open, handled once it is. */
    let early: Array<() => void> = [];
    // Crash-loop protection (crash-record.ts): what is out is written in the moment the process
    // dies of an exception.
    const crashes = config.crashLimit > 0 && config.crashFile ? new CrashRecord(config.crashFile, config.crashLimit) : undefined;
    crashes?.watch(() => queue?.outRefs() ?? []);

    function openStore(): void {
      const created: QueueStore = config.backend === 'redis' && config.redis ? new RedisStore(config.redis) : new LocalStore(config.local as NonNullable<BufferConfig['local']>);
      const events = { deliver: (delivery: Delivery<StoredMessage>) => deliver(createdQueue, delivery), deadLetter, changed: () => status.changed() };
      const createdQueue: BufferQueue = new BufferQueue(created, config.queue, events, crashes);
      created.onProblem = (err) => problem(err);
      created.open().then(
        (report) => {
          if (closing) {
            void createdQueue.close();
            return;
          }
          store = created;
          queue = createdQueue;
          openError = undefined;
          for (const text of report.problems) problem(new StoreError(config.backend === 'redis' ? 'backend_unavailable' : 'store_corrupt', text));
          if (report.messages > 0) node.log(RED._('iot-buffer.log.recovered', { count: report.messages.toLocaleString('en-US') }));
          if (crashes) recoverCrashes(crashes);
          createdQueue.start();
          runEarly();
          status.now();
        },
        (err: unknown) => {
          openError = err instanceof StoreError ? err : new StoreError('io_error', (err as Error).message);
          node.error(RED._('iot-buffer.errors.cannot-open', { message: openError.message }));
          runEarly();
          status.now();
          if (!closing) reopenTimer = setTimeout(openStore, REOPEN_AFTER_MS);
        },
      );
    }

    function recoverCrashes(record: CrashRecord): void {
      if (config.backend === 'redis') mkdirSync(dirname(record.path), { recursive: true });
      const { suspects, problem: trouble } = record.load();
      if (trouble) node.warn(trouble);
      if (suspects > 0) node.warn(RED._('iot-buffer.log.suspects', { count: suspects, limit: record.limit }));
    }

    function runEarly(): void {
      const waiting = early;
      early = [];
      for (const handle of waiting) safely(handle);
    }

    /**
     * Runs what answers a message from a callback of the store or a promise: a throw from the nodes
     * downstream must not end up in the store's machinery or as an unhandled rejection.
     */
    function safely(answer: () => void): void {
      try {
        answer();
      } catch (err) {
        node.error(RED._('iot-buffer.errors.downstream', { message: (err as Error).message }));
      }
    }

    node.settleDelivery = (id: string, outcome: Outcome) => {
      queue?.settle(id, outcome);
    };
    node.announceCapacity = (sink: string, messages: number) => {
      queue?.announceCapacity(sink, messages);
    };

    // --- messages in ----------------------------------------------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      try {
        const token = deliveryOf(msg);
        if (token && token.source === node.id) {
          queue?.settle(token.id, outcomeOfReturned(msg));
          done();
          return;
        }
        if (msg.control !== undefined) {
          control(msg, send, done);
          return;
        }
        const shape = shapeProblem(msg, config.limits);
        if (shape) {
          refuseUnroutable(msg, shape, send, done);
          return;
        }
        if (!queue && !openError) {
          early.push(() => storeMessage(msg, send, done));
          return;
        }
        storeMessage(msg, send, done);
      } catch (err) {
        reject(node, msg, 'internal', (err as Error).message, send, done, rejection);
      }
    });

    function storeMessage(msg: NodeMessage, send: Send, done: Done): void {
      if (!queue) {
        refuse(msg, openError ?? new StoreError('closed', 'the buffer is closed'), send, done);
        return;
      }
      const key = keyOf(msg);
      if (key instanceof Promise) {
        key.then(
          (k) => safely(() => accept(msg, k, send, done)),
          (err: Error) => safely(() => refuse(msg, new StoreError('io_error', err.message), send, done, 'bad_key')),
        );
      } else {
        accept(msg, key, send, done);
      }
    }

    function keyOf(msg: NodeMessage): string | Promise<string> {
      if (!keyReader) return defaultKey(msg);
      const value = keyReader.read(msg);
      return keyReader.async ? (value as Promise<unknown>).then(keyText) : keyText(value);
    }

    function accept(msg: NodeMessage, key: string, send: Send, done: Done): void {
      // A message without a time of its own is stamped with the time it was accepted, stored with
      // it and kept through every redelivery: a sink never stamps it with the time it writes it.
      const acceptedAt = Date.now();
      const stamped = msg.timestamp === undefined || msg.timestamp === null;
      if (stamped) msg.timestamp = acceptedAt;
      // A refused message goes back as it came.
      const refuseAsItCame = (err: StoreError, code?: string) => {
        if (stamped) delete msg.timestamp;
        refuse(msg, err, send, done, code);
      };
      let body: EncodedMessage;
      try {
        body = encodeMessage(msg);
      } catch (err) {
        refuseAsItCame(new StoreError('io_error', (err as Error).message), err instanceof EncodingError ? 'not_serializable' : 'internal');
        return;
      }
      if (!queue) {
        refuseAsItCame(new StoreError('closed', 'the buffer is closed'));
        return;
      }
      const problemsBefore = problemCount;
      // Called back from inside the store's write loop: nothing thrown downstream (a Complete or
      // Catch node cloning the message) may get into it.
      queue.accept(key, body, acceptedAt, (err) =>
        safely(() => {
          if (err) {
            refuseAsItCame(err);
            return;
          }
          storedAgain(problemsBefore);
          // Stored durably: a buffer upstream (Double Buffered) or a front door may let go of it.
          settleDelivery(RED, msg, { ok: true });
          if (outputs.accepted >= 0) {
            // Passed on untracked, as it came in (req and res kept): its token is settled.
            delete msg._delivery;
            const out: Array<NodeMessage | null> = new Array(outputs.count).fill(null);
            out[outputs.accepted] = msg;
            send(out);
          }
          done();
        }),
      );
    }

    /**
     * A message that could not be routed (too deep, too many keys) is refused for good: nothing
     * of it is stored, the sender is told not to send it again, and the offending properties are
     * taken off the message so that the nodes that see the refusal (the error output, Catch and
     * Complete nodes, which clone it) can route it.
     */
    function refuseUnroutable(msg: NodeMessage, shape: ShapeProblem, send: Send, done: Done): void {
      for (const property of shape.properties) delete (msg as Record<string, unknown>)[property];
      // reject() settles the sender's token: for good, as too_deep and too_many_keys are final.
      reject(node, msg, shape.code, RED._('iot-buffer.errors.unroutable', { problem: shape.message }), send, done, rejection);
    }

    function refuse(msg: NodeMessage, err: StoreError, send: Send, done: Done, code: string = err.code): void {
      if (REFUSING.has(err.code)) problem(err);
      // reject() settles the sender's token: again later for what may pass then (full, disk, Redis), for good otherwise.
      reject(node, msg, code, err.message, send, done, rejection);
    }

    function control(msg: NodeMessage, send: Send, done: Done): void {
      const command = typeof msg.control === 'string' ? (msg.control.trim().toLowerCase() as Control) : undefined;
      if (!command || !CONTROLS.includes(command)) {
        reject(node, msg, 'bad_control', `msg.control must be one of ${CONTROLS.join(', ')} (got ${shownControl(msg.control)})`, send, done, rejection);
        return;
      }
      const reply = (extra: Record<string, unknown> = {}) => {
        msg.payload = { ...statsNow(), ...extra };
        const out: Array<NodeMessage | null> = new Array(outputs.count).fill(null);
        out[outputs.control] = msg;
        send(out);
        status.now();
        done();
      };
      if (!queue) {
        if (command === 'status') reply();
        else early.push(() => control(msg, send, done));
        if (openError && command !== 'status') runEarly();
        return;
      }
      if (command === 'pause') queue.pause();
      if (command === 'resume') queue.resume();
      if (command === 'purge') {
        queue.purge((err, removed) =>
          safely(() => {
            if (err) {
              problem(err);
              reject(node, msg, err.code, err.message, send, done, rejection);
              return;
            }
            reply({ removed });
          }),
        );
        return;
      }
      reply();
    }

    function statsNow(): Record<string, unknown> {
      const stats: Partial<QueueStats> = queue?.stats() ?? { backend: config.backend };
      const extra: Record<string, unknown> = {};
      if (store instanceof LocalStore) extra.diskBytes = store.diskBytes;
      if (store instanceof RedisStore) extra.connected = store.isConnected;
      if (openError) extra.error = { code: openError.code, message: openError.message };
      return { ...stats, ...extra };
    }

    // --- messages out ---------------------------------------------------------------------
    function deliver(from: BufferQueue, delivery: Delivery<StoredMessage>): void {
      let msg: NodeMessage;
      if (config.queue.batchSize > 1) {
        const messages: NodeMessage[] = [];
        for (const stored of delivery.messages) {
          const read = readStored(stored.body, config.limits);
          stored.dropBody?.();
          if (read.msg) messages.push(withoutToken(timed(read.msg, stored)));
          else from.setAside(delivery.id, [stored], `${read.problem.code}: ${read.problem.message}`);
        }
        if (messages.length === 0) return;
        msg = { _msgid: RED.util.generateId(), payload: messages.map((m) => m.payload), messages };
      } else {
        const stored = delivery.messages[0];
        const read = readStored(stored.body, config.limits);
        stored.dropBody?.();
        if (!read.msg) {
          from.setAside(delivery.id, delivery.messages, `${read.problem.code}: ${read.problem.message}`);
          return;
        }
        msg = timed(read.msg, stored);
      }
      msg._delivery = delivery.last ? { source: node.id, id: delivery.id, last: true } : { source: node.id, id: delivery.id };
      if (delivery.attempt > 1) msg.redelivered = delivery.attempt - 1;
      else delete msg.redelivered;
      const out: Array<NodeMessage | null> = new Array(outputs.count).fill(null);
      out[outputs.deliver] = msg;
      try {
        node.send(out);
      } catch (err) {
        // Node-RED clones a message for the second node wired to an output, synchronously, here.
        from.setAside(delivery.id, delivery.messages, RED._('iot-buffer.errors.not-routed', { message: (err as Error).message }));
      }
    }

    /** A message stored without a time (by a version that did not stamp it) gets the time it was accepted. */
    function timed(msg: NodeMessage, stored: StoredMessage): NodeMessage {
      if (msg.timestamp === undefined || msg.timestamp === null) msg.timestamp = stored.acceptedAt;
      return msg;
    }

    function deadLetter(messages: StoredMessage[], reason: string, attempts: number): void {
      const letter = (m: StoredMessage, msg: NodeMessage): NodeMessage => {
        delete msg.redelivered;
        msg.deadLetter = { reason, attempts, acceptedAt: m.acceptedAt, buffer: node.id };
        return msg;
      };
      // As stored, when it cannot be decoded or routed as a message.
      const asStored = (m: StoredMessage) => letter(m, { _msgid: RED.util.generateId(), payload: storedContent(m.body) });
      const letters = messages.map((m) => {
        const read = readStored(m.body, config.limits);
        return read.msg ? letter(m, withoutToken(read.msg)) : asStored(m);
      });
      const out: Array<NodeMessage | NodeMessage[] | null> = new Array(outputs.count).fill(null);
      out[outputs.deadLetter] = letters;
      try {
        node.send(out);
      } catch {
        out[outputs.deadLetter] = messages.map(asStored);
        safely(() => node.send(out));
      }
    }

    // --- problems and status --------------------------------------------------------------
    const log = new LogSummary(PROBLEM_LOG_EVERY_MS);
    let lastProblem: { code: string; at: number } | undefined;
    /** Problems so far: tells whether one came while a message was being stored. */
    let problemCount = 0;
    let lastDrop = { count: 0, at: 0 };

    function problem(err: StoreError): void {
      problemCount++;
      log.report(err.code, `${err.code}: ${err.message}`, (text) => node.warn(text));
      lastProblem = { code: err.code, at: Date.now() };
      status.changed();
    }

    /**
     * A message stored: whatever refused messages before it was handed to the store (full disk,
     * full queue, Redis gone) is over. A refusal decided while it was being written still counts.
     */
    function storedAgain(problemsBefore: number): void {
      if (!lastProblem || !REFUSING.has(lastProblem.code) || problemCount > problemsBefore) return;
      lastProblem = undefined;
      status.changed();
    }

    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);

    function currentStatus(): NodeStatus | undefined {
      if (closing) return undefined;
      const now = Date.now();
      log.tick(now);
      if (openError) return failing(`${openError.code} · ${RED._('iot-buffer.status.not-open')}`);
      if (!queue) return idle(RED._('iot-buffer.status.opening'));
      const stats = queue.stats();
      if (stats.dropped > lastDrop.count) lastDrop = { count: stats.dropped, at: now };
      const recent = lastProblem && now - lastProblem.at < PROBLEM_SHOWN_MS ? lastProblem.code : undefined;
      const line = statusLine(
        { stats, problem: recent, droppedRecently: now - lastDrop.at < PROBLEM_SHOWN_MS, disconnected: store instanceof RedisStore && !store.isConnected },
        (key, values) => RED._(`iot-buffer.${key}`, values),
      );
      // Ages, retry times and recent problems change with time alone: look again.
      if (recent || stats.depth > 0 || line.fill !== 'green') status.changed();
      return line;
    }

    // --- closing --------------------------------------------------------------------------
    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      crashes?.unwatch();
      if (reopenTimer) clearTimeout(reopenTimer);
      status.stop();
      log.flush();
      const closingQueue = queue;
      const empty = (queue?.stats().depth ?? 1) === 0;
      queue = undefined;
      for (const handle of early.splice(0)) handle();
      const finished = closingQueue ? closingQueue.close() : Promise.resolve();
      finished
        .then(async () => {
          // A node deleted from the flow takes its data folder along, unless messages still wait in it.
          if (removed && config.local && empty) await rm(config.local.dir, { recursive: true, force: true });
          else if (removed && config.local) node.warn(RED._('iot-buffer.log.kept-on-remove', { dir: config.local.dir }));
        })
        .catch((err: Error) => node.warn(err.message))
        .finally(done);
    });

    status.now();
    openStore();
  }

  RED.nodes.registerType<BufferNode, BufferDef, Record<string, never>, BufferCredentials>('iot-buffer', IotBufferNode, {
    credentials: {
      redisUsername: { type: 'text' },
      redisPassword: { type: 'password' },
    },
  });
};

/** The bad msg.control as JSON where it has some; a cycle or a BigInt makes JSON.stringify throw. */
function shownControl(value: unknown): string {
  try {
    return String(JSON.stringify(value));
  } catch {
    return `a ${typeof value} that is not JSON`;
  }
}

function keyText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return '';
}

function withoutToken(msg: NodeMessage): NodeMessage {
  delete msg._delivery;
  return msg;
}
