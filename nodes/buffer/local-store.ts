/**
 * The local backend: a segmented append-only log with checksums and batched fsync (group
 * commit), in plain TypeScript over node:fs.
 *
 * Writing. Messages, acknowledgements, delivery attempts and purges are records appended to the
 * newest segment file. Appends gather in a batch that is written with one write() and made
 * durable with one fdatasync(), at most `fsyncWindowMs` after its first record was appended (or
 * sooner when it grows large). A message is accepted (its callback called) only after the fsync
 * of its batch returned, so neither kill -9 nor a power cut loses an accepted message.
 *
 * Reading. A cursor reads the log in order from the oldest segment and hands out messages that
 * are not yet acknowledged; nothing but the cursor's window and the messages handed out (in
 * flight, held back for a busy key) is held in memory, however long the queue grows.
 *
 * Segments. Past `segmentBytes` a segment is sealed: its summary (counts, acknowledgements,
 * attempts, copies it holds) is written beside it so that a restart reads summaries instead of
 * whole segments. A segment is deleted once none of its messages is waiting; a segment pinned by
 * a few old messages (a busy key, a message retried for long) has them copied to the head and is
 * deleted, so the disk holds little more than the live messages.
 *
 * Recovery (recovery.ts). Sealed segments are trusted through their summaries (and every
 * record's checksum is still checked when it is read for delivery); the newest segment and any
 * segment without a valid summary are scanned record by record. A torn or corrupt region is
 * skipped, what follows it is kept, and every loss is reported.
 */
import { existsSync, ftruncateSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { close as closeCb, fdatasync as fdatasyncCb, fsync as fsyncCb, open as openCb, unlink as unlinkCb, write as writeCb } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAX_KEY_BYTES, messageFields, messageRecordSize, RecordBatch, RecordReader, RecordType, SEGMENT_HEADER_BYTES, segmentHeader, type ParsedRecord, type SkippedRegion } from './records';
import { closeQuietly, newSegment, rebuildLiveness, recoverSegments, segmentPath, summaryPath, writeSummary, type CopyEntry, type Segment } from './recovery';
import { SeqRanges } from './seq-ranges';
import { encodedLength, StoreError, storeErrorFrom, type EncodedMessage, type QueueStore, type RecoveryReport, type StoreCallback, type StoredMessage } from './store';

const write = promisify(writeCb);
const fdatasync = promisify(fdatasyncCb);
const fsync = promisify(fsyncCb);
const open = promisify(openCb);
const close = promisify(closeCb);
const unlink = promisify(unlinkCb);

export interface LocalStoreOptions {
  /** The data folder (created when missing). */
  dir: string;
  /** Longest wait between appending a record and the start of the fsync that makes it durable. */
  fsyncWindowMs: number;
  /** A segment is sealed and a new one started past this many bytes. */
  segmentBytes: number;
  /** A batch this large is written at once, without waiting for the window. */
  flushBytes?: number;
  /** Most bytes waiting to be written; messages past it are refused (the disk cannot keep up). */
  pendingLimitBytes?: number;
}

const RETRY_CONTROL_MS = 1_000;
/**
 * An empty queue's only segment is cut back to its header once it has grown this large, or at
 * any size once a write found the disk full (a small disk may never let it grow this large).
 */
const RECLAIM_BYTES = 1024 * 1024;
/** Folders open in this process: two stores on one folder would corrupt it. */
const openFolders = new Set<string>();

export class LocalMessage implements StoredMessage {
  settled = false;
  /** The body while it is wanted in memory; after its first delivery it is read back when needed. */
  private kept: Buffer | undefined;

  constructor(
    readonly seq: number,
    readonly key: string,
    readonly acceptedAt: number,
    body: Buffer,
    readonly size: number,
    public attempts: number,
    public segment: Segment,
    public position: number,
  ) {
    this.kept = body;
  }

  get ref(): string {
    return String(this.seq);
  }

  get body(): Buffer {
    return this.kept ?? readBodyBack(this);
  }

  /**
   * Lets go of the body once it was decoded for delivery: a message in flight then costs a few
   * dozen bytes instead of its size, and the rare redelivery or dead letter reads it again from
   * its segment (which a message in flight keeps alive).
   */
  dropBody(): void {
    this.kept = undefined;
  }
}

/** A message's body read again from its record; empty when the record cannot be read (then it is reported as unreadable). */
function readBodyBack(m: LocalMessage): Buffer {
  try {
    const record = new RecordReader(m.segment.fd, m.position, m.position + m.size, () => undefined, m.size).next();
    if (record && record.seq === m.seq && (record.type === RecordType.message || record.type === RecordType.copy)) return messageFields(record).message;
  } catch {
    // Below: nothing could be read.
  }
  return Buffer.alloc(0);
}

interface PendingWrite {
  offset: number;
  applied(segment: Segment, position: number): void;
  failed(err: StoreError): void;
}

/** One appended message in a batch: one object rather than closures, as there are many. */
class MessageWrite implements PendingWrite {
  constructor(
    private readonly store: LocalStore,
    readonly offset: number,
    private readonly seq: number,
    private readonly size: number,
    private readonly done: StoreCallback,
  ) {}

  applied(segment: Segment): void {
    this.store.messageWritten(segment, this.seq, this.size);
    this.done(null);
  }

  failed(err: StoreError): void {
    this.store.messageNotWritten(this.seq, this.size);
    this.done(err);
  }
}

class Batch {
  readonly records: RecordBatch;
  readonly writes: PendingWrite[] = [];
  firstAt = 0;
  /** Start a new segment after this batch (a purge must not share a segment with what follows). */
  rollAfter = false;
  /** Bytes of the messages in it (what counts against the pending limit). */
  messageBytes = 0;

  constructor(records?: RecordBatch) {
    this.records = records ?? new RecordBatch();
  }
}

export class LocalStore implements QueueStore<LocalMessage> {
  readonly kind = 'local';
  onReadable: () => void = () => undefined;
  onProblem: (err: StoreError) => void = () => undefined;

  private readonly flushBytes: number;
  private readonly pendingLimit: number;
  /** Bytes appended to batches and not yet written. */
  private pendingBytes = 0;
  private segments: Segment[] = [];
  private head!: Segment;
  private nextSeq = 1;
  private count = 0;
  private byteCount = 0;
  private purgedUpTo = 0;

  // writing
  private openBatch = new Batch();
  private sealedBatches: Batch[] = [];
  /** The buffer of the last batch written, to fill again (no new allocation per batch). */
  private spareRecords: RecordBatch | undefined;
  private flushing = false;
  private flushWanted = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private rollPending = false;
  private idle: Array<() => void> = [];
  private retryAcks = new SeqRanges();
  private retryPurge = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private relocating = false;
  /** A write found the disk full since the empty head was last cut back. */
  private diskWasFull = false;

  // reading
  private cursorIndex = 0;
  private reader: RecordReader | undefined;
  private upNext: LocalMessage | undefined;
  private copies: CopyEntry[] = [];
  /** Sequence numbers the cursor skips: acknowledged or copied before the last restart. */
  private recoveredDead = new SeqRanges();
  private recoveredAttempts = new Map<number, number>();
  private readonly handedOut = new Map<number, LocalMessage>();

  private opened = false;
  private closed = false;

  constructor(private readonly options: LocalStoreOptions) {
    this.flushBytes = options.flushBytes ?? 1024 * 1024;
    this.pendingLimit = options.pendingLimitBytes ?? 64 * 1024 * 1024;
  }

  get messages(): number {
    return this.count;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Bytes the segment files take on disk. */
  get diskBytes(): number {
    return this.segments.reduce((sum, s) => sum + s.size, 0);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  // --- opening and recovery -------------------------------------------------------------------

  async open(): Promise<RecoveryReport> {
    const { dir } = this.options;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw storeErrorFrom(err, `cannot create the data folder ${dir}`);
    }
    this.lock();
    try {
      const { segments, problems } = recoverSegments(dir);
      this.segments = segments;
      const live = rebuildLiveness(segments);
      this.copies = live.copies;
      this.recoveredDead = live.dead;
      this.recoveredAttempts = live.attempts;
      this.purgedUpTo = live.purgedUpTo;
      this.nextSeq = live.nextSeq;
      this.count = live.messages;
      this.byteCount = live.bytes;
      if (this.segments.length === 0) {
        this.segments.push(await this.createSegment(1));
      }
      this.head = this.segments[this.segments.length - 1];
      this.resetCursor();
      this.deleteDeadSegments();
      this.opened = true;
      return { messages: this.count, bytes: this.byteCount, problems };
    } catch (err) {
      for (const segment of this.segments) closeQuietly(segment.fd);
      this.segments = [];
      this.unlock();
      throw storeErrorFrom(err, `cannot open the store in ${dir}`);
    }
  }

  private lock(): void {
    const { dir } = this.options;
    if (openFolders.has(dir)) throw new StoreError('store_locked', `another iot-buffer node already uses the data folder ${dir}`);
    const lockFile = join(dir, 'lock');
    if (existsSync(lockFile)) {
      const pid = Number(readFileSync(lockFile, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new StoreError('store_locked', `the data folder ${dir} is in use by process ${pid}`);
      }
    }
    try {
      writeFileSync(lockFile, `${process.pid}\n`);
    } catch (err) {
      throw storeErrorFrom(err, `cannot write in the data folder ${dir}`);
    }
    openFolders.add(dir);
  }

  private unlock(): void {
    openFolders.delete(this.options.dir);
    rmSync(join(this.options.dir, 'lock'), { force: true });
  }

  private async createSegment(id: number): Promise<Segment> {
    const path = segmentPath(this.options.dir, id);
    const fd = await open(path, 'w+');
    try {
      await write(fd, segmentHeader(id), 0, SEGMENT_HEADER_BYTES, 0);
      await fdatasync(fd);
      await syncFolder(this.options.dir);
    } catch (err) {
      closeQuietly(fd);
      rmSync(path, { force: true });
      throw err;
    }
    return newSegment(id, path, fd, SEGMENT_HEADER_BYTES);
  }

  // --- appending ------------------------------------------------------------------------------

  sizeOf(key: string, body: EncodedMessage): number {
    return messageRecordSize(Buffer.byteLength(key), encodedLength(body));
  }

  append(key: string, body: EncodedMessage, acceptedAt: number, done: StoreCallback): void {
    if (!this.opened || this.closed) {
      queueMicrotask(() => done(new StoreError('closed', 'the store is closed')));
      return;
    }
    if (this.pendingBytes > this.pendingLimit) {
      const waiting = Math.round(this.pendingBytes / (1024 * 1024));
      queueMicrotask(() => done(new StoreError('overloaded', `messages arrive faster than the disk stores them (${waiting} MB wait to be written)`)));
      return;
    }
    // Refused before a record is begun: one that does not fit its header would break the whole batch.
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes > MAX_KEY_BYTES) {
      queueMicrotask(() => done(new StoreError('too_large', `the message's key takes ${keyBytes} bytes, more than the local store keeps (${MAX_KEY_BYTES})`)));
      return;
    }
    const seq = this.nextSeq++;
    const batch = this.batchForWrite();
    const offset = batch.records.message(RecordType.message, seq, key, acceptedAt, body);
    const size = batch.records.length - offset;
    this.pendingBytes += size;
    batch.messageBytes += size;
    this.count++;
    this.byteCount += size;
    batch.writes.push(new MessageWrite(this, offset, seq, size, done));
    this.scheduleFlush();
  }

  /** Counts a message written (MessageWrite.applied). */
  messageWritten(segment: Segment, seq: number, size: number): void {
    segment.messages++;
    segment.messageBytes += size;
    if (segment.messages === 1) segment.firstSeq = seq;
    segment.lastSeq = seq;
    segment.maxSeq = Math.max(segment.maxSeq, seq);
    if (seq > this.purgedUpTo) {
      segment.live++;
      segment.liveBytes += size;
    }
  }

  /** Takes back the count of a message whose write failed (MessageWrite.failed). */
  messageNotWritten(seq: number, size: number): void {
    if (seq <= this.purgedUpTo) return;
    this.count--;
    this.byteCount -= size;
  }

  noteAttempt(message: LocalMessage): void {
    if (this.closed) return;
    const batch = this.batchForWrite();
    const offset = batch.records.attempt(message.seq, message.attempts);
    batch.writes.push({ offset, applied: (segment) => segment.attempts.set(message.seq, message.attempts), failed: () => undefined });
    this.scheduleFlush();
  }

  settle(messages: LocalMessage[], done: StoreCallback): void {
    const settling = messages.filter((m) => !m.settled && m.seq > this.purgedUpTo);
    for (const m of settling) {
      m.settled = true;
      m.segment.settling++;
      m.segment.settlingBytes += m.size;
      this.handedOut.delete(m.seq);
      this.count--;
      this.byteCount -= m.size;
    }
    if (settling.length === 0 || this.closed) {
      queueMicrotask(() => done(null));
      return;
    }
    const ranges = rangesOf(settling.map((m) => m.seq));
    const release = () => {
      for (const m of settling) {
        m.segment.settling--;
        m.segment.settlingBytes -= m.size;
        if (m.seq <= this.purgedUpTo) continue;
        m.segment.live--;
        m.segment.liveBytes -= m.size;
      }
      this.deleteDeadSegments();
      this.relocatePinned();
      done(null);
    };
    const batch = this.batchForWrite();
    const offset = batch.records.ack(ranges.toPairs());
    batch.writes.push({
      offset,
      applied: (segment) => {
        segment.acks.addAll(ranges);
        release();
      },
      // The sink did its work: the messages are settled in memory all the same, and the record
      // is written again later. A crash before then delivers them once more, which is allowed.
      failed: (err) => {
        this.retryAcks.addAll(ranges);
        this.retryControlLater(err);
        release();
      },
    });
    this.scheduleFlush();
  }

  purge(done: (err: StoreError | null, removed: number) => void): void {
    if (!this.opened || this.closed) {
      queueMicrotask(() => done(new StoreError('closed', 'the store is closed'), 0));
      return;
    }
    const removed = this.count;
    const upTo = this.nextSeq - 1;
    this.purgedUpTo = upTo;
    this.count = 0;
    this.byteCount = 0;
    for (const m of this.handedOut.values()) m.settled = true;
    this.handedOut.clear();
    this.copies = [];
    this.upNext = undefined;
    const release = () => {
      for (const segment of this.segments) {
        segment.live = 0;
        segment.liveBytes = 0;
      }
      this.deleteDeadSegments();
    };
    const batch = this.batchForWrite();
    const offset = batch.records.purge(upTo);
    batch.rollAfter = true;
    batch.writes.push({
      offset,
      applied: (segment) => {
        segment.purge = Math.max(segment.purge, upTo);
        release();
        done(null, removed);
      },
      failed: (err) => {
        this.retryPurge = Math.max(this.retryPurge, upTo);
        this.retryControlLater(err);
        release();
        done(err, removed);
      },
    });
    this.flush();
  }

  flush(): void {
    this.flushWanted = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.flushing) void this.writeBatches();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (!this.opened) return;
    this.flush();
    if (this.flushing) await new Promise<void>((resolve) => this.idle.push(resolve));
    for (const segment of this.segments) closeQuietly(segment.fd);
    this.unlock();
  }

  /**
   * The batch new records go to. A batch that must roll after it, or that is full while a write
   * is under way, takes no more: it waits its turn, and its buffer stays small enough to reuse.
   */
  private batchForWrite(): Batch {
    if (this.openBatch.rollAfter || this.openBatch.records.length >= this.flushBytes) {
      this.sealedBatches.push(this.openBatch);
      this.openBatch = this.newBatch();
    }
    if (this.openBatch.writes.length === 0) this.openBatch.firstAt = Date.now();
    return this.openBatch;
  }

  private newBatch(): Batch {
    const batch = new Batch(this.spareRecords);
    this.spareRecords = undefined;
    return batch;
  }

  /** Arms the window timer; while a write is under way, the write loop takes the batch on. */
  private scheduleFlush(): void {
    if (this.flushing || this.openBatch.writes.length === 0) return;
    if (this.openBatch.records.length >= this.flushBytes) {
      this.flush();
      return;
    }
    if (this.flushTimer) return;
    const wait = this.options.fsyncWindowMs - (Date.now() - this.openBatch.firstAt);
    if (wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  /**
   * Group commit: one write and one fsync at a time; what was appended meanwhile goes in the
   * next one, at once when its window has passed (or a flush was asked for), else when it does.
   */
  private async writeBatches(): Promise<void> {
    this.flushing = true;
    for (let group = this.nextGroup(); group.length > 0; group = this.nextGroup()) {
      await this.writeGroup(group);
      const last = group[group.length - 1];
      if (last.records.capacity <= 2 * this.flushBytes) this.spareRecords = last.records.reset();
      // Between two writes: the next group goes to a cut-back head if the queue just drained.
      this.reclaimEmptyHead();
    }
    this.flushing = false;
    if (this.openBatch.writes.length === 0) this.flushWanted = false;
    this.idle.splice(0).forEach((resolve) => resolve());
    this.scheduleFlush();
  }

  /**
   * The batches to write now, made durable by one fsync: those sealed while a write was under
   * way, then the open one once it is due. A group stops at a batch that must roll after it, and
   * before a batch that would take the segment past its size.
   */
  private nextGroup(): Batch[] {
    const group: Batch[] = [];
    let bytes = this.head.size;
    for (;;) {
      const candidate = this.sealedBatches[0] ?? (this.dueOpenBatch() ? this.openBatch : undefined);
      if (!candidate) break;
      const length = candidate.records.length;
      if (group.length > 0 && (group[group.length - 1].rollAfter || bytes + length > this.options.segmentBytes)) break;
      if (candidate === this.openBatch) {
        this.flushWanted = false;
        this.openBatch = this.newBatch();
      } else {
        this.sealedBatches.shift();
      }
      group.push(candidate);
      bytes += length;
    }
    return group;
  }

  private dueOpenBatch(): boolean {
    const open = this.openBatch;
    if (open.writes.length === 0) return false;
    return this.flushWanted || this.closed || open.records.length >= this.flushBytes || Date.now() - open.firstAt >= this.options.fsyncWindowMs;
  }

  private async writeGroup(group: Batch[]): Promise<void> {
    const length = group.reduce((n, batch) => n + batch.records.length, 0);
    for (const batch of group) this.pendingBytes -= batch.messageBytes;
    const fail = (error: StoreError) => {
      if (error.code === 'disk_full') this.diskWasFull = true;
      for (const batch of group) for (const w of batch.writes) w.failed(error);
      this.onProblem(error);
    };
    try {
      if (this.rollPending || (this.head.size > SEGMENT_HEADER_BYTES && this.head.size + length > this.options.segmentBytes)) {
        await this.roll();
      }
    } catch (err) {
      fail(storeErrorFrom(err, `cannot start a new segment in ${this.options.dir}`));
      return;
    }
    const segment = this.head;
    const position = segment.size;
    try {
      let at = position;
      for (const batch of group) {
        const bytes = batch.records.bytes;
        for (let written = 0; written < bytes.length; ) {
          const { bytesWritten } = await write(segment.fd, bytes, written, bytes.length - written, at + written);
          written += bytesWritten;
        }
        at += bytes.length;
      }
      await fdatasync(segment.fd);
    } catch (err) {
      try {
        ftruncateSync(segment.fd, position);
      } catch {
        // The torn tail is found and cut at the next start.
      }
      // After a failed fsync the kernel's copy of the file cannot be trusted: go on in a new one.
      this.rollPending = true;
      fail(storeErrorFrom(err, `cannot write to ${segment.path}`));
      return;
    }
    segment.size = position + length;
    let at = position;
    for (const batch of group) {
      for (const w of batch.writes) w.applied(segment, at + w.offset);
      at += batch.records.length;
    }
    if (group[group.length - 1].rollAfter) this.rollPending = true;
    this.onReadable();
  }

  private async roll(): Promise<void> {
    const sealed = this.head;
    const segment = await this.createSegment(sealed.id + 1);
    this.segments.push(segment);
    this.head = segment;
    this.rollPending = false;
    void writeSummary(this.options.dir, sealed);
    this.relocatePinned();
  }

  /** Control records (acknowledgements, purges) whose write failed are written again later. */
  private retryControlLater(err: StoreError): void {
    this.onProblem(err);
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const acks = this.retryAcks;
      const purge = this.retryPurge;
      this.retryAcks = new SeqRanges();
      this.retryPurge = 0;
      const batch = this.batchForWrite();
      if (acks.rangeCount > 0) {
        const offset = batch.records.ack(acks.toPairs());
        batch.writes.push({ offset, applied: (segment) => segment.acks.addAll(acks), failed: (e) => (this.retryAcks.addAll(acks), this.retryControlLater(e)) });
      }
      if (purge > 0) {
        const offset = batch.records.purge(purge);
        batch.rollAfter = true;
        batch.writes.push({
          offset,
          applied: (segment) => (segment.purge = Math.max(segment.purge, purge)),
          failed: (e) => ((this.retryPurge = Math.max(this.retryPurge, purge)), this.retryControlLater(e)),
        });
      }
      this.flush();
    }, RETRY_CONTROL_MS);
  }

  // --- reading --------------------------------------------------------------------------------

  take(max: number): LocalMessage[] {
    const out: LocalMessage[] = [];
    while (out.length < max) {
      const next = this.peek();
      if (!next) break;
      this.upNext = undefined;
      this.handedOut.set(next.seq, next);
      out.push(next);
    }
    return out;
  }

  nextAcceptedAt(): number | undefined {
    return this.peek()?.acceptedAt;
  }

  /** The next message take() would hand out, read but not yet handed out. */
  private peek(): LocalMessage | undefined {
    if (this.upNext || !this.opened || this.closed) return this.upNext;
    while (this.copies.length > 0) {
      const copy = this.copies.shift() as CopyEntry;
      if (copy.seq <= this.purgedUpTo) continue;
      const message = this.readCopy(copy);
      if (message) return (this.upNext = message);
    }
    for (;;) {
      const segment = this.segments[this.cursorIndex];
      if (!segment) return undefined;
      this.reader ??= new RecordReader(segment.fd, SEGMENT_HEADER_BYTES, segment.size, (region) => this.skipped(segment, region));
      this.reader.limit = segment.size;
      const record = this.reader.next();
      if (!record) {
        if (segment === this.head || this.cursorIndex >= this.segments.length - 1) return undefined;
        // Move on before leaving: leaving may delete the segment (nothing in it waits, as after a
        // purge), which shifts the index of every later one back by one.
        this.cursorIndex++;
        this.reader = undefined;
        this.leaveSegment(segment);
        continue;
      }
      if (record.type !== RecordType.message || record.seq <= this.purgedUpTo) continue;
      if (this.recoveredDead.rangeCount > 0) {
        this.recoveredDead.deleteBelow(record.seq);
        if (this.recoveredDead.has(record.seq)) continue;
      }
      return (this.upNext = this.messageFrom(record, segment));
    }
  }

  private messageFrom(record: ParsedRecord, segment: Segment): LocalMessage {
    const { acceptedAt, key, message } = messageFields(record);
    const attempts = this.recoveredAttempts.get(record.seq) ?? 0;
    if (attempts > 0) this.recoveredAttempts.delete(record.seq);
    return new LocalMessage(record.seq, key, acceptedAt, message, record.length, attempts, segment, record.position);
  }

  private readCopy(copy: CopyEntry): LocalMessage | undefined {
    let found: ParsedRecord | undefined;
    const reader = new RecordReader(copy.segment.fd, copy.position, copy.position + copy.length, () => undefined, copy.length);
    try {
      found = reader.next();
    } catch {
      found = undefined;
    }
    if (!found || found.type !== RecordType.copy || found.seq !== copy.seq) {
      copy.segment.live--;
      copy.segment.liveBytes -= copy.length;
      this.count--;
      this.byteCount -= copy.length;
      this.onProblem(new StoreError('store_corrupt', `message ${copy.seq} in ${copy.segment.path} could not be read back: it is lost`));
      return undefined;
    }
    return this.messageFrom(found, copy.segment);
  }

  private skipped(segment: Segment, region: SkippedRegion): void {
    if (segment.reported.has(region.from)) return;
    segment.reported.add(region.from);
    this.onProblem(new StoreError('store_corrupt', `${region.to - region.from} damaged byte(s) at ${region.from} in ${segment.path} skipped: any message stored there is lost`));
  }

  /**
   * The cursor read a sealed segment to its end: every message of it still waiting is now in
   * memory. Counters that promised more (records lost to damage) are corrected here.
   */
  private leaveSegment(segment: Segment): void {
    let live = 0;
    let liveBytes = 0;
    for (const m of this.handedOut.values()) {
      if (m.segment === segment) {
        live++;
        liveBytes += m.size;
      }
    }
    for (const copy of this.copies) {
      if (copy.segment === segment) {
        live++;
        liveBytes += copy.length;
      }
    }
    live += segment.settling;
    liveBytes += segment.settlingBytes;
    if (live < segment.live) {
      const lost = segment.live - live;
      this.count -= lost;
      this.onProblem(new StoreError('store_corrupt', `${lost} message(s) of ${segment.path} could not be read back: they are lost`));
    }
    this.byteCount += liveBytes - segment.liveBytes;
    segment.live = live;
    segment.liveBytes = liveBytes;
    this.deleteDeadSegments();
    this.relocatePinned();
  }

  private resetCursor(): void {
    this.cursorIndex = 0;
    this.reader = undefined;
    this.upNext = undefined;
  }

  // --- reclaiming space -----------------------------------------------------------------------

  /** Deletes the oldest segments while nothing in them waits. */
  private deleteDeadSegments(): void {
    while (this.segments.length > 1 && this.segments[0].live <= 0 && this.segments[0] !== this.head) {
      const segment = this.segments.shift() as Segment;
      if (this.cursorIndex > 0) this.cursorIndex--;
      else {
        this.reader = undefined;
        if (this.upNext?.segment === segment) this.upNext = undefined;
      }
      closeQuietly(segment.fd);
      void unlink(segment.path).catch(() => undefined);
      void unlink(summaryPath(this.options.dir, segment.id)).catch(() => undefined);
    }
  }

  /**
   * Nothing stored waits and nothing is being written: the records of the one segment left are
   * all dead, so it is cut back to its header. A drained queue gives its disk space back (and a
   * full disk recovers once the queue has drained), without creating a file: on a full disk no
   * new segment can be created, so this is the only way back. Called by the write loop between
   * two writes; records appended meanwhile are placed when they are written, after the header.
   */
  private reclaimEmptyHead(): void {
    const head = this.head;
    if (this.closed || this.segments.length !== 1 || head.size <= SEGMENT_HEADER_BYTES) return;
    if (head.size <= RECLAIM_BYTES && !this.diskWasFull) return;
    if (head.live !== 0 || head.settling !== 0 || this.handedOut.size > 0 || this.copies.length > 0 || this.relocating) return;
    try {
      ftruncateSync(head.fd, SEGMENT_HEADER_BYTES);
    } catch {
      return;
    }
    this.diskWasFull = false;
    Object.assign(head, newSegment(head.id, head.path, head.fd, SEGMENT_HEADER_BYTES), { maxSeq: head.maxSeq });
    this.resetCursor();
  }

  /**
   * The oldest segment, already read past, kept only for a few messages still waiting (a busy
   * key, a message retried for long): copy those to the head so that it can be deleted.
   */
  private relocatePinned(): void {
    if (this.relocating || this.closed || this.segments.length < 3) return;
    const oldest = this.segments[0];
    if (oldest === this.head || this.cursorIndex === 0 || oldest.live <= 0) return;
    if (oldest.liveBytes > this.options.segmentBytes / 2) return;
    // Copies found at start-up are handed out first; wait until they are.
    if (this.copies.some((c) => c.segment === oldest)) return;
    const moving = [...this.handedOut.values()].filter((m) => m.segment === oldest);
    if (moving.length + oldest.settling !== oldest.live || moving.length === 0) return;
    this.relocating = true;
    const batch = this.batchForWrite();
    moving.forEach((m, i) => {
      const offset = batch.records.message(RecordType.copy, m.seq, m.key, m.acceptedAt, m.body);
      const last = i === moving.length - 1;
      batch.writes.push({
        offset,
        applied: (segment, position) => {
          segment.copies.push([m.seq, position, m.size]);
          if (!m.settled && m.seq > this.purgedUpTo && m.segment === oldest) {
            oldest.live--;
            oldest.liveBytes -= m.size;
            segment.live++;
            segment.liveBytes += m.size;
            m.segment = segment;
            m.position = position;
          }
          if (last) {
            this.relocating = false;
            this.deleteDeadSegments();
          }
        },
        failed: () => {
          if (last) this.relocating = false;
        },
      });
    });
    this.scheduleFlush();
  }
}

/** Sorted sequence numbers as ranges. */
function rangesOf(seqs: number[]): SeqRanges {
  const ranges = new SeqRanges();
  for (const seq of seqs.sort((a, b) => a - b)) ranges.add(seq);
  return ranges;
}

async function syncFolder(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
