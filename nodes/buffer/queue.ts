/**
 * The queue: what to deliver when, over any store. It accepts messages (or refuses them when
 * full, or drops the oldest), hands them out in order (FIFO, or in order per key so that one slow
 * device does not hold up the others), keeps at most its window of messages delivered and not
 * settled (window.ts: fixed, or following the sinks), paces deliveries to a rate, gathers
 * batches, delivers again what was not acknowledged in time or failed (with backoff), moves what
 * keeps failing to the dead letters, and sets aside what killed the process too often
 * (crash-record.ts).
 *
 * A delivery is one message or one batch, with an id; the first settlement of it counts. A message
 * counts as in flight from its delivery until its settlement is durable, so after a crash no more
 * than the window of messages are delivered twice. In FIFO order a failed delivery keeps its
 * place: nothing newer is delivered while it waits to go again, and failed deliveries go again
 * oldest first. In key order only its key waits.
 *
 * Deliveries are handed out in turns (one turn of the event loop); the last delivery of a turn
 * after which nothing more can go right now (nothing ready, the window full, the rate used up) is
 * marked `last`, so that a sink gathering batches writes at once instead of waiting for more.
 */
import { randomBytes } from 'node:crypto';
import { StoreError, type EncodedMessage, type QueueStore, type StoredMessage } from './store';
import type { Outcome } from '../shared/delivery';
import { formatDuration } from '../shared/duration';
import type { CrashRecord } from './crash-record';
import { DeliveryWindow } from './window';

export interface QueueOptions {
  /** 'fifo': one order for all; 'key': order per key, one delivery per key at a time. */
  order: 'fifo' | 'key';
  /** Messages delivered and not yet settled, at most: a number, or 'auto' (window.ts). */
  maxInFlight: number | 'auto';
  /** Messages per second; 0 for no limit. */
  ratePerSecond: number;
  /** Messages per delivery; 1 delivers them one by one. */
  batchSize: number;
  /** How long a batch may wait to fill up, from its first message. */
  batchWaitMs: number;
  /** 'settle': a delivery waits for its settlement; 'send': settled as it is sent. */
  ackMode: 'settle' | 'send';
  ackTimeoutMs: number;
  /** Deliveries before a message goes to the dead letters; 0 for no limit. */
  maxAttempts: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
  /** Capacity; 0 for no limit. */
  maxMessages: number;
  maxBytes: number;
  whenFull: 'refuse' | 'drop-oldest';
}

export interface Delivery<M extends StoredMessage = StoredMessage> {
  id: string;
  messages: M[];
  /** 1 for the first delivery, 2 for the first redelivery, ... */
  attempt: number;
  /** Nothing more can be delivered right after this one: a sink gathering a batch may write it. */
  last: boolean;
}

export interface QueueEvents<M extends StoredMessage = StoredMessage> {
  deliver(delivery: Delivery<M>): void;
  deadLetter(messages: M[], reason: string, attempts: number): void;
  /** Something the status shows has changed. */
  changed(): void;
}

export interface QueueStats {
  backend: string;
  /** Messages stored: waiting, held back and in flight. */
  depth: number;
  bytes: number;
  inFlight: number;
  /** The window now: how many may be in flight (fixed, or as it follows the sinks). */
  window: number;
  /** Messages held back because an earlier message of their key is in flight. */
  heldBack: number;
  paused: boolean;
  /** Age of the oldest message stored, in ms (0 when empty). */
  oldestAgeMs: number;
  /** Messages whose delivery failed and that wait to go again. */
  retrying: number;
  /** When the next of them goes again (ms since epoch), if any waits. */
  nextRetryAt?: number;
  /** Whether that next one waits because its sink said when to try again (a Retry-After). */
  heldBySink: boolean;
  accepted: number;
  refused: number;
  delivered: number;
  redelivered: number;
  acknowledged: number;
  deadLettered: number;
  dropped: number;
  purged: number;
}

type GroupState = 'out' | 'waiting' | 'settling';

/** One delivery: a message or a batch, delivered (again) until settled. */
interface Group<M> {
  messages: M[];
  attempt: number;
  /** Ids of every delivery of it; the last is the current one. */
  ids: string[];
  /** Deliveries of it that a sink reported failed: their later settlements do not count. */
  failedIds?: Set<string>;
  state: GroupState;
  deadline: number;
  dueAt: number;
  /** Waiting because the sink said when to try again (retryAfterMs), not for the backoff. */
  heldBySink?: boolean;
  /** When it was last handed on (for the round trip). */
  sentAt: number;
}

/** Per-key ordering sets messages of busy keys aside; past these it stops reading ahead. */
const HOLD_BACK_MESSAGES = 10_000;
const HOLD_BACK_BYTES = 16 * 1024 * 1024;
/** Single-message deliveries handed out in one go before yielding to the event loop. */
const DELIVERIES_PER_TURN = 512;

export class BufferQueue<M extends StoredMessage = StoredMessage> {
  private readonly nonce = randomBytes(4).toString('hex');
  private counter = 0;
  private readonly groups = new Map<string, Group<M>>();
  private readonly active = new Set<Group<M>>();
  /** Current deliveries awaiting settlement, in the order sent (so by deadline). */
  private readonly outstanding = new Map<string, Group<M>>();
  /** Failed deliveries waiting to be sent again, by due time. */
  private retries: Group<M>[] = [];
  private toSettle: Group<M>[] = [];
  private inFlight = 0;

  private readonly busyKeys = new Set<string>();
  private readonly heldBack = new Map<string, M[]>();
  private heldCount = 0;
  private heldBytes = 0;
  /** Held-back messages whose key became free, by sequence. */
  private ready: M[] = [];

  private forming: M[] = [];
  private formingSince = 0;

  private readonly window: DeliveryWindow;
  /** Messages taken from the store and not yet delivered: one with deaths counted waits here. */
  private deferred: M[] = [];
  /** The delivery of a message with deaths counted, out alone. */
  private probe: Group<M> | undefined;
  /** Whether the last turn stopped because the window was full (not for want of messages). */
  private windowLimited = false;

  private tokens: number;
  private tokensAt = Date.now();

  private paused = false;
  private closed = false;
  private pumpQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  /** Appends not yet durable, and messages waiting for them before dropping the oldest. */
  private appending = 0;
  private waitingForRoom: Array<() => void> = [];

  private readonly counts = { accepted: 0, refused: 0, delivered: 0, redelivered: 0, acknowledged: 0, deadLettered: 0, dropped: 0, purged: 0 };

  constructor(
    private readonly store: QueueStore<M>,
    private readonly options: QueueOptions,
    private readonly events: QueueEvents<M>,
    private readonly crashes?: CrashRecord,
  ) {
    this.tokens = this.tokenCapacity;
    this.window = new DeliveryWindow({ fixed: options.maxInFlight === 'auto' ? undefined : options.maxInFlight });
    store.onReadable = () => this.schedulePump();
  }

  /** A sink says how many unsettled messages it can usefully hold (an automatic window follows). */
  announceCapacity(sink: string, messages: number): void {
    const before = this.window.size(Date.now());
    this.window.announce(sink, messages, Date.now());
    if (this.window.size(Date.now()) > before) this.schedulePump();
  }

  /** The messages out now (handed on, not settled): what the crash record writes at a death. */
  outRefs(): string[] {
    const refs: string[] = [];
    for (const group of this.outstanding.values()) for (const m of group.messages) refs.push(m.ref);
    return refs;
  }

  // --- in -------------------------------------------------------------------------------------

  /** Starts delivering what the store holds (after it was opened). */
  start(): void {
    this.schedulePump();
  }

  /** Stores a message accepted at `acceptedAt` (ms); `done(null)` once it is durable, or a coded error (full, disk, closed). */
  accept(key: string, body: EncodedMessage, acceptedAt: number, done: (err: StoreError | null) => void): void {
    if (this.closed) {
      done(new StoreError('closed', 'the buffer is closing'));
      return;
    }
    const size = this.store.sizeOf(key, body);
    const { maxBytes, maxMessages } = this.options;
    if (maxBytes > 0 && size > maxBytes) {
      this.counts.refused++;
      done(new StoreError('too_large', `the message takes ${size} bytes, more than the whole queue may hold (${maxBytes})`));
      return;
    }
    if (this.full(size) && this.options.whenFull === 'drop-oldest') {
      while (this.full(size) && this.dropOldest());
      // The oldest messages are still being written: drop once they are, in arrival order.
      if (this.full(size) && (this.appending > 0 || this.waitingForRoom.length > 0)) {
        this.waitingForRoom.push(() => this.accept(key, body, acceptedAt, done));
        return;
      }
    }
    if (this.full(size)) {
      this.counts.refused++;
      const what = maxMessages > 0 && this.store.messages >= maxMessages ? `${this.store.messages} of ${maxMessages} messages` : `${this.store.bytes + size} of ${maxBytes} bytes with this message`;
      done(new StoreError('queue_full', `the queue is full (${what})${this.options.whenFull === 'drop-oldest' ? ', and every message in it is in flight' : ''}`));
      return;
    }
    this.appending++;
    this.store.append(key, body, acceptedAt, (err) => {
      this.appending--;
      if (err) this.counts.refused++;
      else this.counts.accepted++;
      this.events.changed();
      done(err);
      if (this.appending === 0 && this.waitingForRoom.length > 0) {
        const waiting = this.waitingForRoom;
        this.waitingForRoom = [];
        for (const retry of waiting) retry();
      }
    });
  }

  private full(size: number): boolean {
    const { maxBytes, maxMessages } = this.options;
    return (maxMessages > 0 && this.store.messages + 1 > maxMessages) || (maxBytes > 0 && this.store.bytes + size > maxBytes);
  }

  /** Drops the oldest message not yet delivered; false when there is none. */
  private dropOldest(): boolean {
    let victim: M | undefined = this.deferred.shift();
    if (victim) {
      this.dropped(victim);
      return true;
    }
    const readyHead = this.ready[0];
    let heldHead: M | undefined;
    for (const list of this.heldBack.values()) if (!heldHead || list[0].seq < heldHead.seq) heldHead = list[0];
    if (readyHead && (!heldHead || readyHead.seq < heldHead.seq)) victim = this.ready.shift();
    else if (heldHead) victim = this.unhold(heldHead.key);
    else victim = this.store.take(1)[0];
    if (!victim) return false;
    this.dropped(victim);
    return true;
  }

  private dropped(victim: M): void {
    this.counts.dropped++;
    if (this.options.order === 'key' && this.busyKeys.has(victim.key) && !this.isOut(victim)) this.freeKey(victim.key);
    this.survived([victim]);
    this.store.settle([victim], () => this.events.changed());
  }

  /** Whether a message is part of a delivery (out, waiting to go again, or being settled). */
  private isOut(m: M): boolean {
    for (const group of this.active) if (group.messages.includes(m)) return true;
    return false;
  }

  // --- settlement -----------------------------------------------------------------------------

  /** Settles a delivery. Returns false when it is unknown, already settled, or a stale attempt. */
  settle(id: string, outcome: Outcome): boolean {
    const group = this.groups.get(id);
    if (!group || group.state === 'settling' || group.failedIds?.has(id)) return false;
    if (outcome.ok) {
      this.finish(group, true);
      return true;
    }
    if (group.state !== 'out' || group.ids[group.ids.length - 1] !== id) return false;
    (group.failedIds ??= new Set()).add(id);
    this.fail(group, outcome.reason || 'failed', outcome.retry, outcome.retryAfterMs);
    return true;
  }

  /**
   * Moves messages of a delivery to the dead letters with the reason, at once: they cannot be
   * delivered (unreadable, unroutable). The rest of the delivery stays out; a delivery left empty
   * is over.
   */
  setAside(id: string, messages: readonly M[], reason: string): void {
    const group = this.groups.get(id);
    if (!group || group.state === 'settling') return;
    const aside = group.messages.filter((m) => messages.includes(m));
    if (aside.length === 0) return;
    if (aside.length === group.messages.length) {
      this.deadLetter(group, reason);
    } else {
      group.messages = group.messages.filter((m) => !messages.includes(m));
      // Its messages are already counted in flight, with the delivery they leave.
      const apart: Group<M> = { messages: aside, attempt: group.attempt, ids: [], state: 'out', deadline: 0, dueAt: 0, sentAt: group.sentAt };
      this.active.add(apart);
      this.deadLetter(apart, reason);
    }
    this.events.changed();
  }

  private fail(group: Group<M>, reason: string, retry: boolean, retryAfterMs: number | undefined): void {
    this.outstanding.delete(group.ids[group.ids.length - 1]);
    this.window.failed();
    this.deliveryOver(group);
    for (const m of group.messages) this.store.noteAttempt(m);
    const { maxAttempts } = this.options;
    if (!retry) {
      this.deadLetter(group, `failed for good: ${reason}`);
    } else if (maxAttempts > 0 && group.attempt >= maxAttempts) {
      this.deadLetter(group, `${reason} (after ${group.attempt} attempt${group.attempt === 1 ? '' : 's'})`);
    } else {
      group.state = 'waiting';
      const backoff = Math.min(this.options.retryDelayMaxMs, this.options.retryDelayMs * 2 ** (group.attempt - 1));
      group.heldBySink = retryAfterMs !== undefined && retryAfterMs > 0;
      group.dueAt = Date.now() + (retryAfterMs !== undefined && retryAfterMs >= 0 ? retryAfterMs : backoff);
      // FIFO: failed deliveries go again oldest first (by position, not by due time); per key:
      // each when it is due, other keys are not held up.
      const before = this.options.order === 'fifo' ? (g: Group<M>) => g.messages[0].seq > group.messages[0].seq : (g: Group<M>) => g.dueAt > group.dueAt;
      let at = this.retries.length;
      while (at > 0 && before(this.retries[at - 1])) at--;
      this.retries.splice(at, 0, group);
      this.armTimer();
    }
    this.events.changed();
  }

  private deadLetter(group: Group<M>, reason: string): void {
    this.counts.deadLettered += group.messages.length;
    this.events.deadLetter(group.messages, reason, group.attempt);
    this.finish(group, false);
  }

  /** The delivery is done (acknowledged or dead-lettered): its messages leave the store. */
  private finish(group: Group<M>, acknowledged: boolean): void {
    if (group.state === 'waiting') this.retries = this.retries.filter((g) => g !== group);
    else this.outstanding.delete(group.ids[group.ids.length - 1]);
    if (group.state === 'out') this.deliveryOver(group);
    group.state = 'settling';
    if (acknowledged) {
      this.counts.acknowledged += group.messages.length;
      const now = Date.now();
      this.window.settled(group.messages.length, now - group.sentAt, this.windowLimited, now);
    }
    // Settlements of one turn of the event loop are written as one record.
    if (this.toSettle.push(group) === 1) setImmediate(() => this.writeSettlements());
  }

  private writeSettlements(): void {
    const groups = this.toSettle;
    this.toSettle = [];
    const messages = groups.length === 1 ? groups[0].messages : groups.flatMap((g) => g.messages);
    this.store.settle(messages, () => {
      for (const group of groups) {
        if (!this.active.delete(group)) continue;
        for (const id of group.ids) this.groups.delete(id);
        this.inFlight -= group.messages.length;
        if (this.options.order === 'key') for (const m of group.messages) this.freeKey(m.key);
      }
      this.events.changed();
      this.schedulePump();
    });
    // Slots are wanted (the window is full, or messages wait for the keys these settlements
    // free): make them durable now rather than at the end of the fsync window.
    if (this.inFlight >= this.window.size(Date.now()) || this.heldCount > 0) this.store.flush();
  }

  /** A delivery is over without a death (settled, failed, timed out): its messages are cleared. */
  private deliveryOver(group: Group<M>): void {
    if (group === this.probe) {
      this.probe = undefined;
      this.schedulePump();
    }
    this.survived(group.messages);
  }

  private survived(messages: readonly M[]): void {
    const crashes = this.crashes;
    if (!crashes?.any) return;
    for (const m of messages) crashes.survived(m.ref);
  }

  // --- control --------------------------------------------------------------------------------

  pause(): void {
    this.paused = true;
    this.events.changed();
  }

  resume(): void {
    this.paused = false;
    this.events.changed();
    this.schedulePump();
  }

  /** Removes every message, in flight or not; late settlements of them are ignored. */
  purge(done: (err: StoreError | null, removed: number) => void): void {
    for (const group of [...this.active]) {
      if (group.state === 'settling') continue;
      for (const id of group.ids) this.groups.delete(id);
      this.active.delete(group);
    }
    this.outstanding.clear();
    this.retries = [];
    this.survived(this.deferred);
    if (this.probe) this.survived(this.probe.messages);
    this.deferred = [];
    this.probe = undefined;
    this.forming = [];
    this.ready = [];
    this.heldBack.clear();
    this.heldCount = 0;
    this.heldBytes = 0;
    this.busyKeys.clear();
    this.inFlight = [...this.active].reduce((n, g) => n + g.messages.length, 0);
    this.store.purge((err, removed) => {
      this.counts.purged += removed;
      this.events.changed();
      done(err, removed);
    });
  }

  stats(): QueueStats {
    let oldest = this.store.nextAcceptedAt() ?? Infinity;
    for (const group of this.active) for (const m of group.messages) oldest = Math.min(oldest, m.acceptedAt);
    for (const m of this.forming) oldest = Math.min(oldest, m.acceptedAt);
    if (this.ready.length > 0) oldest = Math.min(oldest, this.ready[0].acceptedAt);
    if (this.deferred.length > 0) oldest = Math.min(oldest, this.deferred[0].acceptedAt);
    for (const list of this.heldBack.values()) oldest = Math.min(oldest, list[0].acceptedAt);
    let retrying = 0;
    let next: Group<M> | undefined;
    for (const group of this.retries) {
      retrying += group.messages.length;
      if (!next || group.dueAt < next.dueAt) next = group;
    }
    return {
      backend: this.store.kind,
      depth: this.store.messages,
      bytes: this.store.bytes,
      inFlight: this.inFlight,
      window: this.window.size(Date.now()),
      heldBack: this.heldCount,
      paused: this.paused,
      oldestAgeMs: Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0,
      retrying,
      nextRetryAt: next?.dueAt,
      heldBySink: next?.heldBySink === true,
      ...this.counts,
      dropped: this.counts.dropped + (this.store.dropped ?? 0),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.toSettle.length > 0) this.writeSettlements();
    await this.store.close();
  }

  // --- delivering -----------------------------------------------------------------------------

  private get tokenCapacity(): number {
    return this.options.ratePerSecond > 0 ? Math.max(1, this.options.batchSize) : Infinity;
  }

  private schedulePump(): void {
    if (this.pumpQueued || this.closed) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    this.expire(now);
    if (!this.paused && !this.probe) {
      this.refill(now);
      const turn: Array<Group<M>> = [];
      while (this.retries.length > 0 && this.retries[0].dueAt <= now && this.tokens >= this.retries[0].messages.length) {
        const group = this.retries.shift() as Group<M>;
        this.spend(group.messages.length);
        turn.push(group);
      }
      let more = false;
      // FIFO: while a failed delivery waits to go again, nothing newer goes before it.
      if (this.options.order === 'key' || this.retries.length === 0) {
        if (!this.suspectFirst()) {
          if (this.options.batchSize > 1) this.deliverBatches(turn, now);
          else more = this.deliverSingles(turn, now);
        }
        if (this.suspectFirst()) this.probeNext(turn, now);
      }
      turn.forEach((group, i) => this.send(group, now, !more && i === turn.length - 1));
      if (more) this.schedulePump();
    }
    this.armTimer();
  }

  /** Whether the next message to deliver has deaths counted (it goes alone). */
  private suspectFirst(): boolean {
    const next = this.deferred[0];
    return next !== undefined && this.crashes !== undefined && this.crashes.any && this.crashes.deathsOf(next.ref) > 0;
  }

  /** Hands on the message with deaths counted, alone, once nothing else is out. */
  private probeNext(turn: Array<Group<M>>, now: number): void {
    if (turn.length > 0 || this.outstanding.size > 0 || this.forming.length > 0) return;
    const group = this.newGroup([this.deferred.shift() as M], now);
    this.spend(1);
    this.probe = group;
    turn.push(group);
  }

  /** Single deliveries; true when the turn stopped at its cap with more to deliver. */
  private deliverSingles(turn: Array<Group<M>>, now: number): boolean {
    let count = 0;
    while (count < DELIVERIES_PER_TURN) {
      const room = this.window.size(now) - this.inFlight;
      if (room <= 0) this.windowLimited = true;
      const want = Math.min(room, Math.floor(this.tokens), DELIVERIES_PER_TURN - count);
      if (want <= 0) return false;
      const messages = this.takeReady(want, now);
      if (messages.length === 0) {
        this.windowLimited = false;
        return false;
      }
      for (const m of messages) turn.push(this.newGroup([m], now));
      this.spend(messages.length);
      count += messages.length;
      if (this.suspectFirst()) return false;
    }
    return true;
  }

  private deliverBatches(turn: Array<Group<M>>, now: number): void {
    const { batchSize, batchWaitMs } = this.options;
    for (;;) {
      const room = this.window.size(now) - this.inFlight;
      if (room <= 0) this.windowLimited = true;
      if (room > 0 && this.forming.length < batchSize && !this.suspectFirst()) {
        const taken = this.takeReady(Math.min(room, batchSize - this.forming.length), now);
        if (taken.length === 0) this.windowLimited = false;
        if (this.forming.length === 0 && taken.length > 0) this.formingSince = now;
        this.forming.push(...taken);
        this.inFlight += taken.length;
      }
      if (this.forming.length === 0) return;
      const complete = this.forming.length >= batchSize || this.window.size(now) - this.inFlight <= 0 || this.suspectFirst();
      if (!complete && now < this.formingSince + batchWaitMs) return;
      if (this.tokens < this.forming.length) return;
      const batch = this.forming;
      this.forming = [];
      this.inFlight -= batch.length;
      turn.push(this.newGroup(batch, now));
      this.spend(batch.length);
      if (this.suspectFirst()) return;
    }
  }

  /**
   * Up to max messages that may be delivered now, oldest first. A message with as many deaths
   * counted as the limit is set aside; from one with fewer on, messages wait (deferred) so that it
   * can go alone.
   */
  private takeReady(max: number, now: number): M[] {
    const taken = this.takeInOrder(max);
    const crashes = this.crashes;
    if (!crashes?.any) return taken;
    const out: M[] = [];
    for (let i = 0; i < taken.length; i++) {
      const m = taken[i];
      const deaths = crashes.deathsOf(m.ref);
      if (deaths === 0) {
        out.push(m);
      } else if (crashes.limit > 0 && deaths >= crashes.limit) {
        this.deadLetter(this.newGroup([m], now), crashes.reasonFor(m.ref));
      } else {
        this.deferred.unshift(...taken.slice(i));
        break;
      }
    }
    return out;
  }

  private takeInOrder(max: number): M[] {
    const out = this.deferred.length > 0 ? this.deferred.splice(0, max) : [];
    if (this.options.order === 'fifo') {
      if (out.length < max) out.push(...this.store.take(max - out.length));
      return out;
    }
    // Deferred messages of key order hold their key already.
    while (out.length < max && this.ready.length > 0) {
      const m = this.ready.shift() as M;
      this.busyKeys.add(m.key);
      out.push(m);
    }
    while (out.length < max && this.heldCount < HOLD_BACK_MESSAGES && this.heldBytes < HOLD_BACK_BYTES) {
      const taken = this.store.take(max - out.length);
      if (taken.length === 0) break;
      for (const m of taken) {
        if (this.busyKeys.has(m.key)) {
          this.hold(m);
        } else {
          this.busyKeys.add(m.key);
          out.push(m);
        }
      }
    }
    return out;
  }

  private hold(m: M): void {
    const list = this.heldBack.get(m.key);
    if (list) list.push(m);
    else this.heldBack.set(m.key, [m]);
    this.heldCount++;
    this.heldBytes += m.size;
  }

  /** Takes the first held-back message of a key out of the hold. */
  private unhold(key: string): M | undefined {
    const list = this.heldBack.get(key);
    const m = list?.shift();
    if (!m) return undefined;
    if (list?.length === 0) this.heldBack.delete(key);
    this.heldCount--;
    this.heldBytes -= m.size;
    return m;
  }

  private freeKey(key: string): void {
    this.busyKeys.delete(key);
    const next = this.unhold(key);
    if (!next) return;
    let at = this.ready.length;
    while (at > 0 && this.ready[at - 1].seq > next.seq) at--;
    this.ready.splice(at, 0, next);
  }

  /** A new delivery of these messages, counted in flight; handed on by send(). */
  private newGroup(messages: M[], now: number): Group<M> {
    const group: Group<M> = { messages, attempt: 0, ids: [], state: 'out', deadline: 0, dueAt: 0, sentAt: now };
    this.active.add(group);
    this.inFlight += messages.length;
    return group;
  }

  private spend(messages: number): void {
    if (this.options.ratePerSecond > 0) this.tokens -= messages;
  }

  /** Sends a group (again) under a new delivery id. */
  private send(group: Group<M>, now: number, last: boolean): void {
    if (group.state === 'settling') return;
    const id = `${this.nonce}-${(++this.counter).toString(36)}`;
    group.ids.push(id);
    this.groups.set(id, group);
    let attempt = 0;
    for (const m of group.messages) attempt = Math.max(attempt, ++m.attempts);
    group.attempt = attempt;
    group.state = 'out';
    group.sentAt = now;
    group.deadline = now + this.options.ackTimeoutMs;
    if (attempt > 1) this.counts.redelivered += group.messages.length;
    else this.counts.delivered += group.messages.length;
    if (this.options.ackMode === 'send') {
      this.events.deliver({ id, messages: group.messages, attempt, last });
      if (group.state === 'out' && group.ids[group.ids.length - 1] === id) this.finish(group, true);
      return;
    }
    this.outstanding.set(id, group);
    this.events.deliver({ id, messages: group.messages, attempt, last });
  }

  /** Deliveries not settled in time are failures (delivered again at once, or dead-lettered). */
  private expire(now: number): void {
    if (this.options.ackMode === 'send') return;
    for (const group of this.outstanding.values()) {
      if (group.deadline > now) break;
      this.fail(group, `not acknowledged within ${formatDuration(this.options.ackTimeoutMs)}`, true, 0);
    }
  }

  private refill(now: number): void {
    const { ratePerSecond } = this.options;
    if (ratePerSecond <= 0) return;
    this.tokens = Math.min(this.tokenCapacity, this.tokens + ((now - this.tokensAt) * ratePerSecond) / 1000);
    this.tokensAt = now;
  }

  /** One timer for everything that waits: retries, ack deadlines, a forming batch, the rate. */
  private armTimer(): void {
    if (this.closed) return;
    let at = Infinity;
    if (this.retries.length > 0) at = this.retries[0].dueAt;
    if (this.options.ackMode === 'settle') {
      const first = this.outstanding.values().next();
      if (!first.done) at = Math.min(at, first.value.deadline);
    }
    if (!this.paused) {
      if (this.forming.length > 0) at = Math.min(at, this.formingSince + this.options.batchWaitMs);
      const { ratePerSecond } = this.options;
      if (ratePerSecond > 0 && this.tokens < 1 && this.inFlight < this.window.size(Date.now())) at = Math.min(at, Date.now() + Math.ceil(((1 - this.tokens) * 1000) / ratePerSecond));
      if (ratePerSecond > 0 && this.forming.length > 0 && this.tokens < this.forming.length) {
        at = Math.min(at, Date.now() + Math.ceil(((this.forming.length - this.tokens) * 1000) / ratePerSecond));
      }
    }
    if (at === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (!Number.isFinite(at)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - Date.now()));
  }
}
