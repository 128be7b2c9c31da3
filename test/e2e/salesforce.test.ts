/**
 * Secrets stay secret in a whole Node-RED: a connection deployed with its private key and
 * consumer secret as credentials writes a Case to the local sandbox, and neither secret nor any
 * access token shows in the exported flow JSON, the flows file, the credentials file, the log or
 * the messages.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually } from '../support/wait';

let node: NodeRedProcess | undefined;
afterAll(async () => {
  await node?.dispose();
});

describe('secrets of the Salesforce connection', () => {
  it('never appear in the exported flow, the files, the log or the messages', async () => {
    node = await NodeRedProcess.start({ env: { NODE_RED_LOG_LEVEL: 'debug' } });
    const started = node;
    const sandbox = await eventually('the sandbox URL', () => /Salesforce:\s+(http\S+?)\/? \(local sandbox/.exec(started.output)?.[1], 5_000, 20);
    const app = JSON.parse(readFileSync(join(node.dataDir, 'salesforce', 'connected-app.json'), 'utf8')) as { consumerKey: string; consumerSecret: string };
    const privateKey = readFileSync(join(node.dataDir, 'salesforce', 'connected-app.key'), 'utf8');
    const secret = app.consumerSecret;
    const flows = [
      { id: 'sec.tab', type: 'tab', label: 'secrets' },
      {
        id: 'sec.conn',
        type: 'iot-salesforce-connection',
        loginUrl: sandbox,
        authMethod: 'jwt',
        consumerKey: app.consumerKey,
        username: 'integration@sandbox.iot-patterns.local',
        credentials: { privateKey, clientSecret: secret },
      },
      {
        id: 'sec.inject',
        type: 'inject',
        z: 'sec.tab',
        props: [{ p: 'alert', v: JSON.stringify({ id: 'secret-test-1', state: 'raised', severity: 'major', key: 'pump-9', reading: 'pressure', value: 9, threshold: 8, rule: 'above' }), vt: 'json' }],
        wires: [['sec.out']],
      },
      { id: 'sec.out', type: 'iot-salesforce-out', z: 'sec.tab', connection: 'sec.conn', operation: 'upsert', object: 'Case', recordFrom: 'alert', externalIdField: 'IoT_Alert_Id__c', wires: [['sec.debug'], ['sec.debug']] },
      { id: 'sec.debug', type: 'debug', z: 'sec.tab', active: true, tosidebar: false, console: true, complete: 'true', targetType: 'full', wires: [] },
    ];
    await node.deploy(flows);
    await eventually('the inject to be deployed', async () => ((await fetch(`${started.editorUrl}/inject/sec.inject`, { method: 'POST' })).status === 200 ? true : undefined));
    await eventually('the Case', async () => {
      const cases = (await fetch(`${sandbox}/_sandbox/records?type=Case`).then((r) => r.json())) as Array<{ IoT_Alert_Id__c: string }>;
      return cases.some((c) => c.IoT_Alert_Id__c === 'secret-test-1') ? true : undefined;
    });
    await eventually('the message in the log', () => (started.output.includes('secret-test-1') ? true : undefined));

    const exported = await fetch(`${node.editorUrl}/flows`).then((r) => r.text());
    const credentials = (await fetch(`${node.editorUrl}/credentials/iot-salesforce-connection/sec.conn`).then((r) => r.json())) as Record<string, unknown>;
    expect(credentials).toEqual(expect.objectContaining({ has_privateKey: true, has_clientSecret: true }));
    const userDir = join(node.dataDir, 'node-red');
    const keyLine = privateKey.split('\n')[1];
    for (const [where, text] of [
      ['exported flow JSON', exported],
      ['credentials API', JSON.stringify(credentials)],
      ['flows file', readFileSync(join(userDir, 'flows.json'), 'utf8')],
      ['credentials file', readFileSync(join(userDir, 'flows_cred.json'), 'utf8')],
      ['log and messages', started.output],
    ]) {
      expect(text, where).not.toContain(keyLine);
      expect(text, where).not.toContain(secret);
      expect(text, where).not.toMatch(/00D\w{12}!/);
    }
  });
});
