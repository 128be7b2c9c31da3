/**
 * An aedes persistence that survives restarts without MongoDB or Redis: aedes-persistence's
 * in-memory implementation (resolved from aedes, whose dependency it is) still matches topics for
 * subscriptions and retained messages, and every change that must outlive the process goes to a
 * journal file, one JSON line per operation (session-state.ts), written at the end of the event
 * loop turn that made it. When the journal has grown past a few times the state's size, the
 * state is written as a snapshot (to a temporary file, then renamed) and the journal starts over.
 * At start the snapshot and then the journal are replayed; a line cut short by a crash is skipped.
 *
 * What is on disk survives a redeploy, a restart and a crash of Node-RED (kill -9 loses at most
 * the changes of the last event loop turn); it is not synced to the disk on every write, so a
 * power cut can lose the last seconds.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { decodeOperation, encodeOperation, NoSuchPacket, SessionState, type Operation, type StoredPacket, type StoredSubscription } from './session-state';

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

export class FilePersistence extends MemoryPersistence {
  private readonly state = new SessionState();
  private pending: string[] = [];
  private flushing: NodeJS.Immediate | undefined;
  private fd: number | undefined;
  private journalBytes = 0;
  private compactAt = MIN_COMPACT_BYTES;
  private brokerId: string | undefined;
  /** Why the journal could not be written, once: the broker keeps working from memory. */
  onWriteError: (err: Error) => void = () => undefined;
  loaded: LoadReport = { operations: 0, skipped: 0 };

  constructor(private readonly dir: string) {
    super();
  }

  override async setup(broker: unknown): Promise<void> {
    this.brokerId = (broker as { id?: string }).id;
    await super.setup(broker);
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
    this.pending.push(encodeOperation(op));
    this.flushing ??= setImmediate(() => this.flush());
    return result;
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
    if (this.fd === undefined) return;
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
    rmSync(this.dir, { recursive: true, force: true });
  }

  override async destroy(): Promise<void> {
    this.close();
    await super.destroy();
  }

  // --- subscriptions and retained messages: matched in memory, recorded here -----------------

  override async storeRetained(packet: StoredPacket): Promise<void> {
    await super.storeRetained(packet);
    this.record({ o: 'retain', p: packet });
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
    this.record({ o: 'enqueue', c: [sub.clientId], p: packet });
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    if (subs.length > 0) this.record({ o: 'enqueue', c: subs.map((s) => s.clientId), p: packet });
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
    this.record({ o: 'putWill', c: client.id, p: packet });
  }

  async getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.state.wills.get(client.id);
  }

  async delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.state.wills.has(client.id) ? this.record({ o: 'deleteWill', c: client.id }) : undefined;
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return Readable.from([...this.state.wills.values()].filter((will) => !brokers[will.brokerId as string]));
  }
}
