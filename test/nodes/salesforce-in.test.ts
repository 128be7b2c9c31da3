/**
 * iot-salesforce-in in a Node-RED runtime against the local sandbox's Streaming API: record
 * changes and platform events into the flow with delivery tokens; resuming after a restart (and
 * after a crash that left only the journal) from the last event processed, none twice; faye's
 * new handshake after 403::Unknown client; a lost position (400) stopping red until told; a
 * revoked token renewed through the connection; events not settled delivered again; reconnecting
 * with backoff when the org is unreachable.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import connectionNode from '../../nodes/salesforce-connection/salesforce-connection';
import inNode from '../../nodes/salesforce-in/salesforce-in';
import { settleDelivery } from '../../nodes/shared/delivery';
import { startSalesforceSandbox } from '../../sandbox/salesforce/server';
import { helper } from '../support/node-red';
import { watchProcessFailures } from '../support/process-failures';
import { CONSUMER_KEY, startTestSandbox, testKeys, USERNAME, type TestSandbox } from '../support/salesforce';
import { eventually, sleep } from '../support/wait';

const CHANNEL = '/data/IoT_Command__ChangeEvent';
let sf: TestSandbox;
let userDir: string;
/** What the settling stand-in does with each event: settle it (ok), or keep it unsettled. */
let settleMode: 'ok' | 'hold' = 'ok';
const held: NodeMessage[] = [];
let runtime: NodeAPI;

/** A stand-in for a node that processes events and settles them (an iot-command, a buffer). */
function testSettler(RED: NodeAPI): void {
  runtime = RED;
  RED.nodes.registerType('test-settler', function (this: Node, config: object) {
    RED.nodes.createNode(this, config as never);
    this.on('input', (msg: NodeMessage) => {
      if (settleMode === 'ok') settleDelivery(RED, msg, { ok: true });
      else held.push(msg);
    });
  });
}

beforeAll(async () => {
  sf = await startTestSandbox({ streamingHoldMs: 2_000 });
  userDir = mkdtempSync(join(tmpdir(), 'iot-sf-in-'));
  helper.settings({ userDir });
  await new Promise<void>((resolve) => helper.startServer(resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => helper.stopServer(resolve));
  await sf.close();
  rmSync(userDir, { recursive: true, force: true });
});
beforeEach(() => {
  sf.sandbox.reset();
  settleMode = 'ok';
  held.length = 0;
  rmSync(join(userDir, 'iot-state'), { recursive: true, force: true });
});
afterEach(async () => {
  await helper.unload();
});

type Flow = Array<{ id: string; type: string; [property: string]: unknown }>;

function flow(props: Record<string, unknown> = {}, loginUrl = sf.sandbox.url): Flow {
  return [
    { id: 'conn', type: 'iot-salesforce-connection', loginUrl, authMethod: 'jwt', consumerKey: CONSUMER_KEY, username: USERNAME },
    { id: 'in', type: 'iot-salesforce-in', connection: 'conn', channel: CHANNEL, wires: [['events', 'settler'], ['errors']], ...props },
    { id: 'events', type: 'helper' },
    { id: 'settler', type: 'test-settler' },
    { id: 'errors', type: 'helper' },
  ];
}

async function load(f: Flow = flow()): Promise<{ events: NodeMessage[]; errors: NodeMessage[]; status: () => { fill?: string; text?: string } }> {
  await helper.load([connectionNode, inNode, testSettler], f, { conn: { privateKey: testKeys().privateKey } });
  const seen = { events: [] as NodeMessage[], errors: [] as NodeMessage[] };
  helper.getNode('events').on('input', (msg: NodeMessage) => seen.events.push(msg));
  helper.getNode('errors').on('input', (msg: NodeMessage) => seen.errors.push(msg));
  let last: { fill?: string; text?: string } = {};
  const node = helper.getNode('in') as Node & { status(s: object): void };
  const original = node.status.bind(node);
  node.status = (s: object) => {
    last = s as typeof last;
    original(s);
  };
  return { ...seen, status: () => last };
}

const subscribed = (out: { status: () => { fill?: string; text?: string } }) =>
  eventually(`subscribed`, () => {
    if (out.status().fill === 'green' && /subscribed/.test(out.status().text ?? '')) return true;
    throw new Error(`status ${JSON.stringify(out.status())}`);
  }, 15_000);

const names = (msgs: NodeMessage[]) => msgs.map((m) => (m.payload as { Name?: string }).Name);

let conn: import('jsforce').Connection;
async function command(name: string): Promise<string> {
  if (!conn) {
    const { Connection } = await import('jsforce');
    conn = new Connection({ loginUrl: sf.sandbox.url, version: '62.0' });
  }
  // A fresh login each time: tests revoke tokens.
  const { testAssertion } = await import('../support/salesforce');
  await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(sf.sandbox.url) });
  const result = (await conn.sobject('IoT_Command__c').create({ Name: name, Device__c: 'pump-17' })) as { id: string };
  return result.id;
}

describe('iot-salesforce-in', () => {
  it('hands on record changes with their event, a delivery token, and turns green', async () => {
    const out = await load();
    await subscribed(out);
    const id = await command('reboot');
    await eventually('the change', () => (out.events.length === 1 ? true : undefined));
    const msg = out.events[0];
    expect(msg.topic).toBe(CHANNEL);
    expect(msg.payload).toMatchObject({ Name: 'reboot', Device__c: 'pump-17', ChangeEventHeader: { changeType: 'CREATE', entityName: 'IoT_Command__c' } });
    expect(msg.event).toMatchObject({ channel: CHANNEL, kind: 'change', changeType: 'CREATE', entity: 'IoT_Command__c', recordIds: [id], replayId: expect.any(Number), key: expect.stringMatching(/:1$/) });
    expect(msg._delivery).toEqual({ source: 'in', id: expect.any(String) });
    expect(out.errors).toEqual([]);
  });

  it('resumes after a restart from the last event processed: what was settled never again, what came meanwhile and what was not settled, once', async () => {
    let out = await load();
    await subscribed(out);
    await command('one');
    await eventually('one', () => (out.events.length === 1 ? true : undefined));
    settleMode = 'hold';
    await command('two, not settled');
    await eventually('two', () => (out.events.length === 2 ? true : undefined));
    await helper.unload();
    await command('three, while stopped');
    settleMode = 'ok';
    out = await load();
    await eventually('two and three again', () => (out.events.length >= 2 ? true : undefined));
    await sleep(500);
    expect(names(out.events)).toEqual(['two, not settled', 'three, while stopped']);
    await subscribed(out);
  });

  it('resumes after a crash that left only its journal', async () => {
    let out = await load();
    await subscribed(out);
    await command('one');
    await command('two');
    await eventually('both', () => (out.events.length === 2 ? true : undefined));
    await sleep(200);
    const crashed = join(userDir, 'crashed');
    cpSync(join(userDir, 'iot-state'), crashed, { recursive: true });
    await helper.unload();
    rmSync(join(userDir, 'iot-state'), { recursive: true });
    cpSync(crashed, join(userDir, 'iot-state'), { recursive: true });
    rmSync(crashed, { recursive: true });
    expect(readdirSync(join(userDir, 'iot-state'))).toEqual(['salesforce-in-in.journal']);
    await command('three');
    out = await load();
    await eventually('three', () => (out.events.length === 1 ? true : undefined));
    await sleep(500);
    expect(names(out.events)).toEqual(['three']);
  });

  it('goes on after 403::Unknown client: faye handshakes again and the event made meanwhile comes once', async () => {
    const out = await load();
    await subscribed(out);
    await command('before');
    await eventually('before', () => (out.events.length === 1 ? true : undefined));
    sf.sandbox.streaming.forgetClients();
    await command('meanwhile');
    await eventually('meanwhile', () => (out.events.length === 2 ? true : undefined), 15_000);
    await sleep(500);
    expect(names(out.events)).toEqual(['before', 'meanwhile']);
  });

  it('stops red when its position is no longer retained, and goes on from -2 when told', async () => {
    let out = await load();
    await subscribed(out);
    await command('processed');
    await eventually('processed', () => (out.events.length === 1 ? true : undefined));
    await helper.unload();
    await command('lost with the purge');
    sf.sandbox.streaming.purge();
    await command('after the purge');
    out = await load();
    await eventually('red', () => (out.status().fill === 'red' ? true : undefined), 15_000);
    expect(out.status().text).toMatch(/replay-gone|is no longer retained/);
    await sleep(1_000);
    expect(out.events).toEqual([]);
    helper.getNode('in').receive({ replay: -2 });
    await eventually('the retained event', () => (out.events.length === 1 ? true : undefined));
    expect(names(out.events)).toEqual(['after the purge']);
    await subscribed(out);
  });

  it('replays every retained event on a lost position when set to', async () => {
    let out = await load(flow({ onInvalid: 'all' }));
    await subscribed(out);
    await command('processed');
    await eventually('processed', () => (out.events.length === 1 ? true : undefined));
    await helper.unload();
    sf.sandbox.streaming.purge();
    await command('retained');
    out = await load(flow({ onInvalid: 'all' }));
    await eventually('the retained event', () => (out.events.length === 1 ? true : undefined), 15_000);
    expect(names(out.events)).toEqual(['retained']);
  });

  it('renews a revoked token through the connection and goes on', async () => {
    const failures = watchProcessFailures();
    const out = await load();
    await subscribed(out);
    const logins = sf.sandbox.stats().logins;
    sf.sandbox.expireTokens();
    await eventually('a new login', () => (sf.sandbox.stats().logins > logins ? true : undefined), 15_000);
    await subscribed(out);
    await command('after the renewal');
    await eventually('the event', () => (out.events.some((m) => (m.payload as { Name: string }).Name === 'after the renewal') ? true : undefined), 15_000);
    failures.stop();
    expect(failures.seen).toEqual([]);
  });

  it('delivers an event again when the flow does not settle it in time, and not once settled', async () => {
    settleMode = 'hold';
    const out = await load(flow({ answerWithin: '1' }));
    await subscribed(out);
    await command('slow');
    await eventually('delivered twice', () => (out.events.length >= 2 ? true : undefined), 10_000);
    expect(new Set(out.events.map((m) => (m.event as { key: string }).key)).size).toBe(1);
    settleDelivery(runtime, held[held.length - 1], { ok: true });
    const count = out.events.length;
    await sleep(2_500);
    expect(out.events.length).toBe(count);
  });

  it('subscribes again with backoff when the org cannot be reached, and catches up', async () => {
    const other = await startSalesforceSandbox({ streamingHoldMs: 1_000, apps: [{ consumerKey: CONSUMER_KEY, certificate: testKeys().certificate }], users: [{ username: USERNAME }], dataFile: join(userDir, 'org.jsonl') });
    const port = new URL(other.url).port;
    const out = await load(flow({}, other.url));
    await subscribed(out);
    await other.close();
    await eventually('reconnecting', () => (out.status().fill === 'yellow' && /reconnecting/.test(out.status().text ?? '') ? true : undefined), 15_000);
    const back = await startSalesforceSandbox({ port: Number(port), streamingHoldMs: 1_000, apps: [{ consumerKey: CONSUMER_KEY, certificate: testKeys().certificate }], users: [{ username: USERNAME }], dataFile: join(userDir, 'org.jsonl') });
    try {
      await eventually('subscribed again', () => (out.status().fill === 'green' ? true : undefined), 90_000);
    } finally {
      await back.close();
    }
  }, 120_000);
});
