/**
 * The local store's file format. A segment file starts with a 16-byte header (magic and segment
 * number) followed by records, each one
 *
 *   u32 body length N | u32 CRC-32 of bytes 8..20+N | u8 type | u8 0 | u16 key length | f64 seq | body
 *
 * message and copy bodies: f64 accepted-at, the key (UTF-8), the encoded message
 * ack bodies:              pairs of f64 (first, last) sequence numbers acknowledged
 * attempt bodies:          u32 deliveries so far (of message `seq`)
 * purge:                   no body; every message up to `seq` is gone
 *
 * The checksum covers everything but the length and itself; a length that runs past the end of
 * the file or a checksum that does not match marks a torn or corrupt record, and the reader skips
 * ahead to the next record that is whole.
 */
import { readSync } from 'node:fs';
import * as zlib from 'node:zlib';

export const SEGMENT_MAGIC = Buffer.from('IOTBUF01', 'latin1');
export const SEGMENT_HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 20;
const MESSAGE_PREFIX_BYTES = 8;

export const RecordType = { message: 1, ack: 2, attempt: 3, copy: 4, purge: 5 } as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

/** Bodies larger than this are taken for a torn length field, not a record. */
export const MAX_RECORD_BODY = 0x7fff_ffff;

/** A message's key length is a 16-bit field of the record header. */
export const MAX_KEY_BYTES = 0xffff;

/** zlib's CRC-32 where Node has it (20.15+), a table-driven one before. */
export const crc32: (data: Uint8Array) => number = typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : tableCrc32();

function tableCrc32(): (data: Uint8Array) => number {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return (data) => {
    let crc = -1;
    for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
    return (crc ^ -1) >>> 0;
  };
}

export function segmentHeader(segment: number): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(header, 0);
  header.writeDoubleLE(segment, 8);
  return header;
}

/** The segment number a header names, or undefined when it is no segment header. */
export function readSegmentHeader(header: Buffer): number | undefined {
  if (header.length < SEGMENT_HEADER_BYTES || !header.subarray(0, 8).equals(SEGMENT_MAGIC)) return undefined;
  const segment = header.readDoubleLE(8);
  return Number.isSafeInteger(segment) && segment >= 0 ? segment : undefined;
}

export function messageRecordSize(keyBytes: number, bodyBytes: number): number {
  return RECORD_HEADER_BYTES + MESSAGE_PREFIX_BYTES + keyBytes + bodyBytes;
}

/** Records appended into one growing buffer, written with one write() and one fdatasync(). */
export class RecordBatch {
  private buffer: Buffer;
  length = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  get bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  get capacity(): number {
    return this.buffer.length;
  }

  /** Empties the batch to fill it again. */
  reset(): this {
    this.length = 0;
    return this;
  }

  /** Appends a message or copy record (a text body is written as UTF-8); returns its offset. */
  message(type: typeof RecordType.message | typeof RecordType.copy, seq: number, key: string, acceptedAt: number, body: Buffer | string): number {
    const keyBytes = Buffer.byteLength(key);
    const bodyBytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const start = this.begin(MESSAGE_PREFIX_BYTES + keyBytes + bodyBytes, type, seq, keyBytes);
    const at = start + RECORD_HEADER_BYTES;
    this.buffer.writeDoubleLE(acceptedAt, at);
    this.buffer.write(key, at + MESSAGE_PREFIX_BYTES, 'utf8');
    if (typeof body === 'string') this.buffer.write(body, at + MESSAGE_PREFIX_BYTES + keyBytes, 'utf8');
    else body.copy(this.buffer, at + MESSAGE_PREFIX_BYTES + keyBytes);
    return this.finish(start);
  }

  ack(ranges: ReadonlyArray<readonly [number, number]>): number {
    const start = this.begin(16 * ranges.length, RecordType.ack, 0, 0);
    ranges.forEach(([first, last], i) => {
      this.buffer.writeDoubleLE(first, start + RECORD_HEADER_BYTES + 16 * i);
      this.buffer.writeDoubleLE(last, start + RECORD_HEADER_BYTES + 16 * i + 8);
    });
    return this.finish(start);
  }

  attempt(seq: number, attempts: number): number {
    const start = this.begin(4, RecordType.attempt, seq, 0);
    this.buffer.writeUInt32LE(Math.min(attempts, 0xffff_ffff), start + RECORD_HEADER_BYTES);
    return this.finish(start);
  }

  purge(upTo: number): number {
    return this.finish(this.begin(0, RecordType.purge, upTo, 0));
  }

  private begin(bodyBytes: number, type: RecordTypeCode, seq: number, keyBytes: number): number {
    const start = this.length;
    const end = start + RECORD_HEADER_BYTES + bodyBytes;
    if (end > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(end, this.buffer.length * 2));
      this.buffer.copy(grown, 0, 0, start);
      this.buffer = grown;
    }
    this.buffer.writeUInt32LE(bodyBytes, start);
    this.buffer.writeUInt8(type, start + 8);
    this.buffer.writeUInt8(0, start + 9);
    this.buffer.writeUInt16LE(keyBytes, start + 10);
    this.buffer.writeDoubleLE(seq, start + 12);
    this.length = end;
    return start;
  }

  private finish(start: number): number {
    this.buffer.writeUInt32LE(crc32(this.buffer.subarray(start + 8, this.length)), start + 4);
    return start;
  }
}

/** A record as read back. `body` points into the reader's window: copy what you keep. */
export interface ParsedRecord {
  type: RecordTypeCode;
  seq: number;
  /** File position of the record. */
  position: number;
  /** Whole record length, header included. */
  length: number;
  body: Buffer;
  keyBytes: number;
}

/** Bytes the reader skipped because they held no whole record. */
export interface SkippedRegion {
  from: number;
  to: number;
}

export interface MessageFields {
  acceptedAt: number;
  key: string;
  message: Buffer;
}

/** The fields of a message or copy record (the message is copied out of the window). */
export function messageFields(record: ParsedRecord): MessageFields {
  const acceptedAt = record.body.readDoubleLE(0);
  const key = record.body.toString('utf8', MESSAGE_PREFIX_BYTES, MESSAGE_PREFIX_BYTES + record.keyBytes);
  const message = Buffer.from(record.body.subarray(MESSAGE_PREFIX_BYTES + record.keyBytes));
  return { acceptedAt, key, message };
}

export function ackRanges(record: ParsedRecord): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (let at = 0; at + 16 <= record.body.length; at += 16) ranges.push([record.body.readDoubleLE(at), record.body.readDoubleLE(at + 8)]);
  return ranges;
}

export function attemptCount(record: ParsedRecord): number {
  return record.body.readUInt32LE(0);
}

/**
 * Reads the records of one segment file in order, through a window, up to `limit` (which may grow
 * as the segment is written). Damaged bytes are skipped and reported through `onSkipped`.
 */
export class RecordReader {
  private window: Buffer;
  private windowStart = 0;
  private windowLength = 0;

  constructor(
    private readonly fd: number,
    public position: number,
    public limit: number,
    private readonly onSkipped: (region: SkippedRegion) => void,
    windowBytes = 256 * 1024,
  ) {
    this.window = Buffer.allocUnsafe(windowBytes);
  }

  /** The next whole record, or undefined at the limit. */
  next(): ParsedRecord | undefined {
    while (this.position < this.limit) {
      const record = this.recordAt(this.position);
      if (record) {
        this.position += record.length;
        return record;
      }
      const from = this.position;
      this.position = this.nextWholeRecord(from + 1);
      this.onSkipped({ from, to: this.position });
    }
    return undefined;
  }

  /** The record that starts exactly at position, if one whole and valid record does. */
  private recordAt(position: number): ParsedRecord | undefined {
    if (this.limit - position < RECORD_HEADER_BYTES) return undefined;
    let at = this.inWindow(position, RECORD_HEADER_BYTES);
    const bodyBytes = this.window.readUInt32LE(at);
    const type = this.window[at + 8];
    const keyBytes = this.window.readUInt16LE(at + 10);
    if (type < RecordType.message || type > RecordType.purge || this.window[at + 9] !== 0) return undefined;
    if (bodyBytes > MAX_RECORD_BODY || position + RECORD_HEADER_BYTES + bodyBytes > this.limit || keyBytes > bodyBytes) return undefined;
    const length = RECORD_HEADER_BYTES + bodyBytes;
    at = this.inWindow(position, length);
    const window = this.window;
    if (crc32(window.subarray(at + 8, at + length)) !== window.readUInt32LE(at + 4)) return undefined;
    return { type: type as RecordTypeCode, seq: window.readDoubleLE(at + 12), position, length, body: window.subarray(at + RECORD_HEADER_BYTES, at + length), keyBytes };
  }

  private nextWholeRecord(from: number): number {
    for (let candidate = from; candidate + RECORD_HEADER_BYTES <= this.limit; candidate++) {
      if (this.recordAt(candidate)) return candidate;
    }
    return this.limit;
  }

  /** Where `length` bytes of the file from `position` are in the window (read there if not yet). */
  private inWindow(position: number, length: number): number {
    if (position < this.windowStart || position + length > this.windowStart + this.windowLength) {
      if (length > this.window.length) this.window = Buffer.allocUnsafe(length);
      const wanted = Math.min(this.window.length, this.limit - position);
      let read = 0;
      while (read < wanted) {
        const n = readSync(this.fd, this.window, read, wanted - read, position + read);
        if (n === 0) break;
        read += n;
      }
      this.windowStart = position;
      this.windowLength = read;
      if (read < length) throw Object.assign(new Error(`segment file shorter than expected at ${position}`), { code: 'EIO' });
    }
    return position - this.windowStart;
  }
}
