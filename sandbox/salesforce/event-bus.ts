/**
 * The org's event bus as the Streaming API serves it: platform events on `/event/<Name>__e`, and
 * Change Data Capture on `/data/<Object>ChangeEvent` (a custom object `Cmd__c` on
 * `/data/Cmd__ChangeEvent`) and `/data/ChangeEvents` (every selected object). Each event gets a
 * replay id when it is published; ids increase but have gaps, as Salesforce's do, so that a
 * client computing ids instead of keeping them fails here as it would there. Events are kept for
 * the retention window (72 hours in Salesforce), in the records file, so they outlive a restart
 * of the sandbox; a replay id older than what is kept is refused (the subscriber gets the 400
 * Salesforce sends).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ObjectSpec, Schema } from './schema';
import type { PublishedEvent, RecordChange, RecordStore, StreamEvent } from './store';

export const ALL_CHANGES = '/data/ChangeEvents';

/** Salesforce keeps platform events and change events for 72 hours. */
export const RETENTION_MS = 72 * 3_600_000;

/** Fields of a record that a change event never carries (the id is in the header). */
const NOT_IN_CHANGES = new Set(['Id', 'IsDeleted', 'SystemModstamp']);

/** The change event channel of an object: Case -> CaseChangeEvent, Cmd__c -> Cmd__ChangeEvent. */
export function changeChannel(object: string): string {
  return `/data/${object.endsWith('__c') ? object.slice(0, -1) : object}ChangeEvent`;
}

export interface EventBusOptions {
  store: RecordStore;
  schema: Schema;
  /** Objects whose record changes are published (Setup > Change Data Capture). */
  changeEntities: readonly string[];
  retentionMs: number;
  now: () => number;
}

export class EventBus {
  private last = 0;
  private issued = 0;
  private commits = 0;
  /** Per channel, the highest replay id no longer kept: a replay from it or before is refused. */
  private readonly purgedThrough = new Map<string, number>();
  private readonly listeners = new Set<(event: StreamEvent) => void>();
  private readonly entities: Set<string>;
  retentionMs: number;

  constructor(private readonly options: EventBusOptions) {
    this.retentionMs = options.retentionMs;
    this.entities = new Set(options.changeEntities.map((name) => options.schema.object(name)?.name ?? name));
    for (const event of options.store.streamEvents) this.last = Math.max(this.last, event.replayId);
    for (const event of options.store.events) this.last = Math.max(this.last, Number(event.fields.ReplayId) || 0);
    options.store.onPublish((event) => this.platformEvent(event));
    options.store.onChange((change) => this.recordChanged(change));
    this.prune();
  }

  /** The replay id for the next event: greater than every one before, not one more. */
  nextReplayId(): number {
    this.last += 1 + (this.issued++ % 3);
    return this.last;
  }

  get lastReplayId(): number {
    return this.last;
  }

  /** Whether a client may subscribe to the channel: a platform event, or an object whose changes are published. */
  channelExists(channel: string): boolean {
    if (channel === ALL_CHANGES) return this.entities.size > 0;
    const event = /^\/event\/([A-Za-z][A-Za-z0-9_]*__e)$/.exec(channel);
    if (event) return this.options.schema.object(event[1])?.kind === 'event';
    return [...this.entities].some((entity) => changeChannel(entity) === channel);
  }

  /** The events kept for the channel, oldest first. */
  retained(channel: string): StreamEvent[] {
    this.prune();
    return this.options.store.streamEvents.filter((event) => matches(channel, event.channel));
  }

  /**
   * What a subscription with this replay option receives at once: -1 nothing (new events only),
   * -2 every event kept, N the events after N; 'invalid' when N is no longer kept (or was never
   * given out).
   */
  replay(channel: string, from: number): StreamEvent[] | 'invalid' {
    if (from === -1) return [];
    const kept = this.retained(channel);
    if (from === -2) return kept;
    if (!Number.isInteger(from) || from < 0 || from > this.last || from <= (this.purgedThrough.get(channel) ?? 0)) return 'invalid';
    return kept.filter((event) => event.replayId > from);
  }

  onEvent(listener: (event: StreamEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets the events up to this replay id (all of them without one), as if their retention had passed. */
  purge(through = this.last): number {
    const events = this.options.store.streamEvents;
    let dropped = 0;
    while (dropped < events.length && events[dropped].replayId <= through) this.forget(events[dropped++]);
    events.splice(0, dropped);
    return dropped;
  }

  /** Numbering goes on, events are gone (the store was cleared). */
  clear(): void {
    this.purgedThrough.clear();
  }

  private prune(): void {
    const events = this.options.store.streamEvents;
    const before = this.options.now() - this.retentionMs;
    let dropped = 0;
    while (dropped < events.length && events[dropped].at < before) this.forget(events[dropped++]);
    if (dropped > 0) events.splice(0, dropped);
  }

  private forget(event: StreamEvent): void {
    for (const channel of event.channel.startsWith('/data/') ? [event.channel, ALL_CHANGES] : [event.channel]) {
      this.purgedThrough.set(channel, Math.max(this.purgedThrough.get(channel) ?? 0, event.replayId));
    }
  }

  private platformEvent(published: PublishedEvent): void {
    const { ReplayId, EventUuid, ...payload } = published.fields;
    const replayId = Number(ReplayId) || this.nextReplayId();
    this.emit(`/event/${published.type}`, replayId, { payload, event: { EventUuid: EventUuid ?? randomUUID(), replayId } });
  }

  private recordChanged({ previous, record }: RecordChange): void {
    if (!this.entities.has(record.type)) return;
    const spec = this.options.schema.object(record.type) as ObjectSpec;
    const fields: Record<string, unknown> = {};
    const changed: string[] = [];
    for (const name of Object.keys(spec.fields)) {
      if (NOT_IN_CHANGES.has(name)) continue;
      const value = record.fields[name];
      if (previous) {
        if (JSON.stringify(value ?? null) === JSON.stringify(previous.fields[name] ?? null)) continue;
        changed.push(name);
        fields[name] = value ?? null;
      } else if (value !== undefined && value !== null) {
        fields[name] = value;
      }
    }
    const header: Record<string, unknown> = {
      entityName: record.type,
      recordIds: [record.fields.Id],
      changeType: previous ? 'UPDATE' : 'CREATE',
      changeOrigin: 'com/salesforce/api/rest/62.0',
      transactionKey: randomUUID(),
      sequenceNumber: 1,
      commitTimestamp: this.options.now(),
      commitNumber: ++this.commits,
      commitUser: record.fields.LastModifiedById ?? record.fields.CreatedById ?? null,
    };
    if (previous) header.changedFields = changed;
    const replayId = this.nextReplayId();
    this.emit(changeChannel(record.type), replayId, { payload: { ChangeEventHeader: header, ...fields }, event: { replayId } });
  }

  private emit(channel: string, replayId: number, data: { payload: Record<string, unknown>; event: Record<string, unknown> }): void {
    const event: StreamEvent = { channel, replayId, at: this.options.now(), data: { schema: schemaId(channel), ...data } };
    this.options.store.streamEvents.push(event);
    this.options.store.appendStream(event);
    for (const listener of this.listeners) listener(event);
  }
}

/** Whether an event of `channel` goes to a subscription of `subscription`. */
export function matches(subscription: string, channel: string): boolean {
  return subscription === channel || (subscription === ALL_CHANGES && channel.startsWith('/data/') && channel.endsWith('ChangeEvent'));
}

/** A stable schema id per channel, shaped like Salesforce's (22 characters). */
function schemaId(channel: string): string {
  return createHash('sha256').update(channel).digest('base64url').slice(0, 22);
}
