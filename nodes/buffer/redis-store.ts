/**
 * The Redis Streams backend, for several Node-RED instances sharing one queue (ioredis).
 *
 *  - accept: XADD into the stream, in a script that first checks the MAXLEN cap (refuse), or
 *    trims the oldest entries to it (drop oldest) and says how many it dropped;
 *  - deliver: a consumer group, each instance one consumer reading with XREADGROUP (its own
 *    pending entries first, after a restart under the same consumer name);
 *  - settle: XACK and XDEL in one script, so the stream holds exactly what is still queued;
 *  - take over: XAUTOCLAIM moves entries another consumer left pending for `claimIdleMs` (it
 *    died) to this one. This consumer keeps its own entries from being taken while it still
 *    works on them by claiming them to itself again (XCLAIM JUSTID resets their idle time).
 *
 * An entry is accepted once Redis answered the XADD: durability beyond that is Redis's own
 * (appendonly with appendfsync everysec or always).
 */
import { Redis } from 'ioredis';
import { encodedLength, StoreError, type EncodedMessage, type QueueStore, type RecoveryReport, type StoreCallback, type StoredMessage } from './store';

export interface RedisStoreOptions {
  url: string;
  username?: string;
  password?: string;
  stream: string;
  group: string;
  consumer: string;
  /** Most entries the stream may hold; 0 for no cap. */
  maxLength: number;
  whenFull: 'refuse' | 'drop-oldest';
  /** Entries pending this long at a consumer are taken over (it is presumed dead). */
  claimIdleMs: number;
  /** Entries read ahead of delivery. */
  prefetch: number;
  /** How long one blocking read waits. */
  blockMs?: number;
}

export class RedisMessage implements StoredMessage {
  settled = false;
  touchedAt = Date.now();
  constructor(
    readonly id: string,
    readonly seq: number,
    readonly key: string,
    readonly acceptedAt: number,
    readonly body: Buffer,
    public attempts: number,
  ) {}
  get size(): number {
    return this.body.length + this.key.length;
  }

  get ref(): string {
    return this.id;
  }
}

interface StreamEntry {
  id: string;
  fields: Map<string, Buffer> | undefined;
}

/** Scripts run atomically in Redis (defined with ioredis's defineCommand). */
interface BufferScripts {
  iotBufferAdd(stream: string, maxLength: number, mode: string, body: EncodedMessage, key: string, acceptedAt: number): Promise<[string, number]>;
  iotBufferAck(stream: string, group: string, ...ids: string[]): Promise<number>;
  iotBufferPurge(stream: string): Promise<number>;
}

const ADD_SCRIPT = `
local max = tonumber(ARGV[1])
local dropped = 0
if max > 0 then
  local length = redis.call('XLEN', KEYS[1])
  if length >= max then
    if ARGV[2] == 'refuse' then return {'', length} end
    dropped = length + 1 - max
    return {redis.call('XADD', KEYS[1], 'MAXLEN', '=', max, '*', 'm', ARGV[3], 'k', ARGV[4], 't', ARGV[5]), dropped}
  end
end
return {redis.call('XADD', KEYS[1], '*', 'm', ARGV[3], 'k', ARGV[4], 't', ARGV[5]), dropped}`;

const ACK_SCRIPT = `
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))`;

const PURGE_SCRIPT = `
local length = redis.call('XLEN', KEYS[1])
redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
return length`;

/** Lua's unpack() takes a few thousand values at most. */
const IDS_PER_SCRIPT = 1000;
const POLL_MS = 1_000;
const RETRY_MS = 1_000;

export class RedisStore implements QueueStore<RedisMessage> {
  readonly kind = 'redis';
  onReadable: () => void = () => undefined;
  onProblem: (err: StoreError) => void = () => undefined;

  private readonly client: Redis & BufferScripts;
  private readonly reader: Redis;
  private count = 0;
  private oldestAt: number | undefined;
  private droppedByRedis = 0;
  private seq = 0;
  private prefetched: RedisMessage[] = [];
  /** Ids of the entries read ahead (prefetched), to skip an entry read or claimed twice. */
  private readonly prefetchedIds = new Set<string>();
  private readonly handedOut = new Map<string, RedisMessage>();
  private retryAcks: string[] = [];
  private connected = false;
  private closed = false;
  private claiming = false;
  private wantMore: (() => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private reading: Promise<void> | undefined;
  private markClosed: () => void = () => undefined;
  /** Resolves on close: a read waiting for a Redis that never comes back must not hold it up. */
  private readonly whenClosed = new Promise<undefined>((resolve) => (this.markClosed = () => resolve(undefined)));
  private lastProblem = '';

  constructor(private readonly options: RedisStoreOptions) {
    const common = { username: options.username || undefined, password: options.password || undefined, lazyConnect: true, retryStrategy: (times: number) => Math.min(times * 200, 2_000) };
    // callBuffer() loses its command name when auto-pipelined (ioredis 6): XAUTOCLAIM goes alone.
    this.client = new Redis(options.url, {
      ...common,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands: ['xautoclaim'],
      maxRetriesPerRequest: 1,
    }) as Redis & BufferScripts;
    this.client.defineCommand('iotBufferAdd', { numberOfKeys: 1, lua: ADD_SCRIPT });
    this.client.defineCommand('iotBufferAck', { numberOfKeys: 1, lua: ACK_SCRIPT });
    this.client.defineCommand('iotBufferPurge', { numberOfKeys: 1, lua: PURGE_SCRIPT });
    this.reader = new Redis(options.url, { ...common, maxRetriesPerRequest: null });
    this.client.on('error', (err: Error) => this.problem(`Redis at ${redactedUrl(options.url)}: ${err.message}`));
    this.reader.on('error', () => undefined);
    this.client.on('ready', () => {
      void this.ensureGroup().then(() => {
        this.connected = true;
        this.lastProblem = '';
        return this.poll();
      });
    });
    this.client.on('close', () => {
      if (this.connected && !this.closed) this.problem(`lost the connection to Redis at ${redactedUrl(options.url)}`);
      this.connected = false;
    });
  }

  get messages(): number {
    return this.count;
  }

  /** Redis counts entries, not bytes: the size capacity does not apply to this backend. */
  get bytes(): number {
    return 0;
  }

  /** Entries Redis trimmed to stay under the cap (drop-oldest). */
  get dropped(): number {
    return this.droppedByRedis;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /**
   * Connects and starts reading. A Redis that cannot be reached yet is no failure: the store
   * refuses messages (backend_unavailable) until it is, and keeps trying.
   */
  async open(): Promise<RecoveryReport> {
    if (this.reading) return { messages: this.count, bytes: 0, problems: [] };
    // Connecting goes on in the background (and again after every loss): messages are refused
    // with backend_unavailable until Redis answers.
    this.client.connect().catch(() => undefined);
    this.reader.connect().catch(() => undefined);
    const claimEvery = Math.max(250, Math.min(this.options.claimIdleMs / 2, 10_000));
    this.timers.push(setInterval(() => void this.claim(), claimEvery), setInterval(() => void this.poll(), POLL_MS));
    this.reading = this.readLoop();
    return { messages: this.count, bytes: 0, problems: [] };
  }

  sizeOf(key: string, body: EncodedMessage): number {
    return encodedLength(body) + key.length;
  }

  append(key: string, body: EncodedMessage, acceptedAt: number, done: StoreCallback): void {
    if (this.closed || !this.connected) {
      queueMicrotask(() => done(new StoreError(this.closed ? 'closed' : 'backend_unavailable', this.closed ? 'the store is closed' : `Redis at ${redactedUrl(this.options.url)} is not reachable`)));
      return;
    }
    const { stream, maxLength, whenFull } = this.options;
    // Without a cap a plain XADD does; with one, the script checks or trims atomically.
    const added: Promise<[string, number]> =
      maxLength > 0
        ? this.client.iotBufferAdd(stream, maxLength, whenFull === 'refuse' ? 'refuse' : 'drop', body, key, acceptedAt)
        : this.client.xadd(stream, '*', 'm', body, 'k', key, 't', acceptedAt).then((id) => [id ?? '', 0]);
    added.then(
      ([id, dropped]) => {
        if (!id) {
          done(new StoreError('queue_full', `the stream ${stream} is full (${dropped} of ${maxLength} entries)`));
          return;
        }
        this.count += 1 - dropped;
        this.droppedByRedis += dropped;
        this.oldestAt ??= acceptedAt;
        done(null);
      },
      (err: Error) => done(new StoreError('backend_unavailable', `Redis did not store the message: ${err.message}`, { cause: err })),
    );
  }

  take(max: number): RedisMessage[] {
    const out = this.prefetched.splice(0, max);
    for (const m of out) {
      this.prefetchedIds.delete(m.id);
      this.handedOut.set(m.id, m);
    }
    if (this.prefetched.length < this.options.prefetch) this.wantMore?.();
    return out;
  }

  nextAcceptedAt(): number | undefined {
    return this.oldestAt ?? this.prefetched[0]?.acceptedAt;
  }

  settle(messages: RedisMessage[], done: StoreCallback): void {
    const ids: string[] = [];
    for (const m of messages) {
      if (m.settled) continue;
      m.settled = true;
      this.handedOut.delete(m.id);
      ids.push(m.id);
    }
    this.count = Math.max(0, this.count - ids.length);
    if (ids.length === 0) {
      queueMicrotask(() => done(null));
      return;
    }
    this.ack(ids).then(
      () => done(null),
      (err: Error) => {
        // Settled here all the same; the acknowledgement is sent again until Redis takes it.
        this.retryAcks.push(...ids);
        this.problem(`Redis did not take an acknowledgement (${err.message}): retrying`);
        this.timers.push(setTimeout(() => void this.retryAcknowledgements(), RETRY_MS));
        done(null);
      },
    );
  }

  /** Redis counts deliveries itself (XPENDING); nothing to write. */
  noteAttempt(): void {}

  purge(done: (err: StoreError | null, removed: number) => void): void {
    for (const m of this.handedOut.values()) m.settled = true;
    this.handedOut.clear();
    this.prefetched = [];
    this.prefetchedIds.clear();
    this.client.iotBufferPurge(this.options.stream).then(
      async (removed) => {
        this.count = 0;
        this.oldestAt = undefined;
        await this.forgetDeletedPending();
        done(null, removed);
      },
      (err: Error) => done(new StoreError('backend_unavailable', `Redis did not purge the stream: ${err.message}`, { cause: err }), 0),
    );
  }

  flush(): void {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.markClosed();
    for (const timer of this.timers) clearTimeout(timer);
    this.wantMore?.();
    this.reader.disconnect();
    await this.reading?.catch(() => undefined);
    if (this.retryAcks.length > 0 && this.connected) await this.retryAcknowledgements().catch(() => undefined);
    await this.client.quit().catch(() => this.client.disconnect());
  }

  // --- inside ---------------------------------------------------------------------------------

  private problem(text: string): void {
    if (text === this.lastProblem || this.closed) return;
    this.lastProblem = text;
    this.onProblem(new StoreError('backend_unavailable', text));
  }

  private async ensureGroup(): Promise<void> {
    const { stream, group } = this.options;
    try {
      await this.client.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) this.problem(`cannot create the consumer group ${group} on ${stream}: ${(err as Error).message}`);
    }
  }

  private async ack(ids: string[]): Promise<void> {
    const { stream, group } = this.options;
    for (let i = 0; i < ids.length; i += IDS_PER_SCRIPT) await this.client.iotBufferAck(stream, group, ...ids.slice(i, i + IDS_PER_SCRIPT));
  }

  private async retryAcknowledgements(): Promise<void> {
    const ids = this.retryAcks.splice(0);
    if (ids.length === 0) return;
    try {
      await this.ack(ids);
    } catch {
      this.retryAcks.push(...ids);
      if (!this.closed) this.timers.push(setTimeout(() => void this.retryAcknowledgements(), RETRY_MS));
    }
  }

  /** Queue length and the age of its oldest entry (its id is its time). */
  private async poll(): Promise<void> {
    if (!this.connected || this.closed) return;
    try {
      const [length, first] = await Promise.all([this.client.xlen(this.options.stream), this.client.xrange(this.options.stream, '-', '+', 'COUNT', 1)]);
      this.count = length;
      this.oldestAt = first.length > 0 ? Number(first[0][0].split('-')[0]) : undefined;
    } catch {
      // The next poll tries again; connection problems are reported by the client's events.
    }
  }

  private async readLoop(): Promise<void> {
    const { stream, group, consumer, prefetch } = this.options;
    let history = true;
    let historyFrom = '0';
    while (!this.closed) {
      if (!this.connected) {
        // Until the group exists on a connected Redis there is nothing to read.
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), this.whenClosed]);
        continue;
      }
      if (this.prefetched.length >= prefetch) {
        await new Promise<void>((resolve) => (this.wantMore = resolve));
        this.wantMore = undefined;
        continue;
      }
      try {
        const count = prefetch - this.prefetched.length;
        const read = history
          ? this.reader.callBuffer('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, historyFrom)
          : this.reader.callBuffer('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'BLOCK', this.options.blockMs ?? 1_000, 'STREAMS', stream, '>');
        read.catch(() => undefined);
        const reply = await Promise.race([read, this.whenClosed]);
        if (this.closed) break;
        const entries = streamEntries(reply);
        if (history) {
          if (entries.length === 0) history = false;
          else historyFrom = entries[entries.length - 1].id;
        }
        // Entries deleted while pending (trimmed by the cap) come back without fields.
        const gone = entries.filter((e) => !e.fields).map((e) => e.id);
        if (gone.length > 0) await this.ack(gone);
        // Entries read again from this consumer's own history were delivered before the restart.
        this.receive(entries, () => (history ? 1 : 0));
      } catch (err) {
        if (this.closed) break;
        if (/NOGROUP/.test((err as Error).message)) await this.ensureGroup();
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  /** Adds entries read or claimed to the messages to hand out. */
  private receive(entries: StreamEntry[], attemptsOf: (id: string) => number): void {
    let added = 0;
    for (const { id, fields } of entries) {
      if (!fields || this.handedOut.has(id) || this.prefetchedIds.has(id)) continue;
      const body = fields.get('m') ?? Buffer.alloc(0);
      const key = fields.get('k')?.toString() ?? '';
      const acceptedAt = Number(fields.get('t')?.toString() ?? id.split('-')[0]);
      this.prefetched.push(new RedisMessage(id, ++this.seq, key, acceptedAt, body, attemptsOf(id)));
      this.prefetchedIds.add(id);
      added++;
    }
    if (added > 0) this.onReadable();
  }

  /**
   * Keeps this consumer's own entries (handed out or read ahead) from looking abandoned, then
   * takes over entries other consumers left pending for longer than claimIdleMs.
   */
  private async claim(): Promise<void> {
    if (this.claiming || !this.connected || this.closed) return;
    this.claiming = true;
    const { stream, group, consumer, claimIdleMs, prefetch } = this.options;
    try {
      const now = Date.now();
      const mine = [...this.handedOut.values(), ...this.prefetched].filter((m) => now - m.touchedAt >= claimIdleMs / 3);
      for (let i = 0; i < mine.length; i += IDS_PER_SCRIPT) {
        const slice = mine.slice(i, i + IDS_PER_SCRIPT);
        await this.client.xclaim(stream, group, consumer, 0, ...slice.map((m) => m.id), 'JUSTID');
        for (const m of slice) m.touchedAt = now;
      }
      let cursor = '0-0';
      do {
        const room = prefetch - this.prefetched.length;
        if (room <= 0) break;
        const reply = await this.client.callBuffer('xautoclaim', stream, group, consumer, claimIdleMs, cursor, 'COUNT', room);
        const [next, claimed] = autoclaimReply(reply);
        cursor = next;
        const fresh = claimed.filter((e) => e.fields && !this.handedOut.has(e.id));
        if (fresh.length > 0) {
          const deliveries = await this.deliveryCounts(fresh.map((e) => e.id));
          this.receive(fresh, (id) => Math.max(0, (deliveries.get(id) ?? 1) - 1));
        }
      } while (cursor !== '0-0');
    } catch (err) {
      this.problem(`taking over pending entries failed: ${(err as Error).message}`);
    } finally {
      this.claiming = false;
    }
  }

  /** How often Redis delivered each entry (XPENDING), counting the claim itself. */
  private async deliveryCounts(ids: string[]): Promise<Map<string, number>> {
    const { stream, group, consumer } = this.options;
    const sorted = [...ids].sort(compareIds);
    const rows = (await this.client.xpending(stream, group, 'IDLE', 0, sorted[0], sorted[sorted.length - 1], ids.length * 2, consumer)) as unknown[];
    const counts = new Map<string, number>();
    for (const row of rows) {
      if (Array.isArray(row) && row.length >= 4) counts.set(String(row[0]), Number(row[3]));
    }
    return counts;
  }

  /** Pending entries whose entry was deleted (purged, trimmed) are acknowledged away. */
  private async forgetDeletedPending(): Promise<void> {
    const { stream, group } = this.options;
    for (let round = 0; round < 100; round++) {
      const rows = (await this.client.xpending(stream, group, 'IDLE', 0, '-', '+', IDS_PER_SCRIPT)) as unknown[];
      const ids = rows.filter((r): r is unknown[] => Array.isArray(r)).map((r) => String(r[0]));
      if (ids.length === 0) return;
      await this.client.xack(stream, group, ...ids);
    }
  }
}

/**
 * XREADGROUP's reply as entries: null, or per stream its entries [[id, [field, value, ...]], ...],
 * as [[stream, entries], ...] (RESP2) or as the flat map [stream, entries, ...] (RESP3).
 */
function streamEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamEntry[] = [];
  if (reply.length > 0 && !Array.isArray(reply[0])) {
    for (let i = 1; i < reply.length; i += 2) if (Array.isArray(reply[i])) out.push(...entriesOf(reply[i] as unknown[]));
    return out;
  }
  for (const streamReply of reply) {
    if (Array.isArray(streamReply) && Array.isArray(streamReply[1])) out.push(...entriesOf(streamReply[1]));
  }
  return out;
}

function entriesOf(list: unknown[]): StreamEntry[] {
  const out: StreamEntry[] = [];
  for (const item of list) {
    if (!Array.isArray(item)) continue;
    const id = String(item[0]);
    const raw = item[1];
    let fields: Map<string, Buffer> | undefined;
    if (Array.isArray(raw)) {
      fields = new Map();
      for (let i = 0; i + 1 < raw.length; i += 2) fields.set(String(raw[i]), raw[i + 1] as Buffer);
    }
    out.push({ id, fields });
  }
  return out;
}

/** XAUTOCLAIM's reply: [next cursor, [entries...], [deleted ids...]]. */
function autoclaimReply(reply: unknown): [string, StreamEntry[]] {
  if (!Array.isArray(reply) || reply.length < 2) return ['0-0', []];
  return [String(reply[0]), Array.isArray(reply[1]) ? entriesOf(reply[1]) : []];
}

function compareIds(a: string, b: string): number {
  const [ams, aseq] = a.split('-').map(Number);
  const [bms, bseq] = b.split('-').map(Number);
  return ams - bms || aseq - bseq;
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an invalid URL';
  }
}
