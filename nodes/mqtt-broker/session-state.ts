/**
 * The part of an MQTT broker's state that must outlive the broker: retained messages,
 * subscriptions of persistent sessions, their queued outgoing messages, inbound QoS 2 messages
 * awaiting PUBREL, and wills. Every change is an operation; the same operations are applied live
 * and replayed from the journal at start, so what is restored is exactly what was there.
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
  | { o: 'deleteWill'; c: string };

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

export class SessionState {
  readonly retained = new Map<string, StoredPacket>();
  readonly subscriptions = new Map<string, Map<string, StoredSubscription>>();
  readonly outgoing = new Map<string, StoredPacket[]>();
  readonly incoming = new Map<string, Map<number, StoredPacket>>();
  readonly wills = new Map<string, StoredPacket>();

  /** Applies one operation; throws NoSuchPacket where aedes expects it. */
  apply(op: Operation): StoredPacket | undefined {
    switch (op.o) {
      case 'retain':
        if (!op.p.payload || op.p.payload.length === 0) this.retained.delete(op.p.topic as string);
        else this.retained.set(op.p.topic as string, op.p);
        return undefined;
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
