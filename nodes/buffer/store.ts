/**
 * What the queue needs from a storage backend (the local segmented log, Redis Streams), and the
 * coded errors backends report. The queue decides what to deliver when; a store only keeps
 * messages durably and hands them out in the order they were accepted.
 */

/** Codes the node reports on its error output and in its status. */
export type StoreErrorCode =
  | 'disk_full'
  | 'no_permission'
  | 'store_corrupt'
  | 'store_locked'
  | 'io_error'
  | 'backend_unavailable'
  | 'queue_full'
  | 'overloaded'
  | 'too_large'
  | 'closed';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

const ERRNO_CODES: Record<string, StoreErrorCode> = {
  ENOSPC: 'disk_full',
  EDQUOT: 'disk_full',
  EFBIG: 'disk_full',
  EACCES: 'no_permission',
  EPERM: 'no_permission',
  EROFS: 'no_permission',
};

/** A file-system failure as a coded error that says what was being done. */
export function storeErrorFrom(err: unknown, doing: string): StoreError {
  if (err instanceof StoreError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const code = ERRNO_CODES[errno] ?? 'io_error';
  const reason = (err as Error | undefined)?.message ?? String(err);
  const hint = code === 'disk_full' ? 'the disk is full' : code === 'no_permission' ? 'no permission' : 'input/output error';
  return new StoreError(code, `${doing}: ${hint} (${reason})`, { cause: err });
}

/** A message as stored: JSON text, or V8's serialisation (see message-codec.ts). */
export type EncodedMessage = string | Buffer;

/** Bytes an encoded message takes. */
export function encodedLength(body: EncodedMessage): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.length;
}

/** One message as a store hands it out. */
export interface StoredMessage {
  /** Increasing in the order messages were accepted (within this store's life for Redis). */
  readonly seq: number;
  /** Names the message across restarts (the crash record keeps it). */
  readonly ref: string;
  /** The ordering key (device id, topic, or the configured property). */
  readonly key: string;
  /** When the message was accepted (ms since epoch). */
  readonly acceptedAt: number;
  /** The encoded message, as bytes (see message-codec.ts). */
  readonly body: Buffer;
  /** Bytes it takes in the store: what the size capacity counts. */
  readonly size: number;
  /** Deliveries so far, as far as the store knows (survives restarts). */
  attempts: number;
  /** Lets go of the body in memory after it was decoded (when the store can read it back). */
  dropBody?(): void;
}

export interface RecoveryReport {
  /** Messages waiting after recovery (including ones to deliver again). */
  messages: number;
  bytes: number;
  /** What could not be recovered, or was repaired, in words. Empty when all was well. */
  problems: string[];
}

export type StoreCallback = (err: StoreError | null) => void;

export interface QueueStore<M extends StoredMessage = StoredMessage> {
  /** A short name for status and stats: 'local' or 'redis'. */
  readonly kind: string;
  /** Messages held, including those handed out and not yet settled. */
  readonly messages: number;
  /** Bytes held (0 when the backend does not count bytes). */
  readonly bytes: number;
  /** Messages the backend dropped by itself to make room (a capped Redis stream). */
  readonly dropped?: number;
  /** Set by the queue: called when take() may return more than it did. */
  onReadable: () => void;
  /** Set by the queue: a problem found while running (a corrupt record read back, a lost connection). */
  onProblem: (err: StoreError) => void;

  open(): Promise<RecoveryReport>;
  /** The bytes a message with this key and body would take. */
  sizeOf(key: string, body: EncodedMessage): number;
  /** Stores a message; `done(null)` once it is durable (accepted), `done(err)` if it is not. */
  append(key: string, body: EncodedMessage, acceptedAt: number, done: StoreCallback): void;
  /** Up to `max` messages never handed out before, oldest first; [] when none is ready now. */
  take(max: number): M[];
  /** When the next message take() would return was accepted, if there is one. */
  nextAcceptedAt(): number | undefined;
  /** Removes messages for good (acknowledged, dead-lettered, dropped); done once that is durable. */
  settle(messages: M[], done: StoreCallback): void;
  /** Remembers that a message was delivered once more (for msg.redelivered after a restart). */
  noteAttempt(message: M): void;
  /** Removes every message, handed out or not; done with how many were removed. */
  purge(done: (err: StoreError | null, removed: number) => void): void;
  /** Makes pending writes durable as soon as possible (the queue waits on them). */
  flush(): void;
  /** Finishes pending writes and lets go of files and connections. */
  close(): Promise<void>;
}
