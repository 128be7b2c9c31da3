/**
 * iot-command's pure parts: a command's life (queued -> sent -> delivered -> done | failed |
 * expired), one at a time and in order per device, each id taken once, expiry, who may answer,
 * the journal replayed after a restart; what comes in (flow commands, Salesforce events, replies);
 * automatic action; the writes back to Salesforce and their outbox; the transports' messages; the
 * settings.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AutoAction } from '../../nodes/command/auto-action';
import { readCommand, readReplies, readSalesforceEvent } from '../../nodes/command/command-input';
import { CommandLife, type Command, type NewCommand } from '../../nodes/command/command-life';
import { readCommandConfig } from '../../nodes/command/node-config';
import { downlinkRequest, downlinkRetriable, mqttMessage, topicTemplateProblem } from '../../nodes/command/transports';
import { caseComment, Outbox, recordUpdate } from '../../nodes/command/write-back';

const MIN = 60_000;
const T0 = Date.parse('2026-12-02T10:00:00Z');
const life = () => new CommandLife({ rememberMs: 7 * 24 * 60 * MIN, maxPerDevice: 3 });
const cmd = (id: string, device = 'pump-1', extra: Partial<NewCommand> = {}): NewCommand => ({
  id,
  device,
  owner: device,
  name: 'reboot',
  args: {},
  expires: T0 + 60 * MIN,
  origin: { kind: 'record', recordId: 'a0C000000000001AAA', caseId: '500000000000001AAA' },
  ...extra,
});
/** An object `depth` levels deep. */
const nested = (depth: number): unknown => (depth === 0 ? 1 : { a: nested(depth - 1) });
const states = (l: CommandLife) => Object.fromEntries(l.all().map((c) => [c.id, c.state]));

describe("a command's life", () => {
  it('goes queued -> sent -> delivered -> done, each change said once with where it came from', () => {
    const l = life();
    const added = l.add(cmd('c1'), T0);
    expect('change' in added && added.change).toMatchObject({ command: { id: 'c1', state: 'queued', seq: 1 } });
    expect('change' in added && added.change.from).toBeUndefined();
    expect(l.sent('c1', T0 + 1)).toMatchObject({ command: { state: 'sent', at: T0 + 1, attempts: 1 }, from: 'queued' });
    // Sent again (the device came back): one more attempt, no new change.
    expect(l.sent('c1', T0 + 2)).toBeUndefined();
    expect(l.get('c1')?.attempts).toBe(2);
    expect(l.reply('c1', 'pump-1', 'delivered', T0 + 3)).toMatchObject({ ok: true, change: { command: { state: 'delivered' }, from: 'sent' } });
    expect(l.reply('c1', 'pump-1', 'delivered', T0 + 4)).toEqual({ ok: true, unchanged: true });
    expect(l.reply('c1', 'pump-1', 'done', T0 + 5, { result: { rebooted: true } })).toMatchObject({ ok: true, change: { command: { state: 'done', result: { rebooted: true } }, from: 'delivered' } });
    // A reply sent again about a finished command changes nothing.
    expect(l.reply('c1', 'pump-1', 'failed', T0 + 6)).toEqual({ ok: true, unchanged: true });
    expect(l.get('c1')?.state).toBe('done');
  });

  it.each([
    ['done', 'done'],
    ['failed', 'failed'],
    ['expired (the device says it came too late)', 'expired'],
  ] as const)('ends %s straight from sent', (_what, status) => {
    const l = life();
    l.add(cmd('c1'), T0);
    l.sent('c1', T0);
    expect(l.reply('c1', 'pump-1', status, T0 + 1, { reason: 'why' })).toMatchObject({ ok: true, change: { command: { state: status, reason: 'why' } } });
    expect(l.head('pump-1')).toBeUndefined();
  });

  it('sends one command at a time per device, in order, and the next only once the head is finished', () => {
    const l = life();
    for (const id of ['a', 'b', 'c']) l.add(cmd(id), T0);
    l.add(cmd('x', 'pump-2'), T0);
    expect(l.heads().map((c) => c.id)).toEqual(['a', 'x']);
    expect(l.waiting('pump-1')).toBe(2);
    // Only the head may be sent.
    expect(l.sent('b', T0)).toBeUndefined();
    expect(l.get('b')?.state).toBe('queued');
    l.sent('a', T0);
    l.reply('a', 'pump-1', 'done', T0 + 1);
    expect(l.head('pump-1')?.id).toBe('b');
    l.sent('b', T0 + 2);
    l.reply('b', 'pump-1', 'failed', T0 + 3);
    expect(l.head('pump-1')?.id).toBe('c');
  });

  it('takes an id once: the same command again (an event delivered twice) is a duplicate and changes nothing', () => {
    const l = life();
    l.add(cmd('c1'), T0);
    l.sent('c1', T0);
    const again = l.add(cmd('c1', 'pump-1', { name: 'set_interval' }), T0 + 1);
    expect(again).toMatchObject({ duplicate: { id: 'c1', name: 'reboot', state: 'sent' } });
    expect(l.all()).toHaveLength(1);
    l.reply('c1', 'pump-1', 'done', T0 + 2);
    expect(l.add(cmd('c1'), T0 + 3)).toMatchObject({ duplicate: { state: 'done' } });
  });

  it('remembers finished commands for its memory, then forgets them (unfinished ones never)', () => {
    const l = new CommandLife({ rememberMs: 10 * MIN, maxPerDevice: 10 });
    l.add(cmd('old'), T0);
    l.sent('old', T0);
    l.reply('old', 'pump-1', 'done', T0);
    l.add(cmd('open', 'pump-2', { expires: T0 + 100 * MIN }), T0);
    l.forget(T0 + 9 * MIN);
    expect(l.get('old')).toBeDefined();
    l.forget(T0 + 11 * MIN);
    expect(states(l)).toEqual({ open: 'queued' });
  });

  it('expires commands whose time is up, sent or not, and never sends them after', () => {
    const l = life();
    l.add(cmd('a', 'pump-1', { expires: T0 + MIN }), T0);
    l.add(cmd('b', 'pump-1', { expires: T0 + 5 * MIN }), T0);
    l.add(cmd('c', 'pump-2', { expires: T0 + 2 * MIN }), T0);
    l.sent('a', T0);
    expect(l.nextExpiry()).toBe(T0 + MIN);
    expect(l.expire(T0 + MIN - 1)).toEqual([]);
    const changes = l.expire(T0 + 2 * MIN);
    expect(changes.map((c) => [c.command.id, c.from, c.command.state])).toEqual([
      ['a', 'sent', 'expired'],
      ['c', 'queued', 'expired'],
    ]);
    expect(l.head('pump-1')?.id).toBe('b');
    expect(l.sent('a', T0 + 3 * MIN)).toBeUndefined();
    // A device's late answer does not bring it back.
    expect(l.reply('a', 'pump-1', 'done', T0 + 3 * MIN)).toEqual({ ok: true, unchanged: true });
    expect(l.get('a')?.state).toBe('expired');
  });

  it('expires at once a command that comes expired, and fails one beyond the per-device limit', () => {
    const l = life();
    expect(l.add(cmd('late', 'pump-1', { expires: T0 }), T0)).toMatchObject({ change: { command: { state: 'expired', reason: 'it had expired when it came' } } });
    for (const id of ['a', 'b', 'c']) l.add(cmd(id), T0);
    expect(l.add(cmd('d'), T0)).toMatchObject({ change: { command: { state: 'failed' } } });
    expect(l.get('d')?.reason).toContain('3 unfinished commands');
    expect(l.head('pump-1')?.id).toBe('a');
  });

  it('lets only the device or its owner answer, and says so for an unknown id', () => {
    const l = life();
    l.add(cmd('c1', 'gw-1:s1', { owner: 'gw-1' }), T0);
    l.sent('c1', T0);
    expect(l.reply('c1', 'pump-9', 'done', T0)).toMatchObject({ ok: false, code: 'not_owner' });
    expect(l.get('c1')?.state).toBe('sent');
    expect(l.reply('nope', 'gw-1', 'done', T0)).toMatchObject({ ok: false, code: 'unknown_command' });
    expect(l.reply('c1', 'gw-1', 'delivered', T0)).toMatchObject({ ok: true, change: { command: { state: 'delivered' } } });
    expect(l.reply('c1', 'gw-1:s1', 'done', T0)).toMatchObject({ ok: true, change: { command: { state: 'done' } } });
  });

  it('is rebuilt from its journal as it was: the last record of an id wins, order and next seq kept', () => {
    const l = life();
    const journal: Command[] = [];
    const keep = (c?: { command: Command }) => c && journal.push(c.command);
    for (const id of ['a', 'b']) {
      const r = l.add(cmd(id), T0);
      if ('change' in r) keep(r.change);
    }
    keep(l.sent('a', T0 + 1));
    const again = new CommandLife({ rememberMs: 7 * 24 * 60 * MIN, maxPerDevice: 3 });
    for (const c of journal) again.restore(c);
    expect(states(again)).toEqual({ a: 'sent', b: 'queued' });
    expect(again.head('pump-1')?.id).toBe('a');
    const next = again.add(cmd('c'), T0 + 2);
    expect('change' in next && next.change.command.seq).toBe(3);
    again.reply('a', 'pump-1', 'done', T0 + 3);
    expect(again.head('pump-1')?.id).toBe('b');
  });

  it('links automatic commands to the Case their alert opened, once', () => {
    const l = life();
    l.add(cmd('auto-1', 'pump-1', { origin: { kind: 'automatic', alertId: 'al-1', because: 'x' } }), T0);
    expect(l.linkCase('al-1', '500000000000009AAA').map((c) => c.origin.caseId)).toEqual(['500000000000009AAA']);
    expect(l.linkCase('al-1', '500000000000009AAA')).toEqual([]);
  });
});

describe('what comes in', () => {
  const defaults = { expiresInMs: 60 * MIN, maxExpiresInMs: 30 * 24 * 60 * MIN };

  it.each([
    ['not an object', 'x', 'bad_command'],
    ['no id', { device: 'p', name: 'reboot' }, 'bad_command'],
    ['an id with a space', { id: 'a b', device: 'p', name: 'reboot' }, 'bad_command'],
    ['no device', { id: 'a', name: 'reboot' }, 'bad_command'],
    ['a name that is not one', { id: 'a', device: 'p', name: '1reboot' }, 'bad_command'],
    ['an expiry that is not a time', { id: 'a', device: 'p', name: 'reboot', expires: 'tomorrow' }, 'bad_command'],
    ['a negative expiresIn', { id: 'a', device: 'p', name: 'reboot', expiresIn: -5 }, 'bad_command'],
    ['arguments too deep', { id: 'a', device: 'p', name: 'reboot', args: nested(12) }, 'bad_arguments'],
    ['arguments too large', { id: 'a', device: 'p', name: 'reboot', args: { text: 'x'.repeat(20_000) } }, 'bad_arguments'],
  ])('refuses a flow command with %s', (_what, value, code) => {
    expect(readCommand(value, T0, defaults)).toMatchObject({ code });
  });

  it('reads a flow command, its expiry as given, as expiresIn, by default, and never beyond the longest', () => {
    expect(readCommand({ id: 'a', device: 'p', name: 'set_interval', args: { seconds: 5 }, expires: '2026-12-02T10:30:00Z', caseId: '500000000000001' }, T0, defaults)).toEqual({
      id: 'a',
      device: 'p',
      name: 'set_interval',
      args: { seconds: 5 },
      expires: T0 + 30 * MIN,
      origin: { kind: 'flow', caseId: '500000000000001' },
    });
    expect(readCommand({ id: 'a', device: 'p', name: 'reboot', expiresIn: 90 }, T0, defaults)).toMatchObject({ expires: T0 + 90_000, args: {} });
    expect(readCommand({ id: 'a', device: 'p', name: 'reboot' }, T0, defaults)).toMatchObject({ expires: T0 + 60 * MIN });
    expect(readCommand({ id: 'a', device: 'p', name: 'reboot', expires: T0 + 365 * 24 * 60 * MIN }, T0, defaults)).toMatchObject({ expires: T0 + defaults.maxExpiresInMs });
  });

  const created = (fields: Record<string, unknown>, changeType = 'CREATE') => [
    { kind: 'change', channel: '/data/IoT_Command__ChangeEvent', entity: 'IoT_Command__c', changeType, recordIds: ['a0C000000000001AAA'], key: 'k1' },
    { ...fields, ChangeEventHeader: {} },
  ] as const;

  it('reads a command record created in Salesforce, with its Case, arguments and expiry', () => {
    const [event, payload] = created({ Name: 'set_interval', Device__c: 'pump-1', Arguments__c: '{"seconds":5}', Expires__c: '2026-12-02T10:05:00.000+0000', Case__c: '500000000000001AAA', Status__c: 'New' });
    expect(readSalesforceEvent(event, payload, T0, defaults)).toEqual({
      id: 'a0C000000000001AAA',
      device: 'pump-1',
      name: 'set_interval',
      args: { seconds: 5 },
      expires: T0 + 5 * MIN,
      origin: { kind: 'record', recordId: 'a0C000000000001AAA', caseId: '500000000000001AAA' },
    });
  });

  it('ignores later changes of a command record (its own status writes) and records created past New', () => {
    expect(readSalesforceEvent(...created({ Status__c: 'Done' }, 'UPDATE'), T0, defaults)).toMatchObject({ ignore: expect.stringContaining('UPDATE') });
    expect(readSalesforceEvent(...created({ Name: 'reboot', Device__c: 'p', Status__c: 'Done' }), T0, defaults)).toMatchObject({ ignore: expect.any(String) });
  });

  it('refuses a command record with arguments that are not JSON, naming the record so it is written back failed', () => {
    expect(readSalesforceEvent(...created({ Name: 'reboot', Device__c: 'p', Arguments__c: '{oops', Case__c: '500000000000001AAA' }), T0, defaults)).toMatchObject({ code: 'bad_arguments', recordId: 'a0C000000000001AAA', caseId: '500000000000001AAA' });
    expect(readSalesforceEvent(...created({ Device__c: 'p' }), T0, defaults)).toMatchObject({ code: 'bad_command', recordId: 'a0C000000000001AAA' });
  });

  it('reads an IoT_Command__e platform event, its id from Command_Id__c or else the event key', () => {
    const event = { kind: 'platform', channel: '/event/IoT_Command__e', key: 'uuid-1' };
    expect(readSalesforceEvent(event, { Device__c: 'pump-1', Name__c: 'reboot', Command_Id__c: 'cmd-9' }, T0, defaults)).toMatchObject({ id: 'cmd-9', origin: { kind: 'event' } });
    expect(readSalesforceEvent(event, { Device__c: 'pump-1', Name__c: 'reboot' }, T0, defaults)).toMatchObject({ id: 'uuid-1' });
    expect(readSalesforceEvent({ kind: 'change', entity: 'Case', changeType: 'CREATE', channel: '/data/CaseChangeEvent' }, {}, T0, defaults)).toMatchObject({ code: 'not_a_command' });
  });

  it.each([
    ['one reply', { id: 'c1', status: 'done', result: { ok: 1 } }, undefined, [{ id: 'c1', status: 'done', result: { ok: 1 } }]],
    ['several', { replies: [{ id: 'a', status: 'delivered' }, { id: 'b', status: 'failed', reason: 'no' }] }, undefined, [{ id: 'a', status: 'delivered' }, { id: 'b', status: 'failed', reason: 'no' }]],
    ['an id from MQTT 5 correlation data', { status: 'done' }, Buffer.from('c7'), [{ id: 'c7', status: 'done' }]],
    ['a reading, not a reply', { temperature: 20 }, undefined, []],
  ])('reads %s', (_what, payload, correlation, expected) => {
    expect(readReplies(payload, correlation)).toEqual(expected);
  });

  it.each([
    ['no id', { status: 'done' }],
    ['an unknown status', { id: 'a', status: 'finished' }],
    ['an item that is not an object', [1]],
  ])('refuses a reply with %s', (_what, payload) => {
    expect(readReplies(payload)).toMatchObject({ code: 'bad_reply' });
  });
});

describe('automatic action', () => {
  const rules = [{ severity: 'critical', reading: 'temperature', command: 'reduce_power', args: { percent: 50 }, expiresInMs: 10 * MIN }];
  const alert = (extra: Record<string, unknown> = {}) => ({ id: 'al-1', state: 'raised', change: 'escalated', severity: 'critical', reading: 'temperature', value: 97, ...extra });

  it("acts on an alert raised or escalated to a rule's severity, once per alert and severity", () => {
    const auto = new AutoAction(rules, 10 * MIN);
    const known = new Set<string>();
    const first = auto.decide(alert(), 'pump-1', T0, (id) => known.has(id));
    expect(first).toMatchObject({ act: true, rule: { command: 'reduce_power' }, because: 'temperature alert escalated to critical (97)' });
    if (first.act) known.add(first.id);
    expect(auto.decide(alert(), 'pump-1', T0 + 1, (id) => known.has(id))).toMatchObject({ act: false, code: 'duplicate' });
  });

  it.each([
    ['a cleared alert', { state: 'cleared', change: 'cleared' }],
    ['a de-escalated one', { change: 'deescalated' }],
    ['another severity', { severity: 'major' }],
    ['another reading', { reading: 'vibration' }],
  ])('does not act on %s', (_what, extra) => {
    expect(new AutoAction(rules, 10 * MIN).decide(alert(extra), 'pump-1', T0, () => false)).toMatchObject({ act: false });
  });

  it('commands one device automatically at most once per interval, and remembers that across a restart', () => {
    const auto = new AutoAction(rules, 10 * MIN);
    expect(auto.decide(alert({ id: 'al-1' }), 'pump-1', T0, () => false)).toMatchObject({ act: true });
    expect(auto.decide(alert({ id: 'al-2' }), 'pump-1', T0 + 5 * MIN, () => false)).toMatchObject({ act: false, code: 'auto_limited' });
    expect(auto.decide(alert({ id: 'al-2' }), 'pump-2', T0 + 5 * MIN, () => false)).toMatchObject({ act: true });
    const after = new AutoAction(rules, 10 * MIN);
    after.restore(auto.snapshot());
    expect(after.decide(alert({ id: 'al-3' }), 'pump-1', T0 + 9 * MIN, () => false)).toMatchObject({ act: false, code: 'auto_limited' });
    expect(after.decide(alert({ id: 'al-3' }), 'pump-1', T0 + 10 * MIN, () => false)).toMatchObject({ act: true });
  });
});

describe('writes back to Salesforce', () => {
  const at = (state: Command['state'], extra: Partial<Command> = {}): Command => ({
    ...cmd('c1'),
    args: { seconds: 5 },
    name: 'set_interval',
    seq: 1,
    state,
    at: T0,
    created: T0,
    attempts: 1,
    ...extra,
  });

  it('updates the command record with its status, time and result', () => {
    expect(recordUpdate(at('done', { result: { interval: 5 } }))).toEqual({ Id: 'a0C000000000001AAA', Status__c: 'Done', Status_Time__c: '2026-12-02T10:00:00.000+0000', Result__c: '{"interval":5}' });
    expect(recordUpdate(at('expired', { reason: 'not done before it expired' }))).toMatchObject({ Status__c: 'Expired', Result__c: 'not done before it expired' });
    expect(recordUpdate(at('done', { origin: { kind: 'flow' } }))).toBeUndefined();
  });

  it('comments on the Case when a command is taken and when it ends, not for sent or delivered', () => {
    expect(caseComment({ command: at('queued') })).toMatchObject({ ParentId: '500000000000001AAA', CommentBody: expect.stringContaining('Command: set_interval {"seconds":5} to pump-1.') });
    expect(caseComment({ command: at('sent'), from: 'queued' })).toBeUndefined();
    expect(caseComment({ command: at('delivered'), from: 'sent' })).toBeUndefined();
    const done = caseComment({ command: at('done', { result: 'ok' }), from: 'delivered' });
    expect(String(done?.CommentBody)).toContain('Done at 2026-12-02T10:00:00.000Z');
    expect(String(done?.CommentBody)).toContain('Command id: c1');
    expect(caseComment({ command: at('done', { origin: { kind: 'flow' } }), from: 'sent' })).toBeUndefined();
  });

  it('keeps writes until settled; a newer status of a record replaces an older one waiting, comments all stay', () => {
    const box = new Outbox('n.');
    const first = box.add('record', 'c1', { Status__c: 'Sent' }, T0).item;
    box.add('comment', 'c1', { CommentBody: 'a' }, T0);
    const second = box.add('record', 'c1', { Status__c: 'Done' }, T0 + 1);
    box.add('comment', 'c1', { CommentBody: 'b' }, T0 + 1);
    expect(second.replaced).toEqual([first.id]);
    expect(box.all().map((i) => i.payload)).toEqual([{ CommentBody: 'a' }, { Status__c: 'Done' }, { CommentBody: 'b' }]);
    expect(box.done(second.item.id)).toBe(true);
    expect(box.size).toBe(2);
    expect(box.expire(T0 + 1).map((i) => i.payload)).toEqual([{ CommentBody: 'a' }]);
  });
});

describe('transports', () => {
  const command: Command = { ...cmd('c1', 'gw-1:s1', { owner: 'gw-1', args: { on: true } }), seq: 4, state: 'queued', at: T0, created: T0, attempts: 0 };

  it("publishes to the owner's command topic at QoS 1, with the id in the JSON and as MQTT 5 correlation data", () => {
    const message = mqttMessage(command, { command: 'devices/{owner}/commands', reply: 'devices/{owner}/replies' }, T0);
    expect(message).toEqual({
      topic: 'devices/gw-1/commands',
      payload: { id: 'c1', device: 'gw-1:s1', name: 'reboot', args: { on: true }, expiresAt: '2026-12-02T11:00:00.000Z', seq: 4 },
      qos: 1,
      retain: false,
      correlationData: Buffer.from('c1'),
      responseTopic: 'devices/gw-1/replies',
      messageExpiryInterval: 3600,
    });
    expect(topicTemplateProblem('devices/+/commands')).toBeDefined();
    expect(topicTemplateProblem('devices/{device}/in')).toBeUndefined();
  });

  it("signs a downlink call as the vendor's callbacks are signed, or sends a bearer token", () => {
    const key = 'partner-secret';
    const sign = (content: Buffer) => createHmac('sha256', key).update(content).digest('hex');
    const settings = { url: 'https://vendor.example.com/downlink', signatureHeader: 'x-signature', timestampHeader: 'x-timestamp', signaturePrefix: 'sha256=' };
    const request = downlinkRequest(command, settings, sign, T0);
    expect(request?.headers['x-timestamp']).toBe(String(T0 / 1000));
    expect(request?.headers['x-signature']).toBe(`sha256=${sign(Buffer.from(`${T0 / 1000}.${request?.body}`))}`);
    expect(JSON.parse(String(request?.body))).toMatchObject({ owner: 'gw-1', device: 'gw-1:s1', command: { id: 'c1' } });
    expect(downlinkRequest(command, settings, () => undefined, T0)).toBeUndefined();
    expect(downlinkRequest(command, settings, () => undefined, T0, 'tok')?.headers.authorization).toBe('Bearer tok');
    expect([400, 401, 404, 408, 429, 500, 503].map(downlinkRetriable)).toEqual([false, false, false, true, true, true, true]);
  });
});

describe('settings', () => {
  it("takes an old or empty node's properties as the defaults", () => {
    expect(readCommandConfig({})).toMatchObject({ transport: 'mqtt', topics: { command: 'devices/{owner}/commands', reply: 'devices/{owner}/replies' }, expiresInMs: 3_600_000, maxPerDevice: 100, autoRules: [], autoIntervalMs: 600_000, writeBack: 'tracked', persist: true });
  });

  it.each([
    ['an unknown transport', { transport: 'smoke' }],
    ['a topic with a wildcard', { commandTopic: 'devices/+/commands' }],
    ['a downlink without a URL', { transport: 'downlink', downlinkUrl: 'vendor' }],
    ['an expiry of 0', { expiresIn: '0' }],
    ['a command name that is not one', { names: 'reboot 9lives' }],
    ['a per-device limit of 0', { maxPerDevice: '0' }],
    ['a rule without a severity', { autoRules: [{ command: 'reduce_power' }] }],
    ['a rule with arguments that are not JSON', { autoRules: [{ severity: 'critical', command: 'reduce_power', args: '{' }] }],
    ['an unknown write-back', { writeBack: 'never' }],
  ])('refuses %s', (_what, props) => {
    expect(readCommandConfig(props)).toMatchObject({ problem: expect.any(String) });
  });

  it('reads automatic rules and a downlink', () => {
    const settings = readCommandConfig({ transport: 'downlink', downlinkUrl: 'https://v.example.com/dl', downlinkOwners: 'vendor-a, partner-b', autoRules: [{ severity: 'critical', command: 'reduce_power', args: '{"percent":50}', expiresIn: '120' }] });
    expect(settings).toMatchObject({ downlink: { url: 'https://v.example.com/dl', auth: 'hmac', owners: ['vendor-a', 'partner-b'] }, autoRules: [{ severity: 'critical', command: 'reduce_power', args: { percent: 50 }, expiresInMs: 120_000 }] });
  });
});
