/**
 * iot-mqtt-broker: an embedded MQTT broker (aedes; TCP, WebSocket, optional TLS) that verifies
 * every device against a device registry. Its outputs: device publishes with the authenticated
 * identity, connection events (online, offline, refused, denied, not taken), and rejected input
 * (messages to publish it could not, device publishes it could not parse). Messages sent to its
 * input are published to the devices.
 *
 * Acknowledging QoS 1/2 "once stored", it is a delivery source (nodes/shared/delivery.ts): each
 * device publish goes into the flow with a token, and its PUBACK (PUBREC) waits until the token is
 * settled: ok or refused for good, acknowledged; not taken, or not settled within "Answer
 * within", the connection is closed so that the device sends it again.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { TlsOptions } from 'node:tls';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { BROKER_PROPERTY, type BrokerIdentitySource, type BrokerMark } from '../shared/broker-identity';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { DeadlineTimer } from '../shared/deadline-timer';
import { DELIVERY_PROPERTY, settleIfReturned, type DeliverySource, type Outcome } from '../shared/delivery';
import type { DeviceIdentity } from '../shared/device';
import { registryService, TOKEN_SKEW_SECONDS } from '../shared/device-registry-api';
import { formatTimeOfDay } from '../shared/duration';
import { HeldReceipts } from '../shared/held-receipts';
import { DEFAULT_PARSE_LIMITS, LimitError, parseJsonWithin, type ParseLimits } from '../shared/json-limits';
import { LogSummary } from '../shared/log-summary';
import { degraded, failing, idle, StatusLine, working, type NodeStatus } from '../shared/node-status';
import { isUtf8Text, looksLikeJson } from '../shared/payload';
import { BrokerCore, type BrokerEvents, type BrokerSettings, type ConnectionEvent, type Delivery, type Receipt } from './broker-core';
import { CONNECT_METHODS, PASSWORD_METHODS, type ConnectMethod } from './connect';

interface BrokerDef extends NodeDef {
  registry?: string;
  host?: string;
  port?: string | number;
  wsPort?: string | number;
  wsPath?: string;
  usetls?: boolean;
  tls?: string;
  requestCert?: boolean;
  methods?: string[];
  skew?: string | number;
  maxLifetime?: string | number;
  audience?: string;
  sasResource?: string;
  publishTopics?: string;
  subscribeTopics?: string;
  gatewaySensors?: boolean;
  clientIdMustMatch?: boolean;
  deliver?: string;
  payloadFormat?: 'auto' | 'json' | 'buffer' | 'string';
  maxBytes?: string | number;
  maxDepth?: string | number;
  maxKeys?: string | number;
  acknowledge?: string;
  answerWithin?: string | number;
  persist?: boolean;
  maxPacket?: string | number;
  retainedPerDevice?: string | number;
  retainedBytesPerDevice?: string | number;
  queuedPerDevice?: string | number;
  queuedBytesPerDevice?: string | number;
  catchErrors?: boolean;
}

type BrokerNode = Node & BrokerIdentitySource & DeliverySource;
type Send = (msg: Array<NodeMessage | null>) => void;
type Done = (err?: Error) => void;

const OUTPUTS = 3;
const RETRY_LISTEN_MS = 10_000;
const STATUS_EVERY_MS = 500;
/** Receipts not settled in time are logged once, then counted per minute. */
const TIMEOUT_LOG_EVERY_MS = 60_000;
/** A receipt that timed out keeps the status yellow this long. */
const TIMEOUT_SHOWN_MS = 30_000;

function portOf(value: string | number | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  if (value === '') return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`${String(value)} is not a port`);
  return port;
}

/**
 * Per-device limits sized for sensors, also for flows written before they were settings (a flow
 * without them accepted a 50 MB publish, and any number of retained and queued messages): a
 * packet of 128 KiB (twice device-auth's default body cap, with room for the topic), 10 retained
 * messages in 64 KiB, 1,000 queued messages in 1 MiB. 0 turns a limit off.
 */
const BROKER_LIMITS = { maxPacketBytes: 131_072, retainedPerDevice: 10, retainedBytesPerDevice: 65_536, queuedPerDevice: 1_000, queuedBytesPerDevice: 1_048_576 } as const;

function deviceLimit(value: string | number | undefined, fallback: number, what: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a whole number, 0 or more`);
  return n;
}

function rules(text: string | undefined, fallback: string): string[] {
  const list = (text ?? fallback).split(/[\s,]+/).filter((r) => r !== '');
  return list.length > 0 ? list : [fallback];
}

function limit(value: string | number | undefined, fallback: number, what: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a whole number of at least 1`);
  return n;
}

/** What a device publish becomes in the flow; throws a LimitError (or `malformed` for JSON that is not) when it is refused. */
function payloadFor(format: NonNullable<BrokerDef['payloadFormat']>, payload: Buffer, limits: ParseLimits): unknown {
  if (format === 'buffer') return payload;
  if (format === 'string') return payload.toString('utf8');
  if (format === 'json' || looksLikeJson(payload)) {
    try {
      return parseJsonWithin(payload, limits);
    } catch (err) {
      if (err instanceof LimitError) throw err;
      if (format === 'json') throw Object.assign(new Error(`the payload is not JSON: ${(err as Error).message}`), { code: 'malformed' });
      // Not JSON after all: handed on as text or bytes.
    }
  }
  return isUtf8Text(payload) ? payload.toString('utf8') : payload;
}

/**
 * msg.qos as a number (NaN when it is none): only primitives are converted, as Number() throws
 * on a Symbol or an object without a primitive value, and would run an object's own valueOf.
 */
function qosOf(value: unknown): number {
  if (value === undefined || value === null) return 0;
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' || typeof value === 'bigint' ? Number(value) : Number.NaN;
}

export = function register(RED: NodeAPI): void {
  function IotMqttBrokerNode(this: BrokerNode, def: BrokerDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true, RED };
    const registry = registryService(RED, def.registry);
    node.settleDelivery = () => undefined;
    let settings: BrokerSettings;
    let limits: ParseLimits;
    let answerWithinMs: number;
    try {
      if (!registry) throw new Error(RED._('iot-mqtt-broker.errors.no-registry'));
      const methods = new Set((def.methods ?? [...PASSWORD_METHODS]).filter((m): m is ConnectMethod => (CONNECT_METHODS as readonly string[]).includes(m)));
      if (methods.size === 0) throw new Error(RED._('iot-mqtt-broker.errors.no-methods'));
      const tcpPort = portOf(def.port, 1883);
      const wsPort = portOf(def.wsPort, undefined);
      if (tcpPort === undefined && wsPort === undefined) throw new Error(RED._('iot-mqtt-broker.errors.no-listener'));
      let tls: TlsOptions | undefined;
      // Flows written before the checkbox existed name a TLS node without ticking it.
      if (def.tls && def.usetls !== false) {
        const tlsNode = RED.nodes.getNode(def.tls) as (Node & { addTLSOptions?(options: TlsOptions): void }) | null;
        if (!tlsNode?.addTLSOptions) throw new Error(RED._('iot-mqtt-broker.errors.no-tls'));
        tls = {};
        tlsNode.addTLSOptions(tls);
        if (def.requestCert) {
          // Asked for, not required: a device without one may still use a password, and a
          // certificate is judged by the registry (fleet CAs, revocation), not by OpenSSL's store.
          tls.requestCert = true;
          tls.rejectUnauthorized = false;
        }
      }
      if (methods.has('x509') && !tls?.requestCert) throw new Error(RED._('iot-mqtt-broker.errors.x509-needs-tls'));
      const userDir = RED.settings.userDir as string | undefined;
      const audiences = (def.audience ?? '').split(/[\s,]+/).filter((a) => a !== '');
      settings = {
        nodeId: node.id,
        methods,
        policy: {
          // Only tokens are checked at CONNECT: the skew is their clock tolerance.
          skewMs: Number(def.skew ?? TOKEN_SKEW_SECONDS) * 1000,
          tokenSkewMs: Number(def.skew ?? TOKEN_SKEW_SECONDS) * 1000,
          maxLifetimeMs: Number(def.maxLifetime ?? 86_400) * 1000,
          audiences,
          ...(def.sasResource ? { sasResource: def.sasResource } : {}),
        },
        publishTopics: rules(def.publishTopics, 'devices/{id}/#'),
        subscribeTopics: rules(def.subscribeTopics, 'devices/{id}/#'),
        gatewaySensors: def.gatewaySensors !== false,
        clientIdMustMatch: def.clientIdMustMatch !== false,
        deliver: def.deliver || '#',
        limits: {
          maxPacketBytes: deviceLimit(def.maxPacket, BROKER_LIMITS.maxPacketBytes, 'the packet size limit'),
          retainedPerDevice: deviceLimit(def.retainedPerDevice, BROKER_LIMITS.retainedPerDevice, 'the retained messages per device'),
          retainedBytesPerDevice: deviceLimit(def.retainedBytesPerDevice, BROKER_LIMITS.retainedBytesPerDevice, 'the retained bytes per device'),
          queuedPerDevice: deviceLimit(def.queuedPerDevice, BROKER_LIMITS.queuedPerDevice, 'the queued messages per device'),
          queuedBytesPerDevice: deviceLimit(def.queuedBytesPerDevice, BROKER_LIMITS.queuedBytesPerDevice, 'the queued bytes per device'),
        },
        acknowledge: def.acknowledge === 'stored' ? 'stored' : 'arrival',
        ...(def.persist !== false && userDir ? { persistenceDir: join(userDir, 'iot-state', `mqtt-broker-${node.id.replace(/[^\w.-]/g, '_')}`) } : {}),
        ...(tcpPort !== undefined ? { tcp: { host: def.host || undefined, port: tcpPort, ...(tls ? { tls } : {}) } } : {}),
        ...(wsPort !== undefined ? { ws: { host: def.host || undefined, port: wsPort, path: def.wsPath || '/mqtt', ...(tls ? { tls } : {}) } } : {}),
      };
      if (!Number.isFinite(settings.policy.skewMs) || !Number.isFinite(settings.policy.maxLifetimeMs)) throw new Error(RED._('iot-mqtt-broker.errors.bad-times'));
      if (def.acknowledge !== undefined && def.acknowledge !== 'arrival' && def.acknowledge !== 'stored') throw new Error(RED._('iot-mqtt-broker.errors.bad-acknowledge'));
      if (def.payloadFormat !== undefined && !['auto', 'json', 'buffer', 'string'].includes(def.payloadFormat)) throw new Error(RED._('iot-mqtt-broker.errors.bad-payload-format'));
      limits = {
        maxBytes: limit(def.maxBytes, DEFAULT_PARSE_LIMITS.maxBytes, RED._('iot-mqtt-broker.label.maxBytes')),
        maxDepth: limit(def.maxDepth, DEFAULT_PARSE_LIMITS.maxDepth, RED._('iot-mqtt-broker.label.maxDepth')),
        maxKeys: limit(def.maxKeys, DEFAULT_PARSE_LIMITS.maxKeys, RED._('iot-mqtt-broker.label.maxKeys')),
      };
      answerWithinMs = def.answerWithin === undefined || def.answerWithin === '' ? 30_000 : Number(def.answerWithin) * 1000;
      if (!Number.isFinite(answerWithinMs) || answerWithinMs <= 0) throw new Error(RED._('iot-mqtt-broker.errors.bad-answer-within'));
    } catch (err) {
      node.identify = () => undefined;
      refuseEveryInput(node, 'iot-mqtt-broker', (err as Error).message, rejection);
      return;
    }

    const format = def.payloadFormat ?? 'auto';
    // --- receipts held until the flow stored what devices published -----------------------------
    const receipts = new HeldReceipts(`${randomBytes(4).toString('hex')}.`, answerWithinMs);
    const expiry = new DeadlineTimer(expire);
    const timeouts = new LogSummary(TIMEOUT_LOG_EVERY_MS);
    let lastTimeoutAt = 0;
    node.settleDelivery = (id: string, outcome: Outcome) => {
      if (receipts.settle(id, outcome)) status.changed();
    };

    function expire(): void {
      const expired = receipts.expire(Date.now());
      if (expired > 0) lastTimeoutAt = Date.now();
      for (let i = 0; i < expired; i++) timeouts.report('not-settled', RED._('iot-mqtt-broker.errors.not-settled', { seconds: answerWithinMs / 1000 }), (text) => node.warn(text));
      const next = receipts.nextDeadline();
      if (next !== undefined) expiry.arm(next);
      status.changed();
    }

    /** Taken, or refused for good (MQTT 3.1.1 has no negative PUBACK; the refusal is on the error output of whoever refused): acknowledged. */
    function answer(receipt: Receipt, outcome: Outcome): void {
      if (outcome.ok || !outcome.retry) receipt();
      else receipt(outcome.reason);
    }

    let listening: { tcp?: number; ws?: number } | undefined;
    let problem: string | undefined;
    let closed = false;
    let retry: NodeJS.Timeout | undefined;
    /** When listening is tried again after it failed. */
    let retryAt: number | undefined;

    function event(kind: string, e: ConnectionEvent & { action?: string }): void {
      const payload: Record<string, unknown> = { event: kind, clientId: e.clientId };
      if (e.device) payload.device = e.device.id;
      for (const key of ['username', 'address', 'code', 'reason', 'action', 'topic'] as const) if (e[key] !== undefined) payload[key] = e[key];
      const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: kind, payload };
      if (e.device) msg.device = e.device as DeviceIdentity;
      node.send([null, msg, null]);
      status.changed();
    }

    /** A device publish that cannot go into the flow as it is (too deep, too large, not JSON): refused for good. */
    function refusePublish(delivery: Delivery, code: string, message: string): void {
      const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: delivery.topic, payload: delivery.payload, qos: delivery.qos, retain: delivery.retain, device: delivery.device };
      msg.error = { code, message, node: node.id };
      node.send([null, null, msg]);
      if (rejection.catchErrors) node.error(`${code}: ${message}`, msg);
    }

    const events: BrokerEvents = {
      published(delivery, receipt) {
        let payload: unknown;
        try {
          payload = payloadFor(format, delivery.payload, limits);
        } catch (err) {
          refusePublish(delivery, (err as { code?: string }).code ?? 'malformed', (err as Error).message);
          receipt?.();
          return;
        }
        const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: delivery.topic, payload, qos: delivery.qos, retain: delivery.retain, device: delivery.device };
        msg[BROKER_PROPERTY] = delivery.mark;
        if (receipt) {
          const [id] = receipts.hold(1, (outcome) => answer(receipt, outcome), Date.now());
          msg[DELIVERY_PROPERTY] = { source: node.id, id };
          expiry.arm(receipts.nextDeadline() as number);
          status.changed();
        }
        node.send([msg, null, null]);
      },
      online: (e) => event('online', e),
      offline: (e) => event('offline', e),
      refused: (e) => event('refused', e),
      denied: (e) => event('denied', e),
      dropped: (e) => event('dropped', e),
      notTaken: (e) => event('not_taken', e),
      warning: (message) => node.warn(message),
    };

    const core = new BrokerCore(settings, registry as NonNullable<typeof registry>, events);
    node.identify = (mark: BrokerMark) => core.identify(mark);

    async function listen(): Promise<void> {
      try {
        listening = await core.listen();
        problem = undefined;
        retryAt = undefined;
        if (closed) return;
        const where = [listening.tcp !== undefined ? `mqtt${settings.tcp?.tls ? 's' : ''} ${listening.tcp}` : '', listening.ws !== undefined ? `ws${settings.ws?.tls ? 's' : ''} ${listening.ws}${settings.ws?.path}` : ''].filter((w) => w !== '');
        node.log(RED._('iot-mqtt-broker.log.listening', { where: where.join(', ') }));
      } catch (err) {
        problem = (err as Error & { code?: string }).code === 'EADDRINUSE' ? RED._('iot-mqtt-broker.errors.port-in-use') : (err as Error).message;
        node.error(RED._('iot-mqtt-broker.errors.not-listening', { message: (err as Error).message }));
        await core.close();
        if (!closed) {
          retry = setTimeout(() => void start(), RETRY_LISTEN_MS);
          retryAt = Date.now() + RETRY_LISTEN_MS;
        }
      }
      status.now();
    }

    async function start(): Promise<void> {
      try {
        await core.open();
        const restored = core.restored;
        if (restored && restored.skipped > 0) node.warn(RED._('iot-mqtt-broker.errors.journal-skipped', { count: restored.skipped }));
      } catch (err) {
        problem = (err as Error).message;
        retryAt = undefined;
        node.error(RED._('iot-mqtt-broker.errors.not-started', { message: problem }));
        status.now();
        return;
      }
      if (closed) return;
      await listen();
    }
    const starting = start();

    // --- publishing to devices ---------------------------------------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      // One of its own deliveries wired back (a Catch node after a node that failed, a Complete
      // node): it settles that delivery, as a buffer's ack input does; it is not published.
      if (settleIfReturned(node, msg)) {
        done();
        return;
      }
      const topic = msg.topic;
      if (typeof topic !== 'string' || topic === '' || /[#+\u0000]/.test(topic)) {
        reject(node, msg, 'bad_topic', RED._('iot-mqtt-broker.errors.bad-topic'), send, done, rejection);
        return;
      }
      const qos = qosOf(msg.qos);
      if (qos !== 0 && qos !== 1 && qos !== 2) {
        reject(node, msg, 'bad_qos', RED._('iot-mqtt-broker.errors.bad-qos'), send, done, rejection);
        return;
      }
      const value = msg.payload;
      let payload: Buffer;
      try {
        payload = Buffer.isBuffer(value) ? value : Buffer.from(typeof value === 'string' ? value : value === undefined || value === null ? '' : (JSON.stringify(value) ?? ''));
      } catch (err) {
        reject(node, msg, 'not_serializable', RED._('iot-mqtt-broker.errors.not-serializable', { message: (err as Error).message }), send, done, rejection);
        return;
      }
      core.publish(topic, payload, qos, msg.retain === true).then(
        () => done(),
        (err: Error) => reject(node, msg, 'not_published', err.message, send, done, rejection),
      );
    });

    // --- status ------------------------------------------------------------------------------
    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);
    const unsubscribe = registry?.onChange(() => status.changed());

    function currentStatus(): NodeStatus {
      if (problem) {
        const again = retryAt !== undefined ? ` · ${RED._('iot-mqtt-broker.status.next-try', { at: formatTimeOfDay(retryAt) })}` : '';
        return failing(`${problem}${again}`);
      }
      if (!listening) return idle(RED._('iot-mqtt-broker.status.starting'));
      if (registry && registry.state !== 'ready') {
        // Every CONNECT is refused until the registry can be used: say so rather than look healthy.
        const text = RED._(`iot-mqtt-broker.status.registry-${registry.state}`);
        return registry.state === 'failed' ? failing(text) : degraded(text);
      }
      timeouts.tick();
      const parts = [`${core.online} ${RED._('iot-mqtt-broker.status.online')}`];
      if (receipts.waiting > 0) parts.push(RED._('iot-mqtt-broker.status.waiting', { count: receipts.waiting.toLocaleString('en-US') }));
      if (core.refused > 0) parts.push(`${core.refused} ${RED._('iot-mqtt-broker.status.refused')}`);
      if (core.denied > 0) parts.push(`${core.denied} ${RED._('iot-mqtt-broker.status.denied')}`);
      const ports = [listening.tcp, listening.ws].filter((p) => p !== undefined).join(', ');
      // Receipts that time out: devices are disconnected to send again (nothing follows that stores them?).
      const timingOut = Date.now() - lastTimeoutAt < TIMEOUT_SHOWN_MS;
      if (timingOut) parts.push(RED._('iot-mqtt-broker.status.not-settled'));
      // Receipts still held, or a timeout still shown: the line changes with time alone.
      if (receipts.waiting > 0 || timingOut) status.changed();
      const text = `${parts.join(' · ')} · :${ports}`;
      // Listening with no device connected is ready, not failing: a ring, as core MQTT shows it.
      if (timingOut) return degraded(text);
      return core.online > 0 ? working(text) : idle(text);
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      if (retry) clearTimeout(retry);
      status.stop();
      expiry.cancel();
      // Receipts still held are not taken: the devices send those publishes again after reconnecting.
      receipts.releaseAll({ ok: false, retry: true, code: 'closed', reason: RED._('iot-mqtt-broker.errors.stopped') });
      timeouts.flush();
      unsubscribe?.();
      starting
        .then(() => core.close())
        .then(() => {
          if (removed) core.removeSessions();
        })
        .catch((err: Error) => node.warn(err.message))
        .finally(done);
    });
  }

  RED.nodes.registerType('iot-mqtt-broker', IotMqttBrokerNode);
};
