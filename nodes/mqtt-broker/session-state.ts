/**
 * The part of an MQTT broker's state that must outlive the broker: retained messages,
 * subscriptions of persistent sessions, their queued outgoing messages, inbound QoS 2 messages
 * awaiting PUBREL, wills, and which device each persistent session and retained message belongs
 * to. Every change is an operation; the same operations are applied live and replayed from the
 * journal at start, so what is restored is exactly what was there.
 *
 * What each device holds (its retained messages, the messages queued for its sessions) is
 * counted as the operations apply, so the broker can cap it per device.
 *
 * The outgoing, incoming and will rules follow aedes-persistence's in-memory implementation.
 */

export interface StoredPacket {
  cmd: string;
  topic?: string;
  payload?: Buffer;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
  [field: string]: unknown;
}

export interface StoredSubscription {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
}

export type Operation =
  | { o: 'retain'; p: StoredPacket }
  | { o: 'subscribe'; c: string; s: StoredSubscription[] }
  | { o: 'unsubscribe'; c: string; t: string[] }
  | { o: 'cleanSubscriptions'; c: string }
  | { o: 'enqueue'; c: string[]; p: StoredPacket }
  | { o: 'update'; c: string; p: StoredPacket }
  | { o: 'clear'; c: string; m: number }
  | { o: 'storeIncoming'; c: string; p: StoredPacket }
  | { o: 'deleteIncoming'; c: string; m: number }
  | { o: 'cleanIncoming'; c: string }
  | { o: 'putWill'; c: string; p: StoredPacket }
  | { o: 'deleteWill'; c: string }
  /** Client id c is a session of device d (persistent sessions: their queues count against d). */
  | { o: 'owner'; c: string; d: string };

/** How much a device holds: messages and their bytes (topic and payload). */
export interface Held {
  count: number;
  bytes: number;
}

export class NoSuchPacket extends Error {
  constructor() {
    super('no such packet');
  }
}

/** A copy as aedes-packet makes it: a queued QoS 1/2 message has no packet id until it is sent. */
function queued(packet: StoredPacket): StoredPacket {
  const copy: StoredPacket = {
    cmd: packet.cmd || 'publish',
    brokerId: packet.brokerId,
    brokerCounter: packet.brokerCounter ?? 0,
    topic: packet.topic,
    payload: packet.payload ?? Buffer.alloc(0),
    qos: packet.qos ?? 0,
    retain: packet.retain ?? false,
    dup: packet.dup ?? false,
  };
  if (packet.clientId !== undefined) copy.clientId = packet.clientId;
  if (packet.nl !== undefined) copy.nl = packet.nl;
  if ((copy.qos ?? 0) > 0 || copy.cmd !== 'publish') copy.messageId = undefined;
  return copy;
}

/** What a message weighs against a device's caps. */
export function weight(packet: StoredPacket): number {
  return Buffer.byteLength(packet.topic ?? '') + (packet.payload?.length ?? 0);
}

function add(map: Map<string, Held>, key: string, count: number, bytes: number): void {
  const held = map.get(key) ?? { count: 0, bytes: 0 };
  held.count += count;
  held.bytes += bytes;
  if (held.count <= 0) map.delete(key);
  else map.set(key, held);
}

export class SessionState {
  readonly retained = new Map<string, StoredPacket>();
  readonly subscriptions = new Map<string, Map<string, StoredSubscription>>();
  readonly outgoing = new Map<string, StoredPacket[]>();
  readonly incoming = new Map<string, Map<number, StoredPacket>>();
  readonly wills = new Map<string, StoredPacket>();
  /** Client id to device id, for persistent sessions. */
  readonly owners = new Map<string, string>();
  /** Retained messages by the device that published them (the packet's `owner`). */
  readonly retainedBy = new Map<string, Held>();
  /** Queued messages by device (the session's owner, else the client id itself). */
  readonly queuedBy = new Map<string, Held>();

  /** Whom a session's queue counts against. */
  ownerOf(clientId: string): string {
    return this.owners.get(clientId) ?? clientId;
  }

  /** Applies one operation; throws NoSuchPacket where aedes expects it. */
  apply(op: Operation): StoredPacket | undefined {
    switch (op.o) {
      case 'retain': {
        const topic = op.p.topic as string;
        const before = this.retained.get(topic);
        if (typeof before?.owner === 'string') add(this.retainedBy, before.owner, -1, -weight(before));
        if (!op.p.payload || op.p.payload.length === 0) {
          this.retained.delete(topic);
        } else {
          this.retained.set(topic, op.p);
          if (typeof op.p.owner === 'string') add(this.retainedBy, op.p.owner, 1, weight(op.p));
        }
        return undefined;
      }
      case 'owner': {
        // What the session already holds moves to its (new) owner.
        const queue = this.outgoing.get(op.c) ?? [];
        const bytes = queue.reduce((sum, p) => sum + weight(p), 0);
        add(this.queuedBy, this.ownerOf(op.c), -queue.length, -bytes);
        this.owners.set(op.c, op.d);
        add(this.queuedBy, op.d, queue.length, bytes);
        return undefined;
      }
      case 'subscribe': {
        let subs = this.subscriptions.get(op.c);
        if (!subs) this.subscriptions.set(op.c, (subs = new Map()));
        for (const sub of op.s) subs.set(sub.topic, sub);
        return undefined;
      }
      case 'unsubscribe': {
        const subs = this.subscriptions.get(op.c);
        if (!subs) return undefined;
        for (const topic of op.t) subs.delete(topic);
        if (subs.size === 0) this.subscriptions.delete(op.c);
        return undefined;
      }
      case 'cleanSubscriptions':
        this.subscriptions.delete(op.c);
        return undefined;
      case 'enqueue':
        for (const client of op.c) {
          let queue = this.outgoing.get(client);
          if (!queue) this.outgoing.set(client, (queue = []));
          queue.push(queued(op.p));
          add(this.queuedBy, this.ownerOf(client), 1, weight(op.p));
        }
        return undefined;
      case 'update': {
        const queue = this.outgoing.get(op.c) ?? [];
        for (let i = 0; i < queue.length; i++) {
          const held = queue[i];
          if (held.brokerId === op.p.brokerId) {
            if (held.brokerCounter === op.p.brokerCounter) {
              held.messageId = op.p.messageId;
              return undefined;
            }
          } else if (held.messageId === op.p.messageId) {
            add(this.queuedBy, this.ownerOf(op.c), 0, weight(op.p) - weight(held));
            queue[i] = op.p;
            return undefined;
          }
        }
        throw new NoSuchPacket();
      }
      case 'clear': {
        const queue = this.outgoing.get(op.c);
        const at = queue ? queue.findIndex((p) => p.messageId === op.m) : -1;
        if (!queue || at < 0) return undefined;
        const [removed] = queue.splice(at, 1);
        if (queue.length === 0) this.outgoing.delete(op.c);
        add(this.queuedBy, this.ownerOf(op.c), -1, -weight(removed));
        return removed;
      }
      case 'storeIncoming': {
        let store = this.incoming.get(op.c);
        if (!store) this.incoming.set(op.c, (store = new Map()));
        const copy = queued(op.p);
        copy.messageId = op.p.messageId;
        store.set(op.p.messageId as number, copy);
        return undefined;
      }
      case 'deleteIncoming': {
        const store = this.incoming.get(op.c);
        if (!store?.delete(op.m)) throw new NoSuchPacket();
        if (store.size === 0) this.incoming.delete(op.c);
        return undefined;
      }
      case 'cleanIncoming':
        this.incoming.delete(op.c);
        return undefined;
      case 'putWill':
        this.wills.set(op.c, op.p);
        return undefined;
      case 'deleteWill': {
        const will = this.wills.get(op.c);
        this.wills.delete(op.c);
        return will;
      }
    }
  }

  /** Everything, as operations that rebuild it: what a snapshot holds. */
  *operations(): Generator<Operation> {
    // Owners first: the queues restored after them count against their devices.
    for (const [c, d] of this.owners) yield { o: 'owner', c, d };
    for (const p of this.retained.values()) yield { o: 'retain', p };
    for (const [c, subs] of this.subscriptions) yield { o: 'subscribe', c, s: [...subs.values()] };
    for (const [c, queue] of this.outgoing) {
      for (const p of queue) {
        yield { o: 'enqueue', c: [c], p };
        // A queued copy loses its packet id; a packet already sent keeps it.
        if (p.messageId !== undefined) yield { o: 'update', c, p };
      }
    }
    for (const [c, store] of this.incoming) for (const p of store.values()) yield { o: 'storeIncoming', c, p };
    for (const [c, p] of this.wills) yield { o: 'putWill', c, p };
  }
}

/** One line of JSON per operation, payloads in base64. */
export function encodeOperation(op: Operation): string {
  if (!('p' in op) || !Buffer.isBuffer(op.p.payload)) return JSON.stringify(op);
  return JSON.stringify({ ...op, p: { ...op.p, payload: { b64: op.p.payload.toString('base64') } } });
}

export function decodeOperation(line: string): Operation {
  return JSON.parse(line, (key, value: unknown) =>
    key === 'payload' && value !== null && typeof value === 'object' && typeof (value as { b64?: unknown }).b64 === 'string' ? Buffer.from((value as { b64: string }).b64, 'base64') : value,
  ) as Operation;
}
