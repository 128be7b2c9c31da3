/**
 * Crash recovery of the local store, as plain functions over its data folder: which segment files
 * are whole, what each one holds (read from the summary saved beside it when it was sealed, or
 * found by scanning it record by record), and, from all of them together, which messages still
 * wait, where, and with how many deliveries behind them. LocalStore calls these when it opens;
 * the unit tests call them on folders damaged on purpose.
 *
 * What recovery promises: a torn write at the end of the newest segment (a process that died
 * while writing) is cut away, as it was never acknowledged to the flow; damaged bytes anywhere
 * else are skipped and everything after them is kept; a file that is not a segment of this store
 * is moved aside; every loss is reported in words.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { close as closeCb, fsync as fsyncCb, open as openCb, rename as renameCb, writeFile as writeFileCb } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ackRanges, attemptCount, crc32, RecordReader, RecordType, readSegmentHeader, SEGMENT_HEADER_BYTES, type SkippedRegion } from './records';
import { SeqRanges } from './seq-ranges';

const fsync = promisify(fsyncCb);
const open = promisify(openCb);
const close = promisify(closeCb);
const rename = promisify(renameCb);
const writeFile = promisify(writeFileCb);

const SEGMENT_FILE = /^(\d{16})\.seg$/;

/** One segment file of the log, open, with what it holds. */
export interface Segment {
  id: number;
  path: string;
  fd: number;
  /** Bytes written and durable. */
  size: number;
  /** Original message records in it, their bytes, and their sequence range. */
  messages: number;
  messageBytes: number;
  firstSeq: number;
  lastSeq: number;
  maxSeq: number;
  /** Control records it holds (what a summary saves). */
  acks: SeqRanges;
  attempts: Map<number, number>;
  copies: Array<[seq: number, position: number, length: number]>;
  purge: number;
  /** Messages in it still waiting (originals and copies), and their bytes. */
  live: number;
  liveBytes: number;
  /** Messages of it settled whose acknowledgement is not yet written. */
  settling: number;
  settlingBytes: number;
  /** Damaged regions already reported, by start position. */
  reported: Set<number>;
}

/** What a segment holds, as saved beside it when sealed or found by scanning it. */
export interface SegmentSummary {
  id: number;
  size: number;
  messages: number;
  messageBytes: number;
  firstSeq: number;
  lastSeq: number;
  maxSeq: number;
  acks: Array<[number, number]>;
  attempts: Array<[number, number]>;
  copies: Array<[number, number, number]>;
  purge: number;
}

/** A message copied to a newer segment, known from recovery and not yet handed out. */
export interface CopyEntry {
  seq: number;
  segment: Segment;
  position: number;
  length: number;
}

export function newSegment(id: number, path: string, fd: number, size: number): Segment {
  return {
    id,
    path,
    fd,
    size,
    messages: 0,
    messageBytes: 0,
    firstSeq: NaN,
    lastSeq: NaN,
    maxSeq: 0,
    acks: new SeqRanges(),
    attempts: new Map(),
    copies: [],
    purge: 0,
    live: 0,
    liveBytes: 0,
    settling: 0,
    settlingBytes: 0,
    reported: new Set(),
  };
}

export function segmentPath(dir: string, id: number): string {
  return join(dir, `${String(id).padStart(16, '0')}.seg`);
}

export function summaryPath(dir: string, id: number): string {
  return join(dir, `${String(id).padStart(16, '0')}.sum`);
}

export function summaryOf(segment: Segment): SegmentSummary {
  return {
    id: segment.id,
    size: segment.size,
    messages: segment.messages,
    messageBytes: segment.messageBytes,
    firstSeq: segment.firstSeq,
    lastSeq: segment.lastSeq,
    maxSeq: segment.maxSeq,
    acks: segment.acks.toPairs(),
    attempts: [...segment.attempts],
    copies: segment.copies,
    purge: segment.purge,
  };
}

/** Reads every record of a segment to learn what it holds. */
function scanSegment(segment: Segment, onSkipped: (region: SkippedRegion) => void): SegmentSummary {
  const summary = summaryOf(segment);
  const reader = new RecordReader(segment.fd, SEGMENT_HEADER_BYTES, segment.size, onSkipped, 1024 * 1024);
  let end = SEGMENT_HEADER_BYTES;
  const acks = new SeqRanges();
  const attempts = new Map<number, number>();
  for (let record = reader.next(); record; record = reader.next()) {
    end = record.position + record.length;
    switch (record.type) {
      case RecordType.message:
        summary.messages++;
        summary.messageBytes += record.length;
        if (summary.messages === 1) summary.firstSeq = record.seq;
        summary.lastSeq = record.seq;
        summary.maxSeq = Math.max(summary.maxSeq, record.seq);
        break;
      case RecordType.copy:
        summary.copies.push([record.seq, record.position, record.length]);
        break;
      case RecordType.ack:
        for (const [first, last] of ackRanges(record)) acks.add(first, last);
        break;
      case RecordType.attempt:
        attempts.set(record.seq, attemptCount(record));
        break;
      case RecordType.purge:
        summary.purge = Math.max(summary.purge, record.seq);
        break;
    }
  }
  summary.acks = acks.toPairs();
  summary.attempts = [...attempts];
  // Damage in the middle is skipped and kept; only bytes after the last whole record are cut.
  summary.size = reader.position === segment.size ? segment.size : end;
  return summary;
}

/** The summary saved beside a segment, if it is whole (checksum) and describes this very file. */
function readSummary(dir: string, id: number, size: number): SegmentSummary | undefined {
  try {
    const text = readFileSync(summaryPath(dir, id), 'utf8');
    const newline = text.indexOf('\n');
    const json = text.slice(newline + 1);
    const summary = JSON.parse(json) as SegmentSummary;
    if (newline < 0 || Number(text.slice(0, newline)) !== crc32(Buffer.from(json)) || summary.id !== id || summary.size !== size) return undefined;
    return summary;
  } catch {
    return undefined;
  }
}

function summaryText(summary: SegmentSummary): string {
  const json = JSON.stringify(summary);
  return `${crc32(Buffer.from(json))}\n${json}`;
}

function writeSummarySync(dir: string, summary: SegmentSummary): void {
  try {
    const path = summaryPath(dir, summary.id);
    writeFileSync(`${path}.tmp`, summaryText(summary));
    renameSync(`${path}.tmp`, path);
  } catch {
    // Without a summary the segment is scanned at the next start: slower, not wrong.
  }
}

/** Writes a sealed segment's summary (durably, then renamed into place). */
export async function writeSummary(dir: string, segment: Segment): Promise<void> {
  const path = summaryPath(dir, segment.id);
  try {
    await writeFile(`${path}.tmp`, summaryText(summaryOf(segment)));
    const fd = await open(`${path}.tmp`, 'r');
    await fsync(fd).finally(() => close(fd));
    await rename(`${path}.tmp`, path);
  } catch {
    // As above: the segment will be scanned instead.
  }
}

export interface RecoveredSegments {
  /** The whole segments, oldest first, open for reading and writing. */
  segments: Segment[];
  /** What could not be recovered, or was repaired, in words. */
  problems: string[];
}

/**
 * Opens every segment of the folder and learns what each holds: sealed segments through their
 * summaries, the newest one (and any whose summary is missing or wrong) by scanning it.
 */
export function recoverSegments(dir: string): RecoveredSegments {
  const problems: string[] = [];
  const segments: Segment[] = [];
  const names = readdirSync(dir);
  // Summaries half-written when a process died are written again when needed.
  for (const name of names) if (name.endsWith('.sum.tmp')) rmSync(join(dir, name), { force: true });
  const files = names.filter((f) => SEGMENT_FILE.test(f)).sort();
  try {
    files.forEach((file, i) => {
      const segment = recoverSegment(dir, file, i === files.length - 1, problems);
      if (segment) segments.push(segment);
    });
  } catch (err) {
    for (const segment of segments) closeQuietly(segment.fd);
    throw err;
  }
  return { segments, problems };
}

function recoverSegment(dir: string, file: string, isNewest: boolean, problems: string[]): Segment | undefined {
  const id = Number(SEGMENT_FILE.exec(file)?.[1]);
  const path = join(dir, file);
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const headerBytes = size >= SEGMENT_HEADER_BYTES ? readFully(fd, header, 0) : 0;
    if (headerBytes < SEGMENT_HEADER_BYTES || readSegmentHeader(header) !== id) {
      closeSync(fd);
      if (isNewest && size <= SEGMENT_HEADER_BYTES) {
        // Created by a process that died before its header was written: records only follow a
        // durable header, so it never held anything.
        rmSync(path);
        return undefined;
      }
      renameSync(path, `${path}.corrupt`);
      problems.push(`${file} is not a segment of this store (bad header): moved aside to ${file}.corrupt; the messages it held are lost`);
      return undefined;
    }
    const segment = newSegment(id, path, fd, size);
    let summary = isNewest ? undefined : readSummary(dir, id, size);
    if (!summary) {
      const damaged: SkippedRegion[] = [];
      summary = scanSegment(segment, (region) => damaged.push(region));
      for (const region of damaged) {
        segment.reported.add(region.from);
        if (region.to === size && isNewest) {
          ftruncateSync(fd, region.from);
          summary.size = region.from;
          problems.push(`${region.to - region.from} byte(s) of an unfinished write at the end of ${file} were discarded (never acknowledged to the flow)`);
        } else {
          problems.push(`${region.to - region.from} damaged byte(s) at ${region.from} in ${file} skipped: any message stored there is lost`);
        }
      }
      if (!isNewest) writeSummarySync(dir, summary);
    }
    return Object.assign(segment, {
      size: summary.size,
      messages: summary.messages,
      messageBytes: summary.messageBytes,
      firstSeq: summary.firstSeq,
      lastSeq: summary.lastSeq,
      maxSeq: summary.maxSeq,
      acks: SeqRanges.of(summary.acks),
      attempts: new Map(summary.attempts),
      copies: summary.copies,
      purge: summary.purge,
    });
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

/** What every segment says together: what still waits, what to skip, where to go on. */
export interface Liveness {
  /** Messages copied forward and still waiting, by sequence. */
  copies: CopyEntry[];
  /** Sequence numbers to skip when reading: acknowledged, copied forward, or purged. */
  dead: SeqRanges;
  /** Deliveries so far of messages delivered before the restart. */
  attempts: Map<number, number>;
  /** Every message up to this sequence number was purged. */
  purgedUpTo: number;
  nextSeq: number;
  /** Messages waiting, and their bytes. */
  messages: number;
  bytes: number;
}

/**
 * From what every segment holds: which messages still wait, and where. Sets each segment's
 * `live` and `liveBytes`.
 */
export function rebuildLiveness(segments: Segment[]): Liveness {
  const acked = new SeqRanges();
  const copied = new SeqRanges();
  const latestCopy = new Map<number, CopyEntry>();
  const attempts = new Map<number, number>();
  let purge = 0;
  let maxSeq = 0;
  for (const segment of segments) {
    acked.addAll(segment.acks);
    purge = Math.max(purge, segment.purge);
    maxSeq = Math.max(maxSeq, segment.maxSeq, segment.purge);
    for (const [seq, count] of segment.attempts) attempts.set(seq, Math.max(count, attempts.get(seq) ?? 0));
    for (const [seq, position, length] of segment.copies) {
      copied.add(seq);
      latestCopy.set(seq, { seq, segment, position, length });
    }
  }
  const dead = new SeqRanges();
  dead.addAll(acked);
  dead.addAll(copied);
  if (purge > 0) dead.add(0, purge);
  for (const segment of segments) {
    const deadInIt = segment.messages === 0 ? 0 : segment.lastSeq <= purge ? segment.messages : Math.min(segment.messages, dead.countIn(segment.firstSeq, segment.lastSeq));
    segment.live = segment.messages - deadInIt;
    segment.liveBytes = segment.messages === 0 ? 0 : Math.round((segment.messageBytes * segment.live) / segment.messages);
  }
  const copies: CopyEntry[] = [];
  for (const copy of latestCopy.values()) {
    if (acked.has(copy.seq) || copy.seq <= purge) continue;
    copy.segment.live++;
    copy.segment.liveBytes += copy.length;
    copies.push(copy);
  }
  copies.sort((a, b) => a.seq - b.seq);
  return {
    copies,
    dead,
    attempts,
    purgedUpTo: purge,
    nextSeq: maxSeq + 1,
    messages: segments.reduce((n, s) => n + s.live, 0),
    bytes: segments.reduce((n, s) => n + s.liveBytes, 0),
  };
}

function readFully(fd: number, target: Buffer, position: number): number {
  let read = 0;
  while (read < target.length) {
    const n = readSync(fd, target, read, target.length - read, position + read);
    if (n === 0) break;
    read += n;
  }
  return read;
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
