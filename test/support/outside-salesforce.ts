/**
 * The setting for outside tests of iot-salesforce-out: the local Salesforce sandbox in this
 * process, a recording proxy in front of it (the org as its access log sees it), and a whole
 * Node-RED (npm start) that logs in through the proxy, with the editor's status feed.
 *
 *   const org = new OutsideSalesforce();
 *   beforeAll(() => org.start());  afterAll(() => org.dispose());
 *   await org.startNodeRed();
 *   const prefix = await org.deployTab('jwt', [{ name: 'cases' }]);
 */
import { expect } from 'vitest';
import { EditorStatus } from './editor-status';
import { NodeRedProcess } from './node-red-process';
import { RecordingProxy, type ProxiedCall } from './recording-proxy';
import { CONSUMER_KEY, CONSUMER_SECRET, startTestSandbox, USERNAME, type TestSandbox } from './salesforce';
import { deploySalesforceTab, salesforceTab, type OutSpec } from './salesforce-flow';

export type Method = 'jwt' | 'clientCredentials';

export class OutsideSalesforce {
  sf!: TestSandbox;
  proxy!: RecordingProxy;
  node!: NodeRedProcess;
  statuses!: EditorStatus;
  private deployed = 0;

  async start(): Promise<void> {
    this.sf = await startTestSandbox();
    this.proxy = await RecordingProxy.start(this.sf.sandbox.url);
  }

  /**
   * A whole Node-RED of its own (a new process holds no session yet). SF_LOGIN_URL set: npm
   * start runs no sandbox of its own; INFLUX_URL set: no managed store.
   */
  async startNodeRed(): Promise<void> {
    this.statuses?.close();
    await this.node?.dispose();
    this.node = await NodeRedProcess.start({ flows: [], env: { SF_LOGIN_URL: this.proxy.url, INFLUX_URL: 'http://127.0.0.1:9' } });
    this.statuses = await EditorStatus.watch(this.node.editorUrl);
  }

  async dispose(): Promise<void> {
    this.statuses?.close();
    await this.node?.dispose();
    await this.proxy?.close();
    await this.sf?.close();
  }

  /** The connection as a user fills it in: what the README says must be set. */
  connection(method: Method): Record<string, unknown> {
    // The JWT audience: the sandbox's own URL, as it would be login.salesforce.com for a real org
    // (the proxy stands between, so the login URL the node sees is the proxy's).
    return method === 'jwt'
      ? { loginUrl: this.proxy.url, authMethod: 'jwt', consumerKey: CONSUMER_KEY, username: USERNAME, audience: this.sf.sandbox.url, credentials: { privateKey: this.sf.keys.privateKey } }
      : { loginUrl: this.proxy.url, authMethod: 'clientCredentials', consumerKey: CONSUMER_KEY, credentials: { clientSecret: CONSUMER_SECRET } };
  }

  /** A new prefix for a tab and its alert ids. */
  nextPrefix(): string {
    return `t${++this.deployed}`;
  }

  /** A fresh tab (a new connection) with these out nodes; returns its prefix. */
  async deployTab(method: Method, outs: OutSpec[] = [{ name: 'cases' }]): Promise<string> {
    const prefix = this.nextPrefix();
    await deploySalesforceTab(this.node, salesforceTab(prefix, this.connection(method), outs));
    return prefix;
  }

  /** The sandbox's settings, over its documented HTTP API. */
  async settings(settings: Record<string, number>): Promise<void> {
    const response = await fetch(`${this.sf.sandbox.url}/_sandbox/settings`, { method: 'POST', body: JSON.stringify(settings) });
    expect(response.status, 'POST /_sandbox/settings').toBe(200);
  }

  /** Faults the sandbox injects, over its documented HTTP API (counts add up). */
  async faults(faults: Record<string, number>): Promise<void> {
    const response = await fetch(`${this.sf.sandbox.url}/_sandbox/faults`, { method: 'POST', body: JSON.stringify(faults) });
    expect(response.status, 'POST /_sandbox/faults').toBe(200);
  }

  async expireTokens(): Promise<void> {
    expect((await fetch(`${this.sf.sandbox.url}/_sandbox/expire-tokens`, { method: 'POST' })).ok, 'POST /_sandbox/expire-tokens').toBe(true);
  }

  async records(type: string): Promise<Array<Record<string, unknown>>> {
    return (await fetch(`${this.sf.sandbox.url}/_sandbox/records?type=${type}`).then((r) => r.json())) as Array<Record<string, unknown>>;
  }

  /** How many records of a type carry each of these alert ids (IoT_Alert_Id__c). */
  async copiesPerAlert(type: string, ids: string[]): Promise<Record<string, number>> {
    const all = await this.records(type);
    return Object.fromEntries(ids.map((id) => [id, all.filter((r) => r.IoT_Alert_Id__c === id).length]));
  }
}

/** What copiesPerAlert answers when each alert made exactly one record. */
export const once = (ids: string[]): Record<string, number> => Object.fromEntries(ids.map((id) => [id, 1]));

/** Records a REST call carried: the collection's records, else one. */
function recordsIn(body: string): number {
  if (!body) return 0;
  const parsed = JSON.parse(body) as { records?: unknown[] };
  return Array.isArray(parsed.records) ? parsed.records.length : 1;
}

/** A compact view of calls for assertions and logs: `PATCH 200 records -> 503`. */
export const described = (calls: ProxiedCall[]): string[] => calls.map((c) => `${c.method} ${recordsIn(c.body)} records -> ${c.status}`);

/** The alert ids a REST call carried: each record's IoT_Alert_Id__c, or the one in an upsert's path. */
export function alertIdsIn(call: ProxiedCall): string[] {
  if (!call.body) return [];
  const parsed = JSON.parse(call.body) as { records?: Array<Record<string, unknown>> } & Record<string, unknown>;
  if (Array.isArray(parsed.records)) return parsed.records.map((r) => String(r.IoT_Alert_Id__c));
  const inPath = /\/IoT_Alert_Id__c\/([^/?]+)$/.exec(call.path)?.[1];
  return [inPath ? decodeURIComponent(inPath) : String(parsed.IoT_Alert_Id__c)];
}

/** Salesforce's error answer in a call: `[{ errorCode, message }]`'s first. */
export function errorIn(call: ProxiedCall): { errorCode: string; message: string } | undefined {
  try {
    const parsed = JSON.parse(call.answer) as Array<{ errorCode: string; message: string }>;
    return Array.isArray(parsed) ? { errorCode: parsed[0].errorCode, message: parsed[0].message } : undefined;
  } catch {
    return undefined;
  }
}
