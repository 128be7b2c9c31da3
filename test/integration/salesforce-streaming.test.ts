/**
 * The sandbox's Streaming API (CometD) as jsforce 3.10.16's client meets it: handshake, long
 * polling with the whole batched answer held, the replay extension (-1, -2, a stored id, 400 when
 * it is gone), platform events and record changes with gapped replay ids, 403::Unknown client and
 * faye's own new handshake, 401 for a revoked token, the WebSocket probe refused.
 */
import { request } from 'node:http';
import { Connection } from 'jsforce';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { replayExtension } from '../../nodes/salesforce-in/replay-extension';
import type { StreamingClient } from '../../nodes/shared/salesforce-client';
import { startTestSandbox, testAssertion, type TestSandbox } from '../support/salesforce';
import { eventually } from '../support/wait';

let sf: TestSandbox;
let conn: Connection;
const clients: StreamingClient[] = [];

async function login(): Promise<Connection> {
  const c = new Connection({ loginUrl: sf.sandbox.url, version: '62.0' });
  await c.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(sf.sandbox.url) });
  return c;
}

beforeAll(async () => {
  sf = await startTestSandbox({ streamingHoldMs: 2_000 });
});
afterAll(async () => {
  await sf.close();
});
beforeEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  sf.sandbox.reset();
  conn = await login();
});

type Received = { replayId: number; payload: Record<string, unknown> };

/** A client on the connection's token that subscribes from `from` and collects what comes. */
function subscribe(channel: string, from: () => number, on: { refused?: (e: string) => void } = {}) {
  const received: Received[] = [];
  const client = conn.streaming.createClient([replayExtension({ replayFrom: () => from(), refused: on.refused ?? (() => undefined) })] as never) as unknown as StreamingClient;
  clients.push(client);
  const subscription = client.subscribe(channel, (data) => {
    const d = data as { event: { replayId: number }; payload: Record<string, unknown> };
    received.push({ replayId: d.event.replayId, payload: d.payload });
  });
  const ready = new Promise<void>((resolve, reject) => {
    subscription.callback(() => resolve());
    subscription.errback((err) => reject(err));
  });
  return { client, received, ready };
}

const command = (name: string) => conn.sobject('IoT_Command__c').create({ Name: name, Device__c: 'pump-17', Arguments__c: '{}' }) as Promise<{ id: string }>;
const event = (name: string) => conn.sobject('IoT_Command__e').create({ Name__c: name, Device__c: 'pump-17' });

describe('the sandbox CometD endpoint through jsforce', () => {
  it('delivers record changes and platform events, with replay ids that grow with gaps', async () => {
    const changes = subscribe('/data/IoT_Command__ChangeEvent', () => -1);
    const events = subscribe('/event/IoT_Command__e', () => -1);
    await Promise.all([changes.ready, events.ready]);
    const { id } = await command('reboot');
    await conn.sobject('IoT_Command__c').update({ Id: id, Status__c: 'Sent' });
    await event('light');
    await eventually('two changes and one event', () => (changes.received.length === 2 && events.received.length === 1 ? true : undefined));
    const [created, updated] = changes.received;
    expect(created.payload).toMatchObject({ Name: 'reboot', Device__c: 'pump-17', Status__c: 'New', ChangeEventHeader: { entityName: 'IoT_Command__c', changeType: 'CREATE', recordIds: [id] } });
    expect(updated.payload).toMatchObject({ Status__c: 'Sent', ChangeEventHeader: { changeType: 'UPDATE', changedFields: expect.arrayContaining(['Status__c', 'LastModifiedDate']) } });
    expect(updated.payload).not.toHaveProperty('Name');
    expect(events.received[0].payload).toMatchObject({ Name__c: 'light', Device__c: 'pump-17' });
    const ids = [created.replayId, updated.replayId, events.received[0].replayId];
    expect(ids[1]).toBeGreaterThan(ids[0]);
    expect(ids[2]).toBeGreaterThan(ids[1]);
    expect(ids[1] - ids[0] > 1 || ids[2] - ids[1] > 1).toBe(true);
  });

  it('replays: -1 new only, -2 all retained, an id the events after it; 400 once the id is gone', async () => {
    await command('a');
    await command('b');
    const retained = sf.sandbox.streaming.retained('/data/IoT_Command__ChangeEvent').map((e) => e.replayId);
    expect(retained).toHaveLength(2);
    const fromNew = subscribe('/data/IoT_Command__ChangeEvent', () => -1);
    const fromAll = subscribe('/data/IoT_Command__ChangeEvent', () => -2);
    const fromFirst = subscribe('/data/IoT_Command__ChangeEvent', () => retained[0]);
    await Promise.all([fromNew.ready, fromAll.ready, fromFirst.ready]);
    await command('c');
    await eventually('c everywhere', () => (fromNew.received.length === 1 && fromAll.received.length === 3 && fromFirst.received.length === 2 ? true : undefined));
    expect(fromAll.received.map((r) => r.payload.Name)).toEqual(['a', 'b', 'c']);
    expect(fromFirst.received.map((r) => r.payload.Name)).toEqual(['b', 'c']);
    sf.sandbox.streaming.purge(retained[0]);
    const gone = subscribe('/data/IoT_Command__ChangeEvent', () => retained[0]);
    await expect(gone.ready).rejects.toThrow(/^400::The replayId \{\d+\} you provided was invalid/);
    const unknown = subscribe('/event/No_Such__e', () => -1);
    await expect(unknown.ready).rejects.toThrow(/^400::The channel you requested to subscribe to does not exist \{\/event\/No_Such__e\}/);
  });

  it('holds a connect until an event comes, and answers it early when one does', async () => {
    sf.sandbox.configure({ streamingHoldMs: 60_000 });
    try {
      const changes = subscribe('/data/IoT_Command__ChangeEvent', () => -1);
      await changes.ready;
      await new Promise((resolve) => setTimeout(resolve, 300));
      const before = Date.now();
      await command('now');
      await eventually('the event', () => (changes.received.length === 1 ? true : undefined));
      expect(Date.now() - before).toBeLessThan(5_000);
    } finally {
      sf.sandbox.configure({ streamingHoldMs: 2_000 });
    }
  });

  it('holds the whole batched answer while its connect waits: the hold time, or until an event', async () => {
    const post = async (messages: unknown[]): Promise<{ ms: number; body: Array<Record<string, unknown>> }> => {
      const started = Date.now();
      const response = await fetch(`${sf.sandbox.url}/cometd/62.0`, { method: 'POST', headers: { authorization: `OAuth ${conn.accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify(messages) });
      return { ms: Date.now() - started, body: (await response.json()) as Array<Record<string, unknown>> };
    };
    const [handshake] = (await post([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: '1' }])).body;
    expect(handshake).toMatchObject({ successful: true, ext: { replay: true }, advice: { reconnect: 'retry', timeout: 2_000 } });
    const clientId = handshake.clientId;
    const first = await post([
      { channel: '/meta/connect', clientId, connectionType: 'long-polling', id: '2', advice: { timeout: 0 } },
      { channel: '/meta/subscribe', clientId, subscription: '/data/IoT_Command__ChangeEvent', id: '3', ext: { replay: { '/data/IoT_Command__ChangeEvent': -1 } } },
    ]);
    expect(first.ms).toBeLessThan(1_000);
    expect(first.body.map((m) => m.channel)).toEqual(['/meta/subscribe', '/meta/connect']);
    const held = await post([
      { channel: '/meta/connect', clientId, connectionType: 'long-polling', id: '4' },
      { channel: '/meta/subscribe', clientId, subscription: '/event/IoT_Command__e', id: '5' },
    ]);
    expect(held.ms).toBeGreaterThanOrEqual(1_900);
    expect(held.body.map((m) => [m.channel, m.successful])).toEqual([
      ['/meta/subscribe', true],
      ['/meta/connect', true],
    ]);
    const waiting = post([{ channel: '/meta/connect', clientId, connectionType: 'long-polling', id: '6' }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await event('wake up');
    const early = await waiting;
    expect(early.ms).toBeLessThan(1_900);
    expect(early.body.map((m) => m.channel)).toEqual(['/event/IoT_Command__e', '/meta/connect']);
    expect(early.body[0]).toMatchObject({ data: { payload: { Name__c: 'wake up' }, event: { replayId: expect.any(Number), EventUuid: expect.any(String) } } });
  });

  it('after 403::Unknown client faye handshakes and subscribes again, from the position the extension gives', async () => {
    let position = -1;
    const changes = subscribe('/data/IoT_Command__ChangeEvent', () => position);
    await changes.ready;
    await command('first');
    await eventually('first', () => (changes.received.length === 1 ? true : undefined));
    position = changes.received[0].replayId;
    const handshakes = sf.sandbox.streaming.stats().handshakes;
    expect(sf.sandbox.streaming.forgetClients()).toBeGreaterThan(0);
    await command('while forgotten');
    await eventually('the event made while the client was unknown', () => (changes.received.some((r) => r.payload.Name === 'while forgotten') ? true : undefined), 20_000);
    expect(sf.sandbox.streaming.stats().handshakes).toBeGreaterThan(handshakes);
    expect(sf.sandbox.streaming.stats().unknownClient).toBeGreaterThan(0);
    expect(changes.received.map((r) => r.payload.Name)).toEqual(['first', 'while forgotten']);
  });

  it('answers a revoked token with 401 and reconnect none, and a handshake with it 403::Handshake denied', async () => {
    let refused: string | undefined;
    const changes = subscribe('/data/IoT_Command__ChangeEvent', () => -1, { refused: (e) => (refused = e) });
    await changes.ready;
    sf.sandbox.expireTokens();
    await eventually('the refusal', () => refused, 10_000);
    expect(refused).toBe('401::Authentication invalid');
    let denied: string | undefined;
    const again = subscribe('/data/IoT_Command__ChangeEvent', () => -1, { refused: (e) => (denied = e) });
    again.ready.catch(() => undefined);
    await eventually('the handshake refused', () => denied, 10_000);
    expect(denied).toBe('401::Authentication invalid');
  });

  it('refuses the WebSocket probe and a path without a version', async () => {
    const probe = await new Promise<number | undefined>((resolve, reject) => {
      const url = new URL(`${sf.sandbox.url}/cometd/62.0`);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(probe).toBe(400);
    const noVersion = await fetch(`${sf.sandbox.url}/cometd`, { method: 'POST', body: '[]' });
    expect(noVersion.status).toBe(400);
    expect(await noVersion.text()).toMatch(/API version in the URI is mandatory/);
  });
});
