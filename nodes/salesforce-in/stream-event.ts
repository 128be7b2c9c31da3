/**
 * What an event of the Streaming API says, read from the `data` of a Bayeux message: its replay
 * id, the key that identifies it for idempotent handling (a platform event's EventUuid, which the
 * docs advise because replay ids are not unique after an org migration; a change event's
 * transaction key and sequence number), when it happened, and what the flow is told of it.
 */

export interface StreamEventInfo {
  channel: string;
  replayId: number;
  /** Identifies the event for idempotent handling. */
  key: string;
  kind: 'platform' | 'change' | 'other';
  /** When it happened (ms since epoch), if it says. */
  time?: number;
  /** Change events: entity, record ids, CREATE/UPDATE/DELETE/UNDELETE, changed fields. */
  entity?: string;
  changeType?: string;
  recordIds?: string[];
  changedFields?: string[];
  /** The user whose change (or publish) it was. */
  user?: string;
}

type Data = { payload?: unknown; event?: { replayId?: unknown; EventUuid?: unknown } };

/** The event of a data message, or a sentence saying why it is not one. */
export function readStreamEvent(channel: string, data: unknown): { info: StreamEventInfo; payload: Record<string, unknown> } | string {
  if (data === null || typeof data !== 'object') return 'the message has no data';
  const { payload, event } = data as Data;
  const replayId = Number(event?.replayId);
  if (!Number.isSafeInteger(replayId)) return 'the event has no replay id';
  const body = payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as Record<string, unknown>) : {};
  const header = body.ChangeEventHeader as Record<string, unknown> | undefined;
  if (header && typeof header === 'object') {
    const transaction = typeof header.transactionKey === 'string' ? header.transactionKey : '';
    const info: StreamEventInfo = {
      channel,
      replayId,
      key: transaction ? `${transaction}:${String(header.sequenceNumber ?? 0)}` : `${channel}#${replayId}`,
      kind: 'change',
      time: finite(Number(header.commitTimestamp)),
      entity: typeof header.entityName === 'string' ? header.entityName : undefined,
      changeType: typeof header.changeType === 'string' ? header.changeType : undefined,
      recordIds: Array.isArray(header.recordIds) ? header.recordIds.filter((id): id is string => typeof id === 'string') : [],
      changedFields: Array.isArray(header.changedFields) ? header.changedFields.filter((f): f is string => typeof f === 'string') : undefined,
      user: typeof header.commitUser === 'string' ? header.commitUser : undefined,
    };
    return { info, payload: body };
  }
  const uuid = typeof event?.EventUuid === 'string' && event.EventUuid !== '' ? event.EventUuid : undefined;
  const info: StreamEventInfo = {
    channel,
    replayId,
    key: uuid ?? `${channel}#${replayId}`,
    kind: channel.startsWith('/event/') ? 'platform' : 'other',
    time: finite(Date.parse(String(body.CreatedDate ?? ''))),
    user: typeof body.CreatedById === 'string' ? body.CreatedById : undefined,
  };
  return { info, payload: body };
}

function finite(n: number): number | undefined {
  return Number.isFinite(n) ? n : undefined;
}

/** A channel name the Streaming API serves for events: /event/X__e, /data/XChangeEvent, /data/ChangeEvents. */
export function channelProblem(channel: string): string | undefined {
  if (/^\/event\/[A-Za-z][A-Za-z0-9_]*__e$/.test(channel)) return undefined;
  if (/^\/data\/(?:ChangeEvents|[A-Za-z][A-Za-z0-9_]*ChangeEvent)$/.test(channel)) return undefined;
  return `"${channel}" is not a platform event channel (/event/Name__e) or a change event channel (/data/CaseChangeEvent, /data/ChangeEvents)`;
}
