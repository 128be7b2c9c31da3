/**
 * The input node's pure parts: where a subscription resumes (the processed position, which moves
 * only over settled events), which events are handled already (by key, within the retention
 * window), what an event says, and the settings.
 */
import { describe, expect, it } from 'vitest';
import { readInConfig } from '../../nodes/salesforce-in/node-config';
import { bayeuxCode, replayExtension } from '../../nodes/salesforce-in/replay-extension';
import { ReplayState, type HandledEntry } from '../../nodes/salesforce-in/replay-state';
import { channelProblem, readStreamEvent } from '../../nodes/salesforce-in/stream-event';

const HOUR = 3_600_000;
const fresh = () => new ReplayState({ rememberMs: 72 * HOUR, maxRemembered: 1_000 });

describe('the processed position', () => {
  it('starts from the option until something is processed, then from the last event settled in order', () => {
    const state = fresh();
    expect(state.replayFrom(-1)).toBe(-1);
    expect(state.replayFrom(-2)).toBe(-2);
    for (const [key, id] of [['a', 10], ['b', 13], ['c', 14]] as const) expect(state.arrive(key, id)).toBe('new');
    // Settled out of order: the position moves only over events that are all settled.
    expect(state.settle('b', 1)).toEqual({ k: 'b', r: 13, t: 1 });
    expect(state.watermark).toBeUndefined();
    expect(state.settle('a', 2)).toEqual({ k: 'a', r: 10, t: 2, w: 13 });
    expect(state.replayFrom(-1)).toBe(13);
    expect(state.unsettled).toBe(1);
    expect(state.settle('c', 3)).toEqual({ k: 'c', r: 14, t: 3, w: 14 });
    expect(state.settle('c', 4)).toBeUndefined();
  });

  it.each([
    ['an event settled already', 'a', 'handled'],
    ['an event handed on and not settled yet', 'b', 'in-flight'],
    ['a new one', 'c', 'new'],
  ] as const)('tells %s when it comes again', (_what, key, arrival) => {
    const state = fresh();
    state.arrive('a', 1);
    state.arrive('b', 2);
    state.settle('a', 0);
    expect(state.arrive(key, 3)).toBe(arrival);
  });

  it('survives a restart: the snapshot and the journal after it give the same position and keys', () => {
    const before = fresh();
    const journal: HandledEntry[] = [];
    before.arrive('a', 10);
    before.arrive('b', 13);
    journal.push(before.settle('a', 100) as HandledEntry);
    const snapshot = before.snapshot(100);
    journal.length = 0;
    before.arrive('c', 20);
    journal.push(before.settle('c', 200) as HandledEntry);
    // Killed here: b was in flight, c was settled past it.
    const after = fresh();
    after.restore(snapshot, journal);
    expect(after.replayFrom(-1)).toBe(10);
    expect(after.arrive('b', 13)).toBe('new');
    expect(after.arrive('c', 20)).toBe('handled');
  });

  it('forgets keys past the retention window, and past its size, oldest first', () => {
    const state = new ReplayState({ rememberMs: HOUR, maxRemembered: 2 });
    for (const [i, key] of ['a', 'b', 'c'].entries()) {
      state.arrive(key, i + 1);
      state.settle(key, i * 1000);
    }
    expect(state.remembered).toBe(2);
    expect(state.arrive('a', 9)).toBe('new');
    state.settle('a', 5_000);
    state.snapshot(HOUR + 4_000);
    expect(state.remembered).toBe(1);
  });

  it('starts over from nothing when told (a position the org no longer keeps)', () => {
    const state = fresh();
    state.arrive('a', 10);
    state.settle('a', 1);
    state.arrive('b', 11);
    state.resetWatermark();
    expect(state.replayFrom(-2)).toBe(-2);
    expect(state.arrive('a', 10)).toBe('handled');
    expect(state.arrive('b', 11)).toBe('new');
  });
});

describe('events as the Streaming API sends them', () => {
  it('keys a platform event by its EventUuid and a change event by transaction key and sequence number', () => {
    const platform = readStreamEvent('/event/IoT_Command__e', { schema: 's', payload: { Name__c: 'reboot', CreatedDate: '2026-12-02T09:31:40.517Z', CreatedById: '005x' }, event: { EventUuid: 'u-1', replayId: 109 } });
    expect(platform).toEqual({
      info: { channel: '/event/IoT_Command__e', replayId: 109, key: 'u-1', kind: 'platform', time: Date.parse('2026-12-02T09:31:40.517Z'), user: '005x' },
      payload: { Name__c: 'reboot', CreatedDate: '2026-12-02T09:31:40.517Z', CreatedById: '005x' },
    });
    const change = readStreamEvent('/data/CaseChangeEvent', {
      payload: { ChangeEventHeader: { entityName: 'Case', recordIds: ['500x'], changeType: 'UPDATE', transactionKey: 't-9', sequenceNumber: 2, commitTimestamp: 1796204946340, commitUser: '005y', changedFields: ['Status'] }, Status: 'Escalated' },
      event: { replayId: 112 },
    });
    expect(typeof change === 'string' ? change : change.info).toEqual({ channel: '/data/CaseChangeEvent', replayId: 112, key: 't-9:2', kind: 'change', time: 1796204946340, entity: 'Case', changeType: 'UPDATE', recordIds: ['500x'], changedFields: ['Status'], user: '005y' });
  });

  it.each([
    [null, 'the message has no data'],
    [{ payload: {} }, 'the event has no replay id'],
    [{ payload: {}, event: { replayId: 'x' } }, 'the event has no replay id'],
  ])('refuses %j', (data, problem) => {
    expect(readStreamEvent('/event/X__e', data)).toBe(problem);
  });

  it.each([
    ['/event/IoT_Command__e', true],
    ['/data/IoT_Command__ChangeEvent', true],
    ['/data/CaseChangeEvent', true],
    ['/data/ChangeEvents', true],
    ['/topic/Old', false],
    ['/event/NoSuffix', false],
    ['event/IoT_Command__e', false],
  ])('%s is a channel it can subscribe to: %s', (channel, ok) => {
    expect(channelProblem(channel) === undefined).toBe(ok);
  });

  it('reads the status code off a Bayeux error (faye leaves it null for Salesforce’s 400::message)', () => {
    expect(bayeuxCode(new Error('400::The replayId {7} you provided was invalid.'))).toBe(400);
    expect(bayeuxCode('403::Unknown client')).toBe(403);
    expect(bayeuxCode(new Error('timeout'))).toBeUndefined();
  });
});

describe('the replay extension', () => {
  it('puts the processed position on each subscribe to its channel, and tells when the server gives up on the client', () => {
    let position = -1;
    const refused: string[] = [];
    const subscribing: number[] = [];
    const ext = replayExtension({ replayFrom: (c) => (c === '/event/A__e' ? position : undefined), refused: (e) => refused.push(e), subscribing: (_c, from) => subscribing.push(from) });
    const out: Array<Record<string, unknown>> = [];
    ext.outgoing?.({ channel: '/meta/subscribe', subscription: '/event/A__e', ext: { other: 1 } }, (m) => out.push(m));
    position = 42;
    ext.outgoing?.({ channel: '/meta/subscribe', subscription: '/event/A__e' }, (m) => out.push(m));
    ext.outgoing?.({ channel: '/meta/subscribe', subscription: '/event/B__e' }, (m) => out.push(m));
    ext.outgoing?.({ channel: '/meta/connect' }, (m) => out.push(m));
    expect(out.map((m) => m.ext)).toEqual([{ other: 1, replay: { '/event/A__e': -1 } }, { replay: { '/event/A__e': 42 } }, undefined, undefined]);
    expect(subscribing).toEqual([-1, 42]);
    const passed: unknown[] = [];
    ext.incoming?.({ channel: '/meta/connect', successful: false, error: '401::Authentication invalid', advice: { reconnect: 'none' } }, (m) => passed.push(m));
    ext.incoming?.({ channel: '/meta/handshake', successful: false, error: '403::Handshake denied', ext: { sfdc: { failureReason: '401::Authentication invalid' } }, advice: { reconnect: 'none' } }, (m) => passed.push(m));
    ext.incoming?.({ channel: '/meta/connect', successful: false, error: '403::Unknown client', advice: { reconnect: 'handshake' } }, (m) => passed.push(m));
    expect(refused).toEqual(['401::Authentication invalid', '401::Authentication invalid']);
    expect(passed).toHaveLength(3);
  });
});

describe('settings', () => {
  it('defaults to new events only, stopping on a lost position, processed when settled within 60 s', () => {
    expect(readInConfig({ channel: '/data/IoT_Command__ChangeEvent' })).toEqual({ channel: '/data/IoT_Command__ChangeEvent', initial: -1, onInvalid: 'stop', processed: 'settled', answerWithinMs: 60_000, persist: true });
  });

  it.each([
    [{ channel: '' }, /is not a platform event channel/],
    [{ channel: '/event/A__e', replay: '0' }, /-1 .* or -2/],
    [{ channel: '/event/A__e', onInvalid: 'skip' }, /unknown choice "skip"/],
    [{ channel: '/event/A__e', processed: 'later' }, /unknown choice "later"/],
    [{ channel: '/event/A__e', answerWithin: '0' }, /settle an event \(s\) must be a number from 0.001 to 86400 \(got "0"\)/],
  ])('refuses %j', (props, problem) => {
    const config = readInConfig(props);
    expect('problem' in config ? config.problem : '').toMatch(problem);
  });
});
