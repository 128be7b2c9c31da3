/**
 * An aedes broker that knows the devices: CONNECT is verified against the device registry
 * (username = device id, password = API key, JWT or SAS token), each connection gets a random
 * session token, publishes, subscriptions and wills are checked against topic rules, revoked
 * devices are disconnected at once, each device's packets, retained messages and queued messages
 * are capped, and sessions are kept on disk (file-persistence.ts). Free of Node-RED.
 *
 * Acknowledging "once stored": aedes writes a QoS 1 PUBACK (and stores a QoS 2 publish and
 * writes its PUBREC) after `authorizePublish` called back and before `published` runs, so a
 * receipt can only be held in `authorizePublish`. There, the publish is handed to the flow with a
 * receipt, and aedes is called back when the receipt is answered: taken (PUBACK or PUBREC), or
 * not taken (an error: aedes closes the connection, and the device sends the publish again
 * after it reconnects, as MQTT clients resend every unacknowledged QoS 1/2 publish). While a
 * receipt is held aedes reads nothing more of that connection (it reads a connection's next
 * packets once the last read's are handled), so devices wait, but many devices' publishes
 * share one store write.
 *
 * aedes speaks MQTT 3.1 and 3.1.1; MQTT 5 clients are refused by aedes itself.
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { Aedes, type AuthenticateError, type Client, type Connection, type PublishPacket } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { BrokerIdentitySource, BrokerMark } from '../shared/broker-identity';
import type { DeviceIdentity } from '../shared/device';
import type { DeviceRegistryService, RejectCode, Verdict, VerifyPolicy } from '../shared/device-registry-api';
import { peerCertificateChain } from '../shared/peer-certificate';
import { createAcl, matches, type Acl } from './acl';
import { connectCredential, type ConnectMethod } from './connect';
import { FilePersistence, type SessionLimits } from './file-persistence';
import { limitPacketSize, parserSupportsLimit } from './packet-limit';
import type { StoredPacket } from './session-state';

export interface ListenerSettings {
  host?: string;
  port: number;
  tls?: TlsOptions;
}

export interface BrokerSettings {
  /** The node id marks name. */
  nodeId: string;
  methods: ReadonlySet<ConnectMethod>;
  policy: VerifyPolicy;
  publishTopics: readonly string[];
  subscribeTopics: readonly string[];
  /** A gateway may publish and subscribe for its sensors. */
  gatewaySensors: boolean;
  /** The client id must be the device id, `<device id>:<anything>`, or empty (a clean session). */
  clientIdMustMatch: boolean;
  /** Which device publishes go into the flow. */
  deliver: string;
  /** When a device's QoS 1/2 publish is acknowledged: at once, or once the flow took it (its receipt answered). */
  acknowledge: 'arrival' | 'stored';
  /** Where sessions are kept; undefined: in memory only. */
  persistenceDir?: string;
  /** What one device may hold and send; 0: no limit. */
  limits: SessionLimits & { maxPacketBytes: number };
  tcp?: ListenerSettings;
  ws?: ListenerSettings & { path: string };
}

export interface Delivery {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  device: DeviceIdentity;
  mark: BrokerMark;
}

/** Why the broker refused a connection, a publish, a subscription or a will, or dropped a message. */
export type BrokerCode = RejectCode | 'bad_client_id' | 'topic_not_allowed' | 'retained_limit' | 'queue_full';

export interface ConnectionEvent {
  device?: DeviceIdentity;
  clientId: string;
  address?: string;
  username?: string;
  code?: BrokerCode;
  reason?: string;
  topic?: string;
}

/**
 * Answers a device publish's receipt: with nothing, acknowledged (PUBACK, PUBREC); with a reason,
 * not taken (the connection is closed and the device sends it again). Only the first answer counts.
 */
export type Receipt = (notTaken?: string) => void;

export interface BrokerEvents {
  /** A device publish for the flow; with a receipt to answer when acknowledging "once stored". */
  published(delivery: Delivery, receipt?: Receipt): void;
  online(event: ConnectionEvent): void;
  offline(event: ConnectionEvent): void;
  refused(event: ConnectionEvent): void;
  /** A publish, subscription or will refused (code topic_not_allowed, too_large, retained_limit); a refused publish closes the connection. */
  denied(event: ConnectionEvent & { action: 'publish' | 'subscribe' | 'will' }): void;
  /** A message not queued for a device's session: its queue is full (code queue_full). */
  dropped(event: ConnectionEvent): void;
  /** A device disconnected because a publish of it was not taken (once per connection). */
  notTaken(event: ConnectionEvent): void;
  warning(message: string): void;
}

interface Session {
  client: Client;
  token: string;
  device: DeviceIdentity & { method: string };
  address?: string;
  /** The client certificate it connected with: checked again whenever the registry changes (revocation). */
  certificate?: readonly Buffer[];
  /** When the connection ended; its marks stay good for a while (a device may publish and leave at once). */
  endedAt?: number;
}

/**
 * aedes's heartbeat; it looks for the wills of sessions lost in a crash every four heartbeats.
 * Its default (60 s) publishes them four minutes after a restart; at 2.5 s they come within ten.
 */
const HEARTBEAT_MS = 2_500;

/** How long the marks of an ended connection are still vouched for, and how many ended ones are kept. */
const ENDED_GRACE_MS = 5 * 60_000;
const ENDED_KEPT = 100_000;

/** CONNACK return codes of MQTT 3.1.1. */
const IDENTIFIER_REJECTED = 2;
const SERVER_UNAVAILABLE = 3;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

/** A wrong credential gets 4 whether or not its id is registered or may use the method (no enumeration). */
function connackCode(code: BrokerCode): number {
  switch (code) {
    case 'revoked':
    case 'locked_out':
      return NOT_AUTHORIZED;
    case 'registry_unavailable':
      return SERVER_UNAVAILABLE;
    default:
      return BAD_USERNAME_OR_PASSWORD;
  }
}

function authError(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

function addressOf(client: Client): string | undefined {
  const socket = (client.req?.socket ?? client.conn) as { remoteAddress?: string } | undefined;
  return socket?.remoteAddress;
}

/** What a CONNECT asked for, kept from preConnect for authenticate (aedes hands it only the credentials). */
interface ConnectRequest {
  clientId: string;
  clean: boolean;
  will?: { topic: string };
}

export class BrokerCore implements BrokerIdentitySource {
  private aedes: Aedes | undefined;
  private persistence: FilePersistence | undefined;
  private readonly servers: Array<NetServer | HttpServer> = [];
  private wss: WebSocketServer | undefined;
  private readonly sessions = new Map<string, Session>();
  /** Ended sessions by token, oldest first. */
  private readonly ended = new Map<string, Session>();
  private readonly pending = new WeakMap<Client, Session>();
  private readonly requests = new WeakMap<Client, ConnectRequest>();
  /** Publishes handed to the flow from authorizePublish, which `published` must not hand on again. */
  private readonly held = new WeakSet<object>();
  /** Connections closed because a publish was not taken. */
  private readonly notTaken = new WeakSet<Client>();
  private readonly acl: Acl;
  private readonly deliver: string[];
  private unsubscribe: (() => void) | undefined;
  refused = 0;
  denied = 0;

  constructor(
    private readonly settings: BrokerSettings,
    private readonly registry: DeviceRegistryService,
    private readonly events: BrokerEvents,
  ) {
    const isSensorOf = settings.gatewaySensors ? (gateway: string, id: string) => this.registry.device(id)?.gateway === gateway && this.registry.device(id)?.enabled === true : undefined;
    this.acl = createAcl(settings.publishTopics, settings.subscribeTopics, isSensorOf);
    this.deliver = settings.deliver.split('/');
  }

  get online(): number {
    return this.sessions.size;
  }

  /** Sessions restored from disk at open, for the log. */
  get restored(): { operations: number; skipped: number } | undefined {
    return this.persistence?.loaded;
  }

  async open(): Promise<void> {
    const persistence = new FilePersistence(this.settings.persistenceDir, this.settings.limits, {
      deviceOf: (client) => this.pending.get(client as Client)?.device.id,
      willAllowed: (will) => this.willAllowed(will),
      willDenied: (will) => this.deny('will', { clientId: String(will.clientId), topic: will.topic, code: 'topic_not_allowed', reason: `the will of ${String(will.device ?? will.clientId)} is not on a topic it may publish to` }),
      queueFull: (clientId, device) => this.events.dropped({ clientId, code: 'queue_full', reason: `the queue of ${device} is full`, ...this.knownDevice(device) }),
    });
    persistence.onWriteError = (err) => this.events.warning(`sessions could not be written to disk: ${err.message}`);
    this.persistence = persistence;
    this.aedes = await Aedes.createBroker({
      persistence,
      heartbeatInterval: HEARTBEAT_MS,
      preConnect: (client, packet, callback) => {
        this.requests.set(client, { clientId: packet.clientId ?? '', clean: packet.clean !== false, ...(packet.will ? { will: { topic: packet.will.topic } } : {}) });
        callback(null, true);
      },
      authenticate: (client, username, password, callback) => this.authenticate(client, username, password, callback),
      authorizePublish: (client, packet, callback) => {
        // No client: the will of a session that ended in a crash, published after a restart.
        if (!client) {
          if (this.willAllowed(packet as StoredPacket)) return callback(null);
          return callback(new Error(`the will on ${packet.topic} is not on a topic its device may publish to`));
        }
        const session = this.pending.get(client);
        const device = session?.device;
        const own = device ? this.registry.device(device.id)?.topics?.publish : undefined;
        if (!device || packet.topic.startsWith('$') || this.acl.publishAs(device.id, packet.topic, own) === undefined) {
          this.deny('publish', { clientId: client.id, topic: packet.topic, code: 'topic_not_allowed', ...(device ? { device } : {}) });
          // MQTT 3.1.1 cannot refuse a publish: the connection is closed (MQTT-3.3.5-2).
          return callback(new Error(`not authorized to publish to ${packet.topic}`));
        }
        if (packet.retain && packet.payload.length > 0 && !persistence.claimRetained(device.id, packet.topic, Buffer.byteLength(packet.topic) + packet.payload.length)) {
          this.deny('publish', { clientId: client.id, topic: packet.topic, code: 'retained_limit', reason: `${device.id} holds as many retained messages as it may`, device });
          return callback(new Error(`${device.id} may retain no more messages`));
        }
        // A will is published as its connection closes: nobody waits for its receipt.
        if (this.settings.acknowledge === 'stored' && packet.qos > 0 && !client.closed) return this.holdReceipt(client, packet, callback);
        callback(null);
      },
      authorizeSubscribe: (client, subscription, callback) => {
        const device = this.pending.get(client)?.device;
        const own = device ? this.registry.device(device.id)?.topics?.subscribe : undefined;
        if (device && this.acl.maySubscribe(device.id, subscription.topic, own)) return callback(null, subscription);
        this.deny('subscribe', { clientId: client.id, topic: subscription.topic, code: 'topic_not_allowed', ...(device ? { device } : {}) });
        // A refused subscription is answered with the failure return code (0x80).
        callback(null, null);
      },
      published: (packet, client, callback) => {
        callback(null);
        if (!client || this.held.has(packet)) return;
        const delivery = this.deliveryOf(client, packet);
        if (delivery) this.events.published(delivery);
      },
    });
    const aedes = this.aedes;
    // aedes reports trouble it cannot pin on a client here; unheard, an 'error' event would end the process.
    (aedes as unknown as EventEmitter).on('error', (err: Error) => this.events.warning(`broker: ${err.message}`));
    aedes.on('clientReady', (client) => {
      const session = this.pending.get(client);
      if (!session) return;
      this.sessions.set(client.id, session);
      this.events.online({ device: session.device, clientId: client.id, ...(session.address ? { address: session.address } : {}) });
    });
    aedes.on('clientDisconnect', (client) => {
      const session = this.sessions.get(client.id);
      if (!session || session.client !== client) return;
      this.sessions.delete(client.id);
      session.endedAt = Date.now();
      this.ended.set(session.token, session);
      if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value as string);
      this.events.offline({ device: session.device, clientId: client.id, ...(session.address ? { address: session.address } : {}) });
    });
    this.unsubscribe = this.registry.onChange(() => this.dropRevoked());
  }

  private authenticate(client: Client, username: string | undefined, password: Buffer | undefined, callback: (error: AuthenticateError | null, success: boolean | null) => void): void {
    const address = addressOf(client);
    const refuse = (code: BrokerCode, message: string, returnCode = connackCode(code)) => {
      this.refused++;
      this.events.refused({ clientId: client.id, code, reason: message, ...(username ? { username: username.slice(0, 128) } : {}), ...(address ? { address } : {}) });
      callback(authError(returnCode, message), null);
    };
    const request = this.requests.get(client) ?? { clientId: client.id, clean: true };
    // MQTT-3.1.3-8: a client without an id cannot have a session to come back to.
    if (request.clientId === '' && !request.clean) return refuse('bad_client_id', 'a persistent session needs a client id', IDENTIFIER_REJECTED);
    const certificate = this.settings.methods.has('x509') ? peerCertificateChain(client.req?.socket ?? client.conn) : undefined;
    const credential = connectCredential(username, password, this.settings.methods, certificate);
    if ('code' in credential) return refuse(credential.code, credential.message);
    const finish = (verdict: Verdict) => {
      if (!verdict.ok) return refuse(verdict.code, verdict.message);
      const id = verdict.device.id;
      const clientIdProblem = this.clientIdProblem(request.clientId, id);
      if (clientIdProblem) return refuse('wrong_subject', clientIdProblem, IDENTIFIER_REJECTED);
      if (request.will && (request.will.topic.startsWith('$') || this.acl.publishAs(id, request.will.topic, this.registry.device(id)?.topics?.publish) === undefined)) {
        return refuse('topic_not_allowed', `the will is on ${request.will.topic.slice(0, 128)}, a topic ${id} may not publish to`, NOT_AUTHORIZED);
      }
      if (!request.clean && request.clientId !== '') this.persistence?.bindSession(request.clientId, id);
      this.pending.set(client, { client, token: randomBytes(16).toString('hex'), device: verdict.device, ...(address ? { address } : {}), ...(credential.method === 'x509' ? { certificate: credential.chain } : {}) });
      callback(null, true);
    };
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = this.registry.verify(credential, this.settings.policy, Date.now(), address);
    } catch (err) {
      return refuse('registry_unavailable', (err as Error).message);
    }
    if (verdict instanceof Promise) verdict.then(finish, (err: Error) => refuse('registry_unavailable', err.message));
    else finish(verdict);
  }

  /** A device publish as the flow gets it, or undefined when it does not go into the flow. */
  private deliveryOf(client: Client, packet: Pick<PublishPacket, 'topic' | 'payload' | 'qos' | 'retain'>): Delivery | undefined {
    // The session as authenticated: a publish may come right after CONNACK, before clientReady.
    const session = this.pending.get(client);
    if (!session || !matches(this.deliver, packet.topic.split('/'))) return undefined;
    const own = this.registry.device(session.device.id)?.topics?.publish;
    const speaksFor = this.acl.publishAs(session.device.id, packet.topic, own) ?? session.device.id;
    const device = this.identityOf(session, speaksFor);
    if (!device) return undefined;
    return {
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload ?? ''),
      qos: packet.qos,
      retain: packet.retain === true,
      device,
      mark: { node: this.settings.nodeId, client: client.id, session: session.token, device: speaksFor },
    };
  }

  /** Hands a QoS 1/2 publish to the flow with a receipt, and calls aedes back when it is answered. */
  private holdReceipt(client: Client, packet: PublishPacket, callback: (error?: Error | null) => void): void {
    const delivery = this.deliveryOf(client, packet);
    if (!delivery) return callback(null);
    const handOn = () => {
      this.held.add(packet);
      let answered = false;
      this.events.published(delivery, (notTaken) => {
        if (answered) return;
        answered = true;
        if (notTaken === undefined) return callback(null);
        if (!this.notTaken.has(client) && !client.closed) {
          this.notTaken.add(client);
          this.events.notTaken({ device: delivery.device, clientId: client.id, topic: packet.topic, reason: notTaken, ...(addressOf(client) ? { address: addressOf(client) } : {}) });
        }
        // MQTT 3.1.1 has no negative acknowledgement: the connection is closed, the device resends.
        callback(new Error(`not taken: ${notTaken}`));
      });
    };
    if (packet.qos !== 2) return handOn();
    // A QoS 2 publish sent again after its PUBREC was lost is already stored: it is not handed on twice.
    const persistence = (this.aedes as unknown as { persistence: { incomingGetPacket(client: Client, packet: PublishPacket): Promise<unknown> } }).persistence;
    persistence.incomingGetPacket(client, packet).then(
      () => callback(null),
      () => handOn(),
    );
  }

  /**
   * Why a device may not use a client id, or undefined. The id must be the device's own, or
   * `<device id>:<suffix>` where that is not the id of another registered device (a gateway must
   * not take over its sensor `<gateway>:s-01`'s session), or empty for a clean session.
   */
  private clientIdProblem(requested: string, id: string): string | undefined {
    if (!this.settings.clientIdMustMatch || requested === '' || requested === id) return undefined;
    if (!requested.startsWith(`${id}:`)) return `client id ${requested.slice(0, 64)} is not the device id ${id} (or ${id}:<suffix>)`;
    if (this.registry.device(requested) !== undefined) return `client id ${requested.slice(0, 64)} is another registered device's id`;
    return undefined;
  }

  /** Whether a stored will may be published: the device that set it may still publish there. */
  private willAllowed(will: StoredPacket): boolean {
    // Wills stored before they carried their device: the client id is the device id, or nothing is allowed.
    const device = typeof will.device === 'string' ? will.device : String(will.clientId ?? '');
    const view = this.registry.device(device);
    const topic = will.topic ?? '';
    return view !== undefined && view.enabled && !topic.startsWith('$') && this.acl.publishAs(device, topic, view.topics?.publish) !== undefined;
  }

  private deny(action: 'publish' | 'subscribe' | 'will', event: ConnectionEvent): void {
    this.denied++;
    this.events.denied({ action, ...event });
  }

  /** An event's device, when the registry knows it. */
  private knownDevice(id: string): { device?: DeviceIdentity } {
    const view = this.registry.device(id);
    return view ? { device: { id: view.id } } : {};
  }

  /**
   * Closes the connections of devices the registry no longer accepts: revoked or removed devices,
   * and devices whose client certificate no longer verifies (revoked by serial or fingerprint, on
   * a CRL, its fleet gone).
   */
  private dropRevoked(): void {
    for (const session of this.sessions.values()) {
      if (this.registry.device(session.device.id)?.enabled !== true) {
        this.events.warning(`${session.device.id} is no longer registered or enabled: disconnected`);
        session.client.close();
        continue;
      }
      if (!session.certificate) continue;
      const drop = (verdict: Verdict) => {
        if (verdict.ok || session.client.closed) return;
        this.events.warning(`${session.device.id}: its client certificate no longer verifies (${verdict.code}): disconnected`);
        session.client.close();
      };
      const verdict = this.registry.verify({ method: 'x509', id: session.device.id, chain: session.certificate }, this.settings.policy, Date.now(), session.address);
      if (verdict instanceof Promise) void verdict.then(drop);
      else drop(verdict);
    }
  }

  /**
   * The identity a mark stands for: a session of this broker with that token, live or ended less
   * than five minutes ago, for its own device or (for a gateway) a sensor registered under it,
   * as long as the registry still accepts that device.
   */
  identify(mark: BrokerMark): DeviceIdentity | undefined {
    if (mark.node !== this.settings.nodeId) return undefined;
    const live = this.sessions.get(mark.client);
    const session = live && live.token === mark.session ? live : this.ended.get(mark.session);
    if (!session || session.client.id !== mark.client) return undefined;
    if (session.endedAt !== undefined && Date.now() - session.endedAt > ENDED_GRACE_MS) {
      this.ended.delete(session.token);
      return undefined;
    }
    return this.identityOf(session, mark.device);
  }

  /** Who a session's publish speaks for (its device, or a sensor of a gateway), if the registry still accepts it. */
  private identityOf(session: Session, speaksFor: string): DeviceIdentity | undefined {
    const connected = session.device;
    const view = this.registry.device(speaksFor);
    if (!view || !view.enabled) return undefined;
    const device: DeviceIdentity = { id: view.id, method: connected.method };
    if (speaksFor !== connected.id) {
      if (!this.settings.gatewaySensors || view.gateway !== connected.id) return undefined;
      device.gateway = connected.id;
    }
    if (connected.claims && speaksFor === connected.id) device.claims = connected.claims;
    if (view.meta) device.meta = view.meta;
    return device;
  }

  private addressOf(client: Client): { address?: string } {
    const address = addressOf(client);
    return address ? { address } : {};
  }

  async listen(): Promise<{ tcp?: number; ws?: number }> {
    const aedes = this.aedes as Aedes;
    const plain = aedes.handle as (stream: Connection, request?: unknown) => Client;
    const { maxPacketBytes } = this.settings.limits;
    const handle = (stream: Connection, request?: unknown): Client => {
      const client = plain(stream, request);
      if (maxPacketBytes > 0 && !parserSupportsLimit(client)) {
        // Fail closed: without the cap one publish could take the memory of the whole process.
        this.events.warning('this aedes version does not let the packet size be capped: connection refused (set the packet size limit to 0 to accept it uncapped)');
        stream.destroy();
        return client;
      }
      if (maxPacketBytes > 0) {
        limitPacketSize(client, maxPacketBytes, (err) => {
          const session = this.pending.get(client);
          this.deny('publish', { clientId: client.id ?? '', code: 'too_large', reason: err.message, ...(session ? { device: session.device } : {}), ...this.addressOf(client) });
        });
      }
      return client;
    };
    const bound: { tcp?: number; ws?: number } = {};
    const { tcp, ws } = this.settings;
    if (tcp) {
      const server = tcp.tls ? createTlsServer(tcp.tls, (socket) => handle(socket)) : createNetServer((socket) => handle(socket));
      bound.tcp = await this.bind(server, tcp);
    }
    if (ws) {
      const server = ws.tls ? createHttpsServer(ws.tls) : createHttpServer();
      this.wss = new WebSocketServer({ server, path: ws.path });
      this.wss.on('connection', (socket, request) => {
        const stream = createWebSocketStream(socket);
        stream.on('error', () => socket.terminate());
        handle(stream, request);
      });
      bound.ws = await this.bind(server, ws);
    }
    return bound;
  }

  private bind(server: NetServer | HttpServer, listener: ListenerSettings): Promise<number> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(listener.port, listener.host || undefined, () => {
        server.off('error', reject);
        this.servers.push(server);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  publish(topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new Error('the broker is not running'));
    return new Promise((resolve, reject) => aedes.publish({ cmd: 'publish', topic, payload, qos, retain, dup: false }, (err) => (err ? reject(err) : resolve())));
  }

  /** Stops listening, disconnects every client, and writes the sessions to disk. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    const aedes = this.aedes;
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    this.wss?.close();
    await Promise.all(
      this.servers.splice(0).map(
        (server) =>
          new Promise<void>((resolve) => {
            if ('closeAllConnections' in server) server.closeAllConnections();
            server.close(() => resolve());
          }),
      ),
    );
    this.persistence?.close();
  }

  /** Forgets the sessions on disk (the node was removed). */
  removeSessions(): void {
    this.persistence?.remove();
  }
}
