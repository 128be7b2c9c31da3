/**
 * iot-device-auth: the Node-RED side of the device-auth pipeline. Reads where the credentials are
 * (typed inputs), hands them to the core, removes credential material from the message, sets the
 * reading's time, and sends it on as authenticated (msg.device) or rejected (msg.error, and
 * msg.statusCode for HTTP).
 *
 * It is also a delivery source (nodes/shared/delivery.ts): set to answer HTTP senders "once
 * stored", it holds the answer until what it handed on is settled; and when it splits a batch
 * that carries a delivery of its own (from a broker holding the PUBACK), it hands on the parts
 * with tokens of its own and settles the batch once every part is settled.
 */
import { randomBytes } from 'node:crypto';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { identifyByBroker, brokerMarkOf, BROKER_PROPERTY } from '../shared/broker-identity';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { DeadlineTimer } from '../shared/deadline-timer';
import { deliveryOf, settleIfReturned, settleToken, DELIVERY_PROPERTY, type DeliverySource, type DeliveryToken, type Outcome } from '../shared/delivery';
import { registryService, type DeviceRegistryService } from '../shared/device-registry-api';
import { peerCertificateChain } from '../shared/peer-certificate';
import { connectionProblem, redisService, type SharedRedis } from '../shared/redis-api';
import { HeldReceipts } from '../shared/held-receipts';
import { LogSummary } from '../shared/log-summary';
import { degraded, failing, idle, StatusLine, working, type NodeStatus } from '../shared/node-status';
import { propertyReader, type PropertyReader } from '../shared/typed-property';
import { migrateSettings } from '../shared/settings-version';
import { DeviceAuthCore, refusalStatus, statusText, type AuthCode, type AuthInput, type AuthMode, type AuthOutcome, type CredentialFields } from './auth-core';
import { answerFromProperties, CREDENTIAL_DEFAULTS, settingsFromProperties, type AnswerSettings, type DeviceAuthProperties } from './node-config';
import { credentialPath, removeCredentials, type CredentialPath } from './scrub';
import { RedisSharedChecks } from './shared-checks';
import { DEVICE_AUTH_MIGRATIONS } from './migrations';

type DeviceAuthNode = Node & DeliverySource;
type Send = (msg: Array<NodeMessage | NodeMessage[] | null>) => void;
type Done = (err?: Error) => void;
type Rejection = Extract<AuthOutcome, { ok: false }>;

/** Credential fields read from the message, and whether they are secrets to remove after use. */
const FIELDS: Array<{ name: keyof CredentialFields; secret: boolean }> = [
  { name: 'deviceId', secret: false },
  { name: 'apiKey', secret: true },
  { name: 'timestamp', secret: false },
  { name: 'nonce', secret: false },
  { name: 'signature', secret: true },
  { name: 'token', secret: true },
];

/** Which credential fields each method reads. */
const USED: Record<AuthMode, Array<keyof CredentialFields>> = {
  anonymous: [],
  broker: [],
  apikey: ['deviceId', 'apiKey', 'token'],
  hmac: ['deviceId', 'timestamp', 'nonce', 'signature'],
  sas: ['deviceId', 'token'],
  jwt: ['deviceId', 'token'],
  webhook: ['deviceId', 'signature', 'timestamp'],
  x509: ['deviceId'],
  auto: ['deviceId', 'apiKey', 'timestamp', 'nonce', 'signature', 'token'],
};

const STATUS_EVERY_MS = 500;
const OUTPUTS = 2;
/** What a 503 asks the sender to wait when nobody said how long: long enough not to hammer, short for a blip. */
const RETRY_AFTER_S = 5;
/** Answers not settled in time are logged once, then counted per minute. */
const TIMEOUT_LOG_EVERY_MS = 60_000;
/** How long answers that timed out keep the status yellow. */
const TIMEOUT_SHOWN_MS = 30_000;
/** Codes whose message could hold a value too deep or too large to pass on, even for logging. */
const LIMIT_CODES: ReadonlySet<AuthCode> = new Set(['too_deep', 'too_many_keys', 'too_large']);

interface HttpRequestLike {
  method?: unknown;
  originalUrl?: unknown;
  url?: unknown;
  ip?: unknown;
  headers?: Record<string, unknown>;
  /** The connection (express: req.socket, also req.client): a TLS socket when served over https. */
  socket?: unknown;
  client?: unknown;
}

/** The parts of Express's response this node answers through (as Node-RED's http response node does). */
interface ExpressResponse {
  headersSent?: boolean;
  writableEnded?: boolean;
  set(field: string, value: string): unknown;
  status(code: number): ExpressResponse;
  json(body: unknown): unknown;
  send(body: string): unknown;
  end(): unknown;
}

/** An HTTP request this node answers itself ("once stored"). */
interface HttpSender {
  answer(status: number, retryAfterSeconds?: number): void;
}

/** One message being handled: how to go on, and the answer this node owes, if any. */
interface Handling {
  msg: NodeMessage;
  send: Send;
  done: Done;
  sender?: HttpSender;
  /** Sent on: from then on its receipt belongs to its settlement, whatever throws. */
  handedOn?: boolean;
}

export = function register(RED: NodeAPI): void {
  function IotDeviceAuthNode(this: DeviceAuthNode, def: NodeDef & DeviceAuthProperties): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true, RED };
    node.settleDelivery = () => undefined;

    let core: DeviceAuthCore;
    let answers: AnswerSettings;
    let readers: Array<{ name: keyof CredentialFields; reader: PropertyReader; secretPath?: string }>;
    let sourceReader: PropertyReader | undefined;
    let registry: DeviceRegistryService | undefined;
    let shared: SharedRedis | undefined;
    try {
      const migrated = migrateSettings(def, DEVICE_AUTH_MIGRATIONS);
      for (const note of migrated.notes) node.log(RED._(`iot-device-auth.migrated.${note}`, { from: migrated.from }));
      const settings = settingsFromProperties(migrated.props);
      answers = answerFromProperties(def);
      registry = registryService(RED, def.registry);
      // Anonymous messages need no registry, nor do broker identities unless gateway sensors are checked.
      if (!registry && (settings.gateway || !['anonymous', 'broker'].includes(settings.mode))) throw new Error(RED._('iot-device-auth.errors.no-registry'));
      readers = [];
      for (const f of FIELDS) {
        const value = (def[`${f.name}Property`] as string | undefined) ?? CREDENTIAL_DEFAULTS[f.name];
        if (!USED[settings.mode].includes(f.name) || value === '') continue;
        const type = (def[`${f.name}PropertyType`] as string | undefined) || 'msg';
        const reader = propertyReader(RED, node, value, type);
        readers.push(f.secret && type === 'msg' ? { name: f.name, reader, secretPath: value } : { name: f.name, reader });
      }
      if (def.anonymousSource === 'property' && def.sourceProperty) {
        sourceReader = propertyReader(RED, node, def.sourceProperty, def.sourcePropertyType || 'msg');
      }
      // Shared with the other instances when an iot-redis is chosen (an older flow has none: local state).
      if (def.redis) {
        shared = redisService(RED, def.redis);
        if (!shared) throw new Error(RED._('iot-device-auth.errors.no-redis'));
      }
      core = new DeviceAuthCore(settings, registry, (mark) => identifyByBroker(RED, mark as never), shared ? new RedisSharedChecks(shared, node.id, settings.rate) : undefined);
    } catch (err) {
      refuseEveryInput(node, 'iot-device-auth', (err as Error).message, rejection);
      return;
    }
    const usesCertificates = core.settings.mode === 'x509' || (core.settings.mode === 'auto' && core.settings.accepted.has('x509'));
    const secretPaths = readers
      .filter((r) => r.secretPath !== undefined)
      .map((r) => credentialPath(RED.util.normalisePropertyExpression(r.secretPath as string) as Array<string | number>))
      .filter((p): p is CredentialPath => p !== undefined);

    // --- receipts held for senders and for split batches ------------------------------------
    const receipts = new HeldReceipts(`${randomBytes(4).toString('hex')}.`, answers.withinMs);
    const expiry = new DeadlineTimer(expire);
    const timeouts = new LogSummary(TIMEOUT_LOG_EVERY_MS);
    let lastTimeoutAt = 0;
    node.settleDelivery = (id: string, outcome: Outcome) => {
      if (receipts.settle(id, outcome)) status.changed();
    };

    function expire(): void {
      const expired = receipts.expire(Date.now());
      if (expired > 0) lastTimeoutAt = Date.now();
      for (let i = 0; i < expired; i++) timeouts.report('not-settled', RED._('iot-device-auth.errors.not-settled', { seconds: answers.withinMs / 1000 }), (text) => node.warn(text));
      armExpiry();
      status.changed();
    }

    function armExpiry(): void {
      const next = receipts.nextDeadline();
      if (next !== undefined) expiry.arm(next);
    }

    // --- messages in ------------------------------------------------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      // One of its own deliveries wired back (a Catch node after a decoder that failed, a
      // Complete node): it settles that delivery, as a buffer's ack input does.
      if (settleIfReturned(node, msg)) {
        done();
        return;
      }
      const h: Handling = { msg, send, done: once(done) };
      // Taken at once: from here on no http response node can answer this sender.
      if (answers.mode === 'stored') h.sender = httpSenderOf(msg);
      attempt(h, () => {
        const input = inputOf(msg);
        if (input instanceof Promise) {
          input.then(
            (i) => attempt(h, () => authenticate(h, i)),
            (err: Error) => attempt(h, () => finish(h, { ok: false, code: 'malformed', message: err.message, status: 400 })),
          );
        } else {
          authenticate(h, input);
        }
      });
    });

    /**
     * Runs a step of handling a message; whatever it throws (in a later tick too: every promise
     * continuation runs through here) becomes a coded rejection, or, when even that throws or the
     * message had already gone on (Node-RED throws where it clones a message it cannot route: for
     * a Complete or Catch node), a log line: never an unhandled rejection.
     */
    function attempt(h: Handling, step: () => void): void {
      try {
        step();
      } catch (err) {
        const message = (err as Error).message;
        if (h.handedOn) {
          node.error(RED._('iot-device-auth.errors.internal', { message }));
          return;
        }
        try {
          refuse(h, { ok: false, code: 'internal', message, status: 503 });
        } catch {
          // Not passed on (it would throw again where Node-RED routes it): logged, answered, done.
          node.error(RED._('iot-device-auth.errors.internal', { message }));
          h.sender?.answer(503, RETRY_AFTER_S);
          h.done();
        }
      }
    }

    function authenticate(h: Handling, input: AuthInput): void {
      const outcome = core.authenticate(input, Date.now());
      if (outcome instanceof Promise) {
        outcome.then(
          (o) => attempt(h, () => finish(h, o)),
          (err: Error) => attempt(h, () => refuse(h, { ok: false, code: 'internal', message: err.message, status: 503 })),
        );
      } else {
        finish(h, outcome);
      }
    }

    /** What the core needs from the message; a Promise when a typed input is asynchronous. */
    function inputOf(msg: NodeMessage): AuthInput | Promise<AuthInput> {
      const req = (msg as { req?: HttpRequestLike }).req;
      const input: AuthInput = { body: msg.payload, fields: {} };
      if (req && typeof req === 'object' && typeof req.method === 'string') {
        const url = typeof req.originalUrl === 'string' ? req.originalUrl : typeof req.url === 'string' ? req.url : '/';
        const contentType = req.headers?.['content-type'];
        input.http = { method: req.method, url, ...(typeof contentType === 'string' ? { contentType } : {}) };
        if (usesCertificates) {
          const chain = peerCertificateChain(req.socket ?? req.client);
          if (chain) input.certificate = chain;
        }
      }
      if (typeof msg.topic === 'string') input.topic = msg.topic;
      const mark = brokerMarkOf(msg);
      if (mark) input.brokerMark = mark;
      // The source keys anonymous rate limits, and lockout after failed credentials.
      const source = sourceOf(msg, req);
      if (typeof source === 'string') input.source = source;
      const pending: Array<Promise<void>> = [];
      for (const { name, reader } of readers) {
        const value = reader.read(msg);
        if (reader.async) pending.push((value as Promise<unknown>).then((v) => void (input.fields[name] = v)));
        else input.fields[name] = value;
      }
      if (sourceReader) {
        const value = sourceReader.read(msg);
        if (sourceReader.async) pending.push((value as Promise<unknown>).then((v) => void (input.source = v === undefined ? undefined : String(v))));
        else input.source = value === undefined ? undefined : String(value);
      }
      return pending.length > 0 ? Promise.all(pending).then(() => input) : input;
    }

    function sourceOf(msg: NodeMessage, req: HttpRequestLike | undefined): string | undefined {
      switch (def.anonymousSource) {
        case 'client':
          return brokerMarkOf(msg)?.client ?? (typeof msg.clientId === 'string' ? msg.clientId : undefined);
        case 'topic':
          return typeof msg.topic === 'string' ? msg.topic : undefined;
        case 'property':
          return undefined;
        default:
          return typeof req?.ip === 'string' ? req.ip : undefined;
      }
    }

    function finish(h: Handling, outcome: AuthOutcome): void {
      const msg = h.msg;
      removeCredentials(msg, secretPaths);
      if (msg[BROKER_PROPERTY] !== undefined) delete msg[BROKER_PROPERTY];
      status.changed();
      if (!outcome.ok) {
        refuse(h, outcome);
        return;
      }
      // The edge sets the reading's time once; a time set before this node stands.
      const timeGiven = msg.timestamp !== undefined;
      msg.device = outcome.device;
      msg.payload = outcome.payload;
      if (!timeGiven) msg.timestamp = outcome.time;
      // A sensor's rejection must not answer the HTTP request its batch came in (no req, no res),
      // nor settle the batch's delivery: it counts as settled for good.
      const rejected = outcome.rejectedSensors?.map((r) => {
        const copy = RED.util.cloneMessage({ ...msg, req: undefined, res: undefined, [DELIVERY_PROPERTY]: undefined } as NodeMessage);
        delete copy.req;
        delete copy.res;
        delete copy[DELIVERY_PROPERTY];
        copy.payload = r.item;
        copy.error = { code: r.code, message: r.message, node: node.id, index: r.index };
        if (rejection.catchErrors) node.error(`${r.code}: ${r.message}`, copy);
        return copy;
      });
      let parts: NodeMessage[] | undefined;
      if (outcome.sensors && core.settings.gateway?.split) {
        const id = RED.util.generateId();
        // Parts are cloned from the message before the last part, the message itself, changes it.
        parts = outcome.sensors.map((s, index, all) => {
          const part = index === all.length - 1 ? msg : RED.util.cloneMessage(msg);
          part.payload = s.item;
          part.device = s.device;
          if (!timeGiven) part.timestamp = s.time;
          part.parts = { id, index, count: all.length, type: 'array' };
          return part;
        });
      }
      const upstream = deliveryOf(msg);
      // A message handed on whole keeps its delivery: whoever settles it settles it upstream.
      if (h.sender || (parts && upstream)) hold(h, parts ?? [msg], parts || h.sender ? upstream : undefined);
      h.handedOn = true;
      h.send([parts ?? msg, rejected && rejected.length > 0 ? rejected : null]);
      h.done();
    }

    /** Hands the messages on with tokens of this node, and answers the sender and the upstream delivery once all are settled. */
    function hold(h: Handling, messages: NodeMessage[], upstream: DeliveryToken | undefined): void {
      const ids = receipts.hold(
        messages.length,
        (outcome) => {
          h.sender?.answer(...answerFor(outcome));
          if (upstream) settleToken(RED, upstream, outcome);
        },
        Date.now(),
      );
      messages.forEach((m, i) => (m[DELIVERY_PROPERTY] = { source: node.id, id: ids[i] }));
      armExpiry();
    }

    /** The sender's answer for a settlement: the receipt, "send it again", or the refusal. */
    function answerFor(outcome: Outcome): [number, number?] {
      if (outcome.ok) return [answers.status];
      if (outcome.retry) return [503, outcome.retryAfterMs !== undefined ? Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)) : RETRY_AFTER_S];
      return [refusalStatus(outcome.code)];
    }

    function refuse(h: Handling, outcome: Rejection): void {
      const msg = h.msg;
      // Whatever identity the message claimed, it was not established.
      delete msg.device;
      // Nothing that could overflow a clone goes on, even for logging (Catch and debug nodes clone).
      if (LIMIT_CODES.has(outcome.code) && msg.payload !== null && typeof msg.payload === 'object' && !Buffer.isBuffer(msg.payload)) delete msg.payload;
      const retryAfter = outcome.retryAfterSeconds ?? (outcome.status === 503 ? RETRY_AFTER_S : undefined);
      if (h.sender) {
        h.sender.answer(outcome.status, retryAfter);
        // Answered here: what leaves for logging must not be answered again.
        delete msg.req;
        msg.statusCode = outcome.status;
      } else if (isHttp(msg)) {
        msg.statusCode = outcome.status;
        msg.payload = statusText(outcome.status);
        msg.headers = outcome.retryAfterSeconds ? { 'Retry-After': String(outcome.retryAfterSeconds) } : {};
      }
      reject(node, msg, outcome.code, outcome.message, h.send, h.done, rejection);
    }

    /** Takes the HTTP response off the message, to answer it here. */
    function httpSenderOf(msg: NodeMessage): HttpSender | undefined {
      const res = (msg as { res?: { _res?: ExpressResponse } }).res;
      if (res === null || typeof res !== 'object') return undefined;
      delete (msg as { res?: unknown }).res;
      const express = res._res;
      let answered = false;
      return {
        answer(code, retryAfterSeconds) {
          if (answered || !express || typeof express.status !== 'function' || express.headersSent || express.writableEnded) return;
          answered = true;
          if (retryAfterSeconds !== undefined) express.set('Retry-After', String(retryAfterSeconds));
          if (code === 204) express.status(204).end();
          else if (code < 300) express.status(code).json({ status: 'stored' });
          else {
            express.set('Content-Type', 'text/plain; charset=utf-8');
            express.status(code).send(statusText(code));
          }
        },
      };
    }

    // --- status ------------------------------------------------------------------------------
    // Rejected requests are counted in the text: news about devices, not about the node.
    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);
    const unsubscribe = registry?.onChange(() => status.changed());
    const unsubscribeShared = shared?.onChange(() => status.changed());

    function currentStatus(): NodeStatus {
      timeouts.tick();
      const waiting = receipts.waiting > 0 ? ` · ${RED._('iot-device-auth.status.waiting', { count: receipts.waiting.toLocaleString('en-US') })}` : '';
      const counts = `✓ ${core.accepted.toLocaleString('en-US')} · ✗ ${core.rejected.toLocaleString('en-US')}${waiting}`;
      // Answers still held, or a timeout still shown: the line changes with time alone.
      const timingOut = Date.now() - lastTimeoutAt < TIMEOUT_SHOWN_MS;
      if (receipts.waiting > 0 || timingOut) status.changed();
      if (registry && registry.state !== 'ready') {
        // Every request is refused until the registry can be used.
        const text = `${RED._(`iot-device-auth.status.registry-${registry.state}`)} · ${counts}`;
        return registry.state === 'failed' ? failing(text) : degraded(text);
      }
      const redisProblem = shared && connectionProblem(shared);
      if (redisProblem) {
        const text = `${redisProblem.text} · ${counts}`;
        return redisProblem.fill === 'red' ? failing(text) : degraded(text);
      }
      if (timingOut) return degraded(`${counts} · ${RED._('iot-device-auth.status.not-settled')}`);
      if (core.accepted === 0 && core.rejected === 0) return idle(counts);
      return working(counts);
    }

    const startup = setImmediate(() => status.now());
    node.on('close', (done: () => void) => {
      clearImmediate(startup);
      status.stop();
      expiry.cancel();
      unsubscribe?.();
      unsubscribeShared?.();
      // Nothing held is answered later by a node that is gone: the senders send again.
      receipts.releaseAll({ ok: false, retry: true, code: 'closed', reason: RED._('iot-device-auth.errors.stopped') });
      timeouts.flush();
      done();
    });
  }

  RED.nodes.registerType('iot-device-auth', IotDeviceAuthNode);
};

function isHttp(msg: NodeMessage): boolean {
  const res = (msg as { res?: unknown }).res;
  return res !== null && typeof res === 'object';
}

/** done() at most once, whatever path a message takes. */
function once(done: Done): Done {
  let called = false;
  return (err) => {
    if (called) return;
    called = true;
    done(err);
  };
}
