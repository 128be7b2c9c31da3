/**
 * The sandbox org's data: records by id, per-object lists in creation order, indexes on external
 * id and unique fields (case-insensitive, as Salesforce compares them), and published platform
 * events. Every change is appended to a JSON-lines file, replayed at start, so records outlive a
 * restart; the file is compacted at start when superseded lines outnumber live ones.
 */
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export type Fields = Record<string, unknown>;

export interface StoredRecord {
  type: string;
  fields: Fields & { Id: string };
}

export interface PublishedEvent {
  type: string;
  fields: Fields;
}

/** A record saved: created (no previous) or changed. Told to listeners once its transaction commits. */
export interface RecordChange {
  previous?: StoredRecord;
  record: StoredRecord;
}

/** A message on a streaming channel, kept for the org's retention window (event-bus.ts). */
export interface StreamEvent {
  channel: string;
  replayId: number;
  /** When it was published (ms since epoch): the retention window counts from it. */
  at: number;
  data: Record<string, unknown>;
}

interface JournalLine {
  /** A record, whole, as it stands after the change. */
  r?: StoredRecord;
  /** A published event. */
  e?: PublishedEvent;
  /** A streaming channel's event. */
  b?: StreamEvent;
}

/** Changes made inside a transaction: undone together, or written to the file together. */
interface Transaction {
  undo: Array<() => void>;
  lines: JournalLine[];
  changes: RecordChange[];
  published: PublishedEvent[];
}

export class RecordStore {
  private readonly records = new Map<string, StoredRecord>();
  private readonly ofType = new Map<string, Map<string, StoredRecord>>();
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  readonly events: PublishedEvent[] = [];
  /** The streaming channels' retained events, oldest first (pruned by the event bus). */
  readonly streamEvents: StreamEvent[] = [];
  private readonly changeListeners: Array<(change: RecordChange) => void> = [];
  private readonly publishListeners: Array<(event: PublishedEvent) => void> = [];
  private journal: WriteStream | undefined;
  private transaction: Transaction | undefined;

  /** indexed(type) names the fields of that object to index for lookups by value. */
  constructor(
    private readonly indexed: (type: string) => string[],
    private readonly file?: string,
  ) {}

  /** Replays the records file, then appends to it. Returns every id found, for the id factory. */
  open(): string[] {
    if (!this.file) return [];
    mkdirSync(dirname(this.file), { recursive: true });
    let lines = 0;
    if (existsSync(this.file)) {
      for (const line of readFileSync(this.file, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        lines++;
        const entry = JSON.parse(line) as JournalLine;
        if (entry.r) this.keep(entry.r);
        if (entry.e) this.events.push(entry.e);
        if (entry.b) this.streamEvents.push(entry.b);
      }
    }
    const live = this.records.size + this.events.length + this.streamEvents.length;
    if (lines > 2 * live + 100) this.compact();
    this.journal = createWriteStream(this.file, { flags: 'a' });
    return [...this.records.keys(), ...this.events.map((e) => String(e.fields.EventUuid ?? ''))];
  }

  get(id: string): StoredRecord | undefined {
    return this.records.get(id);
  }

  /** The records of a type in creation order. */
  all(type: string): StoredRecord[] {
    return [...(this.ofType.get(type)?.values() ?? [])];
  }

  count(type: string): number {
    return this.ofType.get(type)?.size ?? 0;
  }

  /** Ids of the records of a type whose field holds this value (case-insensitive). */
  find(type: string, field: string, value: string): string[] {
    return [...(this.indexes.get(`${type}.${field}`)?.get(value.toLowerCase()) ?? [])];
  }

  save(record: StoredRecord): void {
    const previous = this.records.get(record.fields.Id);
    this.keep(record);
    this.transaction?.undo.push(() => (previous ? this.keep(previous) : this.drop(record)));
    this.append({ r: record });
    const change = previous ? { previous, record } : { record };
    if (this.transaction) this.transaction.changes.push(change);
    else this.changed(change);
  }

  /** Calls the listener for every record saved, once its transaction (if any) committed. */
  onChange(listener: (change: RecordChange) => void): void {
    this.changeListeners.push(listener);
  }

  /** Keeps a streaming event in the file (it is already in streamEvents). */
  appendStream(event: StreamEvent): void {
    this.append({ b: event });
  }

  publish(event: PublishedEvent): void {
    this.events.push(event);
    this.transaction?.undo.push(() => this.events.splice(this.events.indexOf(event), 1));
    this.append({ e: event });
    if (this.transaction) this.transaction.published.push(event);
    else this.publishListeners.forEach((listener) => listener(event));
  }

  /** Calls the listener for every platform event published, once its transaction (if any) committed. */
  onPublish(listener: (event: PublishedEvent) => void): void {
    this.publishListeners.push(listener);
  }

  /** Runs fn as one transaction: when it answers false, every change it made is undone. */
  atomically<T>(fn: () => { keep: boolean; result: T }): T {
    const transaction: Transaction = { undo: [], lines: [], changes: [], published: [] };
    this.transaction = transaction;
    let outcome: { keep: boolean; result: T } | undefined;
    try {
      outcome = fn();
    } finally {
      this.transaction = undefined;
      if (outcome?.keep) {
        transaction.lines.forEach((line) => this.append(line));
        transaction.changes.forEach((change) => this.changed(change));
        transaction.published.forEach((event) => this.publishListeners.forEach((listener) => listener(event)));
      } else {
        transaction.undo.reverse().forEach((undo) => undo());
      }
    }
    return outcome.result;
  }

  /** Forgets everything, the file included (tests start from an empty org). */
  clear(): void {
    this.records.clear();
    this.ofType.clear();
    this.indexes.clear();
    this.events.length = 0;
    this.streamEvents.length = 0;
    if (this.file && this.journal) {
      this.journal.end();
      writeFileSync(this.file, '');
      this.journal = createWriteStream(this.file, { flags: 'a' });
    }
  }

  async close(): Promise<void> {
    const journal = this.journal;
    this.journal = undefined;
    if (journal) await new Promise<void>((resolve) => journal.end(() => resolve()));
  }

  private changed(change: RecordChange): void {
    for (const listener of this.changeListeners) listener(change);
  }

  private keep(record: StoredRecord): void {
    const previous = this.records.get(record.fields.Id);
    if (previous) this.unindex(previous);
    let ofType = this.ofType.get(record.type);
    if (!ofType) this.ofType.set(record.type, (ofType = new Map()));
    // A Map keeps the first insertion's place when a key is set again: creation order holds.
    ofType.set(record.fields.Id, record);
    this.records.set(record.fields.Id, record);
    for (const field of this.indexed(record.type)) {
      const value = record.fields[field];
      if (value === undefined || value === null || value === '') continue;
      const key = `${record.type}.${field}`;
      let index = this.indexes.get(key);
      if (!index) this.indexes.set(key, (index = new Map()));
      const normalised = String(value).toLowerCase();
      let holders = index.get(normalised);
      if (!holders) index.set(normalised, (holders = new Set()));
      holders.add(record.fields.Id);
    }
  }

  private unindex(record: StoredRecord): void {
    for (const field of this.indexed(record.type)) {
      const value = record.fields[field];
      if (value === undefined || value === null || value === '') continue;
      this.indexes.get(`${record.type}.${field}`)?.get(String(value).toLowerCase())?.delete(record.fields.Id);
    }
  }

  private drop(record: StoredRecord): void {
    this.unindex(record);
    this.records.delete(record.fields.Id);
    this.ofType.get(record.type)?.delete(record.fields.Id);
  }

  private append(line: JournalLine): void {
    if (this.transaction) this.transaction.lines.push(line);
    else this.journal?.write(`${JSON.stringify(line)}\n`);
  }

  private compact(): void {
    const file = this.file as string;
    const lines = [...this.records.values()]
      .map((r) => JSON.stringify({ r }))
      .concat(this.events.map((e) => JSON.stringify({ e })))
      .concat(this.streamEvents.map((b) => JSON.stringify({ b })));
    writeFileSync(`${file}.tmp`, lines.length > 0 ? `${lines.join('\n')}\n` : '');
    renameSync(`${file}.tmp`, file);
  }
}
