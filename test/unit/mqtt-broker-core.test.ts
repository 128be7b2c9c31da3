/**
 * The broker's pure parts: topic matching and covering, per-device topic rules with gateways,
 * what a CONNECT presents, and the session state with its journal encoding.
 */
import { describe, expect, it } from 'vitest';
import { covers, createAcl, matches } from '../../nodes/mqtt-broker/acl';
import { connectCredential, deviceIdOf } from '../../nodes/mqtt-broker/connect';
import { decodeOperation, encodeOperation, NoSuchPacket, SessionState, type Operation } from '../../nodes/mqtt-broker/session-state';

const split = (t: string) => t.split('/');

describe('topic filters', () => {
  it.each([
    ['devices/pump-1/#', 'devices/pump-1/telemetry', true],
    ['devices/pump-1/#', 'devices/pump-1', true],
    ['devices/pump-1/#', 'devices/pump-2/telemetry', false],
    ['devices/+/telemetry', 'devices/pump-1/telemetry', true],
    ['devices/+/telemetry', 'devices/pump-1/telemetry/x', false],
    ['#', '$SYS/broker/uptime', false],
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a', false],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(matches(split(filter), split(topic))).toBe(expected);
  });

  it.each([
    ['devices/pump-1/#', 'devices/pump-1/commands/#', true],
    ['devices/pump-1/#', 'devices/pump-1/+', true],
    ['devices/pump-1/#', 'devices/pump-1', true],
    ['devices/pump-1/#', 'devices/+/commands', false],
    ['devices/pump-1/#', 'devices/#', false],
    ['devices/pump-1/#', '#', false],
    ['devices/+/status', 'devices/pump-1/status', true],
    ['devices/+/status', 'devices/+/status', true],
    ['devices/+/status', 'devices/+/status/x', false],
    ['devices/pump-1/status', 'devices/pump-1/+', false],
  ])('%s covers %s: %s', (allowed, requested, expected) => {
    expect(covers(split(allowed), split(requested))).toBe(expected);
  });
});

describe('per-device topic rules', () => {
  const sensors: Record<string, string> = { 's-1': 'gw-1', 's-2': 'gw-2' };
  const acl = createAcl(['devices/{id}/#'], ['devices/{id}/commands/#'], (gateway, id) => sensors[id] === gateway);

  it('lets a device publish under its own prefix only, and a gateway for its sensors', () => {
    expect(acl.publishAs('pump-1', 'devices/pump-1/telemetry')).toBe('pump-1');
    expect(acl.publishAs('pump-1', 'devices/pump-2/telemetry')).toBeUndefined();
    expect(acl.publishAs('pump-1', 'telemetry')).toBeUndefined();
    expect(acl.publishAs('gw-1', 'devices/s-1/telemetry')).toBe('s-1');
    expect(acl.publishAs('gw-1', 'devices/s-2/telemetry')).toBeUndefined();
    expect(acl.publishAs('gw-1', 'devices/gw-1/telemetry')).toBe('gw-1');
  });

  it('lets a device subscribe within its rules, never with wildcards across devices', () => {
    expect(acl.maySubscribe('pump-1', 'devices/pump-1/commands/#')).toBe(true);
    expect(acl.maySubscribe('pump-1', 'devices/pump-1/commands/reboot')).toBe(true);
    expect(acl.maySubscribe('pump-1', 'devices/pump-1/#')).toBe(false);
    expect(acl.maySubscribe('pump-1', 'devices/+/commands/#')).toBe(false);
    expect(acl.maySubscribe('pump-1', '#')).toBe(false);
    expect(acl.maySubscribe('gw-1', 'devices/s-1/commands/#')).toBe(true);
    expect(acl.maySubscribe('gw-1', 'devices/s-2/commands/#')).toBe(false);
  });

  it('uses a device’s own rules when it has them', () => {
    expect(acl.publishAs('pump-1', 'plant/3/pump-1', ['plant/+/{id}'])).toBe('pump-1');
    expect(acl.publishAs('pump-1', 'devices/pump-1/x', ['plant/+/{id}'])).toBeUndefined();
    expect(acl.maySubscribe('pump-1', 'broadcast/all', ['broadcast/#'])).toBe(true);
  });

  it('has no gateway rights without a sensor lookup', () => {
    expect(createAcl(['devices/{id}/#'], []).publishAs('gw-1', 'devices/s-1/t')).toBeUndefined();
  });
});

describe('CONNECT credentials', () => {
  const all = new Set(['apikey', 'jwt', 'sas'] as const);

  it('tells an API key, a JWT and a SAS token apart', () => {
    expect(connectCredential('pump-1', Buffer.from('key-0123456789abcdef'), all)).toEqual({ method: 'apikey', id: 'pump-1', key: 'key-0123456789abcdef' });
    expect(connectCredential('cam-1', Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjYW0tMSJ9.sig'), all)).toMatchObject({ method: 'jwt', id: 'cam-1' });
    expect(connectCredential('hub.example.com/pump-1/?api-version=2021-04-12', Buffer.from('SharedAccessSignature sr=x&sig=y&se=1'), all)).toMatchObject({ method: 'sas', id: 'pump-1' });
    expect(connectCredential(undefined, Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjYW0tMSJ9.sig'), all)).toEqual({ method: 'jwt', token: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjYW0tMSJ9.sig' });
    expect(deviceIdOf('pump-1')).toBe('pump-1');
  });

  it('refuses what cannot be checked', () => {
    expect(connectCredential('pump-1', undefined, all)).toMatchObject({ code: 'missing_credentials' });
    expect(connectCredential(undefined, Buffer.from('key-0123456789abcdef'), all)).toMatchObject({ code: 'missing_credentials' });
    expect(connectCredential('pump-1', Buffer.from('key-0123456789abcdef'), new Set(['jwt'] as const))).toMatchObject({ code: 'method_not_allowed' });
    expect(connectCredential('pump-1', Buffer.alloc(20_000, 0x61), all)).toMatchObject({ code: 'malformed' });
  });
});

describe('session state', () => {
  const packet = (topic: string, counter: number, qos = 1) => ({ cmd: 'publish', topic, payload: Buffer.from(`m${counter}`), qos, retain: false, dup: false, brokerId: 'b1', brokerCounter: counter });

  it('queues, numbers, clears and replaces outgoing packets as aedes expects', () => {
    const state = new SessionState();
    state.apply({ o: 'enqueue', c: ['a', 'b'], p: packet('t', 1) });
    state.apply({ o: 'enqueue', c: ['a'], p: packet('t', 2) });
    expect(state.outgoing.get('a')?.map((p) => p.messageId)).toEqual([undefined, undefined]);
    state.apply({ o: 'update', c: 'a', p: { ...packet('t', 1), messageId: 7 } });
    expect(state.outgoing.get('a')?.[0].messageId).toBe(7);
    state.apply({ o: 'update', c: 'a', p: { cmd: 'pubrel', messageId: 7 } });
    expect(state.outgoing.get('a')?.[0].cmd).toBe('pubrel');
    expect(() => state.apply({ o: 'update', c: 'a', p: { ...packet('t', 9), messageId: 9 } })).toThrow(NoSuchPacket);
    expect(state.apply({ o: 'clear', c: 'a', m: 7 })?.cmd).toBe('pubrel');
    expect(state.outgoing.get('a')).toHaveLength(1);
    expect(state.outgoing.get('b')).toHaveLength(1);
  });

  it('keeps subscriptions, retained messages, inbound QoS 2 and wills', () => {
    const state = new SessionState();
    state.apply({ o: 'subscribe', c: 'a', s: [{ topic: 'x/#', qos: 1 }, { topic: 'y', qos: 0 }] });
    state.apply({ o: 'unsubscribe', c: 'a', t: ['y'] });
    state.apply({ o: 'retain', p: { ...packet('r', 1), retain: true } });
    state.apply({ o: 'retain', p: { ...packet('gone', 2), payload: Buffer.alloc(0) } });
    state.apply({ o: 'storeIncoming', c: 'a', p: { ...packet('q', 3, 2), messageId: 5 } });
    state.apply({ o: 'putWill', c: 'a', p: packet('will', 4) });
    expect([...(state.subscriptions.get('a')?.keys() ?? [])]).toEqual(['x/#']);
    expect([...state.retained.keys()]).toEqual(['r']);
    expect(state.incoming.get('a')?.get(5)?.topic).toBe('q');
    expect(() => state.apply({ o: 'deleteIncoming', c: 'a', m: 6 })).toThrow(NoSuchPacket);
    expect(state.apply({ o: 'deleteWill', c: 'a' })?.topic).toBe('will');
    state.apply({ o: 'cleanSubscriptions', c: 'a' });
    expect(state.subscriptions.size).toBe(0);
  });

  it('counts what each device holds: retained by publisher, queued by the session’s device', () => {
    const state = new SessionState();
    state.apply({ o: 'retain', p: { ...packet('devices/a/r', 1), retain: true, owner: 'a' } });
    state.apply({ o: 'retain', p: { ...packet('devices/a/s', 2), retain: true, owner: 'a' } });
    state.apply({ o: 'retain', p: { ...packet('devices/a/s', 3), payload: Buffer.alloc(0), owner: 'a' } });
    expect(state.retainedBy.get('a')).toEqual({ count: 1, bytes: 'devices/a/r'.length + 2 });
    state.apply({ o: 'enqueue', c: ['a:1'], p: packet('t', 4) });
    expect(state.queuedBy.get('a:1')).toEqual({ count: 1, bytes: 3 });
    state.apply({ o: 'owner', c: 'a:1', d: 'a' });
    state.apply({ o: 'owner', c: 'a:2', d: 'a' });
    state.apply({ o: 'enqueue', c: ['a:1', 'a:2'], p: packet('t', 5) });
    expect([state.queuedBy.get('a'), state.queuedBy.has('a:1')]).toEqual([{ count: 3, bytes: 9 }, false]);
    state.apply({ o: 'update', c: 'a:2', p: { ...packet('t', 5), messageId: 8 } });
    state.apply({ o: 'clear', c: 'a:2', m: 8 });
    expect(state.queuedBy.get('a')).toEqual({ count: 2, bytes: 6 });
    const copy = new SessionState();
    for (const op of state.operations()) copy.apply(decodeOperation(encodeOperation(op)));
    expect([copy.queuedBy, copy.retainedBy]).toEqual([state.queuedBy, state.retainedBy]);
  });

  it('rebuilds itself exactly from its own operations, through the journal encoding', () => {
    const state = new SessionState();
    const ops: Operation[] = [
      { o: 'subscribe', c: 'a', s: [{ topic: 'x/#', qos: 1 }] },
      { o: 'enqueue', c: ['a'], p: packet('x/1', 1) },
      { o: 'enqueue', c: ['a'], p: packet('x/2', 2) },
      { o: 'update', c: 'a', p: { ...packet('x/1', 1), messageId: 3 } },
      { o: 'retain', p: { ...packet('r', 3), payload: Buffer.from([0, 255, 10]) } },
      { o: 'storeIncoming', c: 'a', p: { ...packet('q', 4, 2), messageId: 9 } },
      { o: 'putWill', c: 'a', p: packet('will', 5) },
    ];
    ops.forEach((op) => state.apply(op));
    const copy = new SessionState();
    for (const op of state.operations()) copy.apply(decodeOperation(encodeOperation(op)));
    expect(copy).toEqual(state);
    expect(copy.retained.get('r')?.payload).toEqual(Buffer.from([0, 255, 10]));
  });
});
