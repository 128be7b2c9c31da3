/**
 * iot-device-auth: the Node-RED side of the device-auth pipeline. Reads where the credentials are
 * (typed inputs), hands them to the core, removes credential material from the message, and
 * sends it on as authenticated (msg.device) or rejected (msg.error, and msg.statusCode for HTTP).
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { identifyByBroker, brokerMarkOf, BROKER_PROPERTY } from '../shared/broker-identity';
import { reject } from '../shared/coded-error';
import { registryService, type DeviceRegistryService } from '../shared/device-registry-api';
import { peerCertificateChain } from '../shared/peer-certificate';
import { throttled } from '../shared/throttle';
import { propertyReader, type PropertyReader } from '../shared/typed-property';
import { DeviceAuthCore, statusText, type AuthInput, type AuthMode, type AuthOutcome, type CredentialFields } from './auth-core';
import { CREDENTIAL_DEFAULTS, settingsFromProperties, type DeviceAuthProperties } from './node-config';
import { credentialPath, removeCredentials, type CredentialPath } from './scrub';

type Send = (msg: Array<NodeMessage | NodeMessage[] | null>) => void;
type Done = (err?: Error) => void;

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

export = function register(RED: NodeAPI): void {
  function IotDeviceAuthNode(this: Node, def: NodeDef & DeviceAuthProperties): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true };

    let core: DeviceAuthCore;
    let readers: Array<{ name: keyof CredentialFields; reader: PropertyReader; secretPath?: string }>;
    let sourceReader: PropertyReader | undefined;
    let registry: DeviceRegistryService | undefined;
    try {
      const settings = settingsFromProperties(def);
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
      core = new DeviceAuthCore(settings, registry, (mark) => identifyByBroker(RED, mark as never));
    } catch (err) {
      const message = (err as Error).message;
      node.error(RED._('iot-device-auth.errors.invalid-config', { message }));
      node.status({ fill: 'red', shape: 'ring', text: RED._('iot-device-auth.status.invalid-config') });
      node.on('input', (msg: NodeMessage, send: Send, done: Done) => reject(node, msg, 'invalid_config', message, send, done, rejection));
      return;
    }
    const usesCertificates = core.settings.mode === 'x509' || (core.settings.mode === 'auto' && core.settings.accepted.has('x509'));
    const secretPaths = readers
      .filter((r) => r.secretPath !== undefined)
      .map((r) => credentialPath(RED.util.normalisePropertyExpression(r.secretPath as string) as Array<string | number>))
      .filter((p): p is CredentialPath => p !== undefined);

    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      try {
        const input = inputOf(msg);
        if (input instanceof Promise) {
          input
            .then(
              (i) => authenticate(msg, i, send, done),
              (err: Error) => finish(msg, { ok: false, code: 'malformed', message: err.message, status: 400 }, send, done),
            )
            // Whatever throws later is still answered, never an unhandled rejection.
            .catch((err: Error) => reject(node, msg, 'internal', err.message, send, done, rejection));
        } else {
          authenticate(msg, input, send, done);
        }
      } catch (err) {
        reject(node, msg, 'internal', (err as Error).message, send, done, rejection);
      }
    });

    function authenticate(msg: NodeMessage, input: AuthInput, send: Send, done: Done): void {
      const outcome = core.authenticate(input, Date.now());
      if (outcome instanceof Promise) {
        outcome.then((o) => finish(msg, o, send, done)).catch((err: Error) => reject(node, msg, 'internal', err.message, send, done, rejection));
      } else {
        finish(msg, outcome, send, done);
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

    function finish(msg: NodeMessage, outcome: AuthOutcome, send: Send, done: Done): void {
      removeCredentials(msg, secretPaths);
      if (msg[BROKER_PROPERTY] !== undefined) delete msg[BROKER_PROPERTY];
      status.schedule();
      if (!outcome.ok) {
        // Whatever identity the message claimed, it was not established.
        delete msg.device;
        if (isHttp(msg)) {
          msg.statusCode = outcome.status;
          msg.payload = statusText(outcome.status);
          msg.headers = outcome.retryAfterSeconds ? { 'Retry-After': String(outcome.retryAfterSeconds) } : {};
        }
        reject(node, msg, outcome.code, outcome.message, send, done, rejection);
        return;
      }
      msg.device = outcome.device;
      msg.payload = outcome.payload;
      // A sensor's rejection must not answer the HTTP request its batch came in: no req, no res.
      const rejected = outcome.rejectedSensors?.map((r) => {
        const copy = RED.util.cloneMessage({ ...msg, req: undefined, res: undefined } as NodeMessage);
        delete copy.req;
        delete copy.res;
        copy.payload = r.item;
        copy.error = { code: r.code, message: r.message, node: node.id, index: r.index };
        if (rejection.catchErrors) node.error(`${r.code}: ${r.message}`, copy);
        return copy;
      });
      let accepted: NodeMessage | NodeMessage[] = msg;
      if (outcome.sensors && core.settings.gateway?.split) {
        const id = RED.util.generateId();
        // Parts are cloned from the message before the last part, the message itself, changes it.
        accepted = outcome.sensors.map((s, index, all) => {
          const part = index === all.length - 1 ? msg : RED.util.cloneMessage(msg);
          part.payload = s.item;
          part.device = s.device;
          const at = (s.item as { timestamp?: unknown }).timestamp;
          if (typeof at === 'number') part.timestamp = at;
          part.parts = { id, index, count: all.length, type: 'array' };
          return part;
        });
      }
      send([accepted, rejected && rejected.length > 0 ? rejected : null]);
      done();
    }

    // --- status ------------------------------------------------------------------------------
    const status = throttled(updateStatus, STATUS_EVERY_MS);
    const unsubscribe = registry?.onChange(() => status.schedule());

    function updateStatus(): void {
      const counts = `✓ ${core.accepted.toLocaleString('en-US')} · ✗ ${core.rejected.toLocaleString('en-US')}`;
      if (registry && registry.state !== 'ready') {
        node.status({ fill: registry.state === 'failed' ? 'red' : 'yellow', shape: 'ring', text: `${RED._(`iot-device-auth.status.registry-${registry.state}`)} · ${counts}` });
        return;
      }
      node.status({ fill: core.rejected > 0 ? 'yellow' : 'green', shape: core.accepted > 0 ? 'dot' : 'ring', text: counts });
    }

    const startup = setImmediate(() => status.now());
    node.on('close', (done: () => void) => {
      clearImmediate(startup);
      status.cancel();
      unsubscribe?.();
      done();
    });
  }

  RED.nodes.registerType('iot-device-auth', IotDeviceAuthNode);
};

function isHttp(msg: NodeMessage): boolean {
  const res = (msg as { res?: unknown }).res;
  return res !== null && typeof res === 'object';
}
