/**
 * The local store's crash recovery (nodes/buffer/recovery.ts) on folders written record by record:
 * what each segment holds (from its summary or by scanning), torn and damaged bytes, files that
 * are no segments, and from all segments together which messages still wait.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordBatch, RecordType, SEGMENT_HEADER_BYTES, segmentHeader } from '../../nodes/buffer/records';
import { closeQuietly, rebuildLiveness, recoverSegments, segmentPath, summaryOf, summaryPath, writeSummary, type Segment } from '../../nodes/buffer/recovery';

const dirs: string[] = [];
const opened: Segment[] = [];
afterEach(() => {
  for (const segment of opened.splice(0)) closeQuietly(segment.fd);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'iot-buffer-recovery-'));
  dirs.push(dir);
  return dir;
}

/** Writes segment `id` with a header and the records `fill` appends; returns its bytes. */
function segmentFile(dir: string, id: number, fill: (records: RecordBatch) => void): Buffer {
  const records = new RecordBatch();
  fill(records);
  const bytes = Buffer.concat([segmentHeader(id), records.bytes]);
  writeFileSync(segmentPath(dir, id), bytes);
  return bytes;
}

const message = (records: RecordBatch, seq: number, body = `m${seq}`) => records.message(RecordType.message, seq, 'k', 1_000 + seq, body);

function recover(dir: string) {
  const recovered = recoverSegments(dir);
  opened.push(...recovered.segments);
  return recovered;
}

describe('recovering the segments of a data folder', () => {
  it('finds nothing in an empty folder, and removes half-written summaries', () => {
    const dir = folder();
    writeFileSync(join(dir, '0000000000000001.sum.tmp'), 'half');
    expect(recover(dir)).toEqual({ segments: [], problems: [] });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('counts what each segment holds by scanning it, and writes a summary of the sealed ones', () => {
    const dir = folder();
    segmentFile(dir, 1, (r) => [1, 2, 3].forEach((seq) => message(r, seq)));
    segmentFile(dir, 2, (r) => {
      message(r, 4);
      r.ack([[1, 2]]);
      r.attempt(3, 2);
    });
    const { segments, problems } = recover(dir);
    expect(problems).toEqual([]);
    expect(segments.map((s) => [s.id, s.messages, s.firstSeq, s.lastSeq, s.acks.toPairs(), [...s.attempts]])).toEqual([
      [1, 3, 1, 3, [], []],
      [2, 1, 4, 4, [[1, 2]], [[3, 2]]],
    ]);
    // The sealed segment got a summary; the newest (still written to) did not.
    expect(existsSync(summaryPath(dir, 1))).toBe(true);
    expect(existsSync(summaryPath(dir, 2))).toBe(false);
  });

  it('trusts a whole summary of a sealed segment, and scans when the summary does not describe the file', async () => {
    const dir = folder();
    segmentFile(dir, 1, (r) => [1, 2].forEach((seq) => message(r, seq)));
    segmentFile(dir, 2, (r) => message(r, 3));
    const first = recover(dir).segments[0];
    // A summary that says something else about a file of the same size is believed (not scanned)...
    await writeSummary(dir, { ...first, messages: 7 });
    opened.splice(0).forEach((s) => closeQuietly(s.fd));
    expect(recover(dir).segments[0].messages).toBe(7);
    opened.splice(0).forEach((s) => closeQuietly(s.fd));
    // ...but not once the file's size differs from the size it names, nor when its checksum is wrong.
    writeFileSync(summaryPath(dir, 1), readFileSync(summaryPath(dir, 1), 'utf8').replace('"messages":7', '"messages":8'));
    expect(recover(dir).segments[0].messages).toBe(2);
    opened.splice(0).forEach((s) => closeQuietly(s.fd));
    await writeSummary(dir, { ...first, size: first.size + 1, messages: 9 });
    expect(recover(dir).segments[0].messages).toBe(2);
  });

  it('cuts a torn write at the end of the newest segment and keeps every whole record before it', () => {
    const dir = folder();
    const bytes = segmentFile(dir, 1, (r) => [1, 2].forEach((seq) => message(r, seq)));
    const torn = new RecordBatch();
    message(torn, 3, 'x'.repeat(100));
    writeFileSync(segmentPath(dir, 1), Buffer.concat([bytes, torn.bytes.subarray(0, 50)]));
    const { segments, problems } = recover(dir);
    expect(problems).toEqual(['50 byte(s) of an unfinished write at the end of 0000000000000001.seg were discarded (never acknowledged to the flow)']);
    expect(segments[0]).toMatchObject({ messages: 2, size: bytes.length });
    expect(statSync(segmentPath(dir, 1)).size).toBe(bytes.length);
  });

  it('skips damaged bytes in the middle and keeps what follows them', () => {
    const dir = folder();
    const bytes = segmentFile(dir, 1, (r) => [1, 2, 3].forEach((seq) => message(r, seq)));
    segmentFile(dir, 2, (r) => message(r, 4));
    // Flip a byte in the body of the second record.
    const recordBytes = (bytes.length - SEGMENT_HEADER_BYTES) / 3;
    bytes[SEGMENT_HEADER_BYTES + recordBytes + 30] ^= 0xff;
    writeFileSync(segmentPath(dir, 1), bytes);
    const { segments, problems } = recover(dir);
    expect(problems).toEqual([`${recordBytes} damaged byte(s) at ${SEGMENT_HEADER_BYTES + recordBytes} in 0000000000000001.seg skipped: any message stored there is lost`]);
    expect(segments.map((s) => [s.firstSeq, s.lastSeq, s.messages])).toEqual([
      [1, 3, 2],
      [4, 4, 1],
    ]);
  });

  it.each([
    ['a file with another header, in the middle', [2, 'garbage that is no segment header'], true],
    ['an empty newest file (its creator died before writing the header)', [3, ''], false],
  ] as const)('handles %s', (_what, [id, content], reported) => {
    const dir = folder();
    segmentFile(dir, 1, (r) => message(r, 1));
    if (id === 2) segmentFile(dir, 3, (r) => message(r, 2));
    writeFileSync(segmentPath(dir, id), content);
    const { segments, problems } = recover(dir);
    expect(segments.map((s) => s.id)).toEqual(id === 2 ? [1, 3] : [1]);
    if (reported) {
      expect(problems).toEqual([`0000000000000002.seg is not a segment of this store (bad header): moved aside to 0000000000000002.seg.corrupt; the messages it held are lost`]);
      expect(existsSync(`${segmentPath(dir, id)}.corrupt`)).toBe(true);
    } else {
      expect(problems).toEqual([]);
      expect(existsSync(segmentPath(dir, id))).toBe(false);
    }
  });
});

describe('what still waits, from all segments together', () => {
  it('skips acknowledged, copied and purged messages, keeps the latest copy of each, and goes on after the highest sequence', () => {
    const dir = folder();
    segmentFile(dir, 1, (r) => [1, 2, 3, 4, 5, 6].forEach((seq) => message(r, seq)));
    segmentFile(dir, 2, (r) => {
      [7, 8].forEach((seq) => message(r, seq));
      r.ack([[2, 3]]);
      r.message(RecordType.copy, 5, 'k', 1_005, 'm5');
      r.message(RecordType.copy, 6, 'k', 1_006, 'm6');
      r.attempt(5, 1);
    });
    segmentFile(dir, 3, (r) => {
      r.message(RecordType.copy, 5, 'k', 1_005, 'm5');
      r.ack([[6, 6]]);
      r.attempt(5, 3);
      message(r, 9);
    });
    const { segments } = recover(dir);
    const live = rebuildLiveness(segments);
    // Waiting: 1 and 4 in the first segment, 7 and 8 in the second, 9 and the latest copy of 5 in the third.
    expect(segments.map((s) => s.live)).toEqual([2, 2, 2]);
    expect(live.copies.map((c) => [c.seq, c.segment.id])).toEqual([[5, 3]]);
    expect([2, 3, 5, 6].map((seq) => live.dead.has(seq))).toEqual([true, true, true, true]);
    expect([1, 4, 7, 8, 9].map((seq) => live.dead.has(seq))).toEqual([false, false, false, false, false]);
    expect(live).toMatchObject({ purgedUpTo: 0, nextSeq: 10, messages: 6 });
    expect([...live.attempts]).toEqual([[5, 3]]);
    expect(live.bytes).toBe(segments.reduce((n, s) => n + s.liveBytes, 0));
  });

  it('counts nothing up to a purge, and never hands out a sequence number twice after one', () => {
    const dir = folder();
    segmentFile(dir, 1, (r) => [1, 2, 3].forEach((seq) => message(r, seq)));
    segmentFile(dir, 2, (r) => {
      r.purge(5);
    });
    segmentFile(dir, 3, (r) => message(r, 6));
    const { segments } = recover(dir);
    const live = rebuildLiveness(segments);
    expect(segments.map((s) => s.live)).toEqual([0, 0, 1]);
    expect(live).toMatchObject({ purgedUpTo: 5, nextSeq: 7, messages: 1 });
    expect(summaryOf(segments[1]).purge).toBe(5);
  });
});
