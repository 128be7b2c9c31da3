/**
 * An aedes persistence that survives restarts without MongoDB or Redis: aedes-persistence's
 * in-memory implementation (resolved from aedes, whose dependency it is) still matches topics for
 * subscriptions and retained messages, and every change that must outlive the process goes to a
 * journal file, one JSON line per operation (session-state.ts), written at the end of the event
 * loop turn that made it. When the journal has grown past a few times the state's size, the
 * state is written as a snapshot (to a temporary file, then renamed) and the journal starts over.
 * At start the snapshot and then the journal are replayed; a line cut short by a crash is skipped.
 * Without a folder it keeps the same state in memory only (the broker's "keep sessions" is off).
 *
 * What is on disk survives a redeploy, a restart and a crash of Node-RED (kill -9 loses at most
 * the changes of the last event loop turn); it is not synced to the disk on every write, so a
 * power cut can lose the last seconds.
 *
 * It also holds each device to its share: retained messages and queued messages per device are
 * capped (SessionLimits), and a will stored at CONNECT carries the device that set it, so that a
 * will published after a crash, when no client is there to check, is checked against that
 * device's topics (willAllowed) instead of published blindly.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { decodeOperation, encodeOperation, NoSuchPacket, SessionState, weight, type Operation, type StoredPacket, type StoredSubscription } from './session-state';

interface ClientRef {
  id: string;
}

/** The async API of aedes-persistence's in-memory implementation, as far as it is used here. */
interface MemoryPersistenceApi {
  setup(broker: unknown): Promise<void>;
  storeRetained(packet: StoredPacket): Promise<void>;
  addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void>;
  removeSubscriptions(client: ClientRef, topics: string[]): Promise<void>;
  cleanSubscriptions(client: ClientRef): Promise<void>;
  destroy(): Promise<void>;
}

const fromAedes = createRequire(require.resolve('aedes'));
const MemoryPersistence = fromAedes('aedes-persistence/asyncPersistence.js') as new () => MemoryPersistenceApi;

const SNAPSHOT = 'sessions.snapshot';
const JOURNAL = 'sessions.journal';
const MIN_COMPACT_BYTES = 4 * 1024 * 1024;

export interface LoadReport {
  operations: number;
  /** Lines that could not be read (a crash cut the last one short). */
  skipped: number;
}

/** What one device may hold in the broker; 0 is no limit. */
export interface SessionLimits {
  retainedPerDevice: number;
  retainedBytesPerDevice: number;
  queuedPerDevice: number;
  queuedBytesPerDevice: number;
}

/** What the broker tells the persistence about its clients, and is told back. */
export interface SessionHooks {
  /** The device an authenticated client is (undefined before it authenticated). */
  deviceOf(client: unknown): string | undefined;
  /** Whether a will may still be published: its device's topics, checked now. */
  willAllowed(will: StoredPacket): boolean;
  /** A message was not queued for a session: its device's queue is full. */
  queueFull(clientId: string, device: string): void;
  /** A stored will was dropped, not published: its device may not publish there (any more). */
  willDenied(will: StoredPacket): void;
}

export class FilePersistence extends MemoryPersistence {
  private readonly state = new SessionState();
  private pending: string[] = [];
  private flushing: NodeJS.Immediate | undefined;
  private fd: number | undefined;
  private journalBytes = 0;
  private compactAt = MIN_COMPACT_BYTES;
  private brokerId: string | undefined;
  /** Retained publishes allowed and not stored yet: topic to the device that published. */
  private readonly retainClaims = new Map<string, string>();
  /** Why the journal could not be written, once: the broker keeps working from memory. */
  onWriteError: (err: Error) => void = () => undefined;
  loaded: LoadReport = { operations: 0, skipped: 0 };

  constructor(
    private readonly dir: string | undefined,
    private readonly limits: SessionLimits,
    private readonly hooks: SessionHooks,
  ) {
    super();
  }

  override async setup(broker: unknown): Promise<void> {
    this.brokerId = (broker as { id?: string }).id;
    await super.setup(broker);
    if (this.dir === undefined) return;
    mkdirSync(this.dir, { recursive: true });
    const replay: Operation[] = [];
    let skipped = 0;
    const journal = join(this.dir, JOURNAL);
    for (const file of [join(this.dir, SNAPSHOT), journal]) {
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line === '') continue;
        try {
          replay.push(decodeOperation(line));
        } catch {
          skipped++;
        }
      }
    }
    for (const op of replay) {
      try {
        this.state.apply(op);
      } catch (err) {
        if (!(err instanceof NoSuchPacket)) throw err;
      }
    }
    // The in-memory part matches topics: give it the subscriptions and retained messages back.
    for (const packet of this.state.retained.values()) await super.storeRetained(packet);
    for (const [id, subs] of this.state.subscriptions) await super.addSubscriptions({ id }, [...subs.values()]);
    this.loaded = { operations: replay.length, skipped };
    this.fd = openSync(journal, 'a');
    this.compact();
  }

  private record(op: Operation): StoredPacket | undefined {
    const result = this.state.apply(op);
    if (this.dir === undefined) return result;
    this.pending.push(encodeOperation(op));
    this.flushing ??= setImmediate(() => this.flush());
    return result;
  }

  // --- what each device holds ------------------------------------------------------------------

  /** Binds a persistent session to its device, so the messages queued for it count against the device. */
  bindSession(clientId: string, device: string): void {
    if (this.state.owners.get(clientId) !== device) this.record({ o: 'owner', c: clientId, d: device });
  }

  /**
   * Whether a device may retain a message of `bytes` on `topic`: within its caps once the message
   * it replaces there (its own) is gone. If so, the topic is claimed for it until stored.
   */
  claimRetained(device: string, topic: string, bytes: number): boolean {
    const { retainedPerDevice: most, retainedBytesPerDevice: mostBytes } = this.limits;
    const held = this.state.retainedBy.get(device) ?? { count: 0, bytes: 0 };
    const replaced = this.state.retained.get(topic);
    const own = replaced?.owner === device;
    const count = held.count - (own ? 1 : 0) + 1;
    const total = held.bytes - (own && replaced ? weight(replaced) : 0) + bytes;
    if ((most > 0 && count > most) || (mostBytes > 0 && total > mostBytes)) return false;
    this.retainClaims.set(topic, device);
    return true;
  }

  /** Retained messages and bytes a device holds. */
  retainedOf(device: string): { count: number; bytes: number } {
    return { ...(this.state.retainedBy.get(device) ?? { count: 0, bytes: 0 }) };
  }

  /** Messages and bytes queued for a device's sessions. */
  queuedOf(device: string): { count: number; bytes: number } {
    return { ...(this.state.queuedBy.get(device) ?? { count: 0, bytes: 0 }) };
  }

  /** The sessions whose device can take one more message of this size. */
  private withRoom(clientIds: string[], packet: StoredPacket): string[] {
    const { queuedPerDevice: most, queuedBytesPerDevice: mostBytes } = this.limits;
    if (most <= 0 && mostBytes <= 0) return clientIds;
    const size = weight(packet);
    const added = new Map<string, { count: number; bytes: number }>();
    return clientIds.filter((clientId) => {
      const device = this.state.ownerOf(clientId);
      const held = this.state.queuedBy.get(device) ?? { count: 0, bytes: 0 };
      const plus = added.get(device) ?? { count: 0, bytes: 0 };
      if ((most > 0 && held.count + plus.count + 1 > most) || (mostBytes > 0 && held.bytes + plus.bytes + size > mostBytes)) {
        this.hooks.queueFull(clientId, device);
        return false;
      }
      added.set(device, { count: plus.count + 1, bytes: plus.bytes + size });
      return true;
    });
  }

  /** Writes what is pending; compacts when the journal has grown enough. */
  flush(): void {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    if (this.pending.length === 0 || this.fd === undefined) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
    try {
      this.journalBytes += writeSync(this.fd, text);
      if (this.journalBytes > this.compactAt) this.compact();
    } catch (err) {
      this.onWriteError(err as Error);
    }
  }

  /** Writes the whole state as a snapshot and empties the journal. */
  private compact(): void {
    if (this.fd === undefined || this.dir === undefined) return;
    let text = '';
    for (const op of this.state.operations()) text += `${encodeOperation(op)}\n`;
    const target = join(this.dir, SNAPSHOT);
    const temporary = `${target}.tmp`;
    const fd = openSync(temporary, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, target);
    ftruncateSync(this.fd, 0);
    this.journalBytes = 0;
    this.compactAt = Math.max(MIN_COMPACT_BYTES, 4 * text.length);
  }

  /** Flushes, snapshots and closes the files (a clean stop leaves an empty journal). */
  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    try {
      this.compact();
    } finally {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }

  /** Forgets everything on disk: the broker node was removed. */
  remove(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.flushing) clearImmediate(this.flushing);
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }

  override async destroy(): Promise<void> {
    this.close();
    await super.destroy();
  }

  // --- subscriptions and retained messages: matched in memory, recorded here -----------------

  override async storeRetained(packet: StoredPacket): Promise<void> {
    await super.storeRetained(packet);
    const topic = packet.topic as string;
    const owner = this.retainClaims.get(topic);
    this.retainClaims.delete(topic);
    this.record({ o: 'retain', p: owner === undefined ? packet : { ...packet, owner } });
  }

  override async addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void> {
    await super.addSubscriptions(client, subs);
    this.record({ o: 'subscribe', c: client.id, s: subs.map(({ topic, qos, rh, rap, nl }) => ({ topic, qos, rh, rap, nl })) });
  }

  override async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    await super.removeSubscriptions(client, topics);
    this.record({ o: 'unsubscribe', c: client.id, t: topics });
  }

  override async cleanSubscriptions(client: ClientRef): Promise<void> {
    await super.cleanSubscriptions(client);
    this.record({ o: 'cleanSubscriptions', c: client.id });
  }

  // --- queued messages, inbound QoS 2, wills: kept here -------------------------------------

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet);
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    const clients = this.withRoom(
      subs.map((s) => s.clientId),
      packet,
    );
    if (clients.length > 0) this.record({ o: 'enqueue', c: clients, p: packet });
  }

  async outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    this.record({ o: 'update', c: client.id, p: packet });
  }

  async outgoingClearMessageId(client: ClientRef, packet: { messageId: number }): Promise<StoredPacket | undefined> {
    return this.record({ o: 'clear', c: client.id, m: packet.messageId });
  }

  outgoingStream(client: ClientRef): Readable {
    return Readable.from([...(this.state.outgoing.get(client.id) ?? [])]);
  }

  async incomingStorePacket(client: ClientRef, packet: StoredPacket): Promise<void> {
    this.record({ o: 'storeIncoming', c: client.id, p: packet });
  }

  async incomingGetPacket(client: ClientRef, packet: { messageId: number }): Promise<StoredPacket> {
    const found = this.state.incoming.get(client.id)?.get(packet.messageId);
    if (!found) throw new NoSuchPacket();
    return found;
  }

  async incomingDelPacket(client: ClientRef, packet: { messageId: number }): Promise<void> {
    if (!this.state.incoming.get(client.id)?.has(packet.messageId)) throw new NoSuchPacket();
    this.record({ o: 'deleteIncoming', c: client.id, m: packet.messageId });
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    if (this.state.incoming.has(client.id)) this.record({ o: 'cleanIncoming', c: client.id });
  }

  async putWill(client: ClientRef, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.brokerId;
    packet.clientId = client.id;
    const device = this.hooks.deviceOf(client);
    this.record({ o: 'putWill', c: client.id, p: device === undefined ? packet : { ...packet, device } });
  }

  async getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.state.wills.get(client.id);
  }

  async delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.state.wills.has(client.id) ? this.record({ o: 'deleteWill', c: client.id }) : undefined;
  }

  /**
   * The wills of sessions whose broker is gone, to be published now with no client to check
   * them: a will its device may not publish (any more) is dropped here and reported instead.
   */
  streamWill(brokers: Record<string, unknown> = {}): Readable {
    const due = [...this.state.wills.values()].filter((will) => !brokers[will.brokerId as string]);
    return Readable.from(
      due.filter((will) => {
        if (this.hooks.willAllowed(will)) return true;
        this.record({ o: 'deleteWill', c: will.clientId as string });
        this.hooks.willDenied(will);
        return false;
      }),
    );
  }
}
