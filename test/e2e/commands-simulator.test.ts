/**
 * The commands example (flows/commands-mqtt.json) in a real Node-RED with the local Salesforce
 * sandbox, driving the simulator's commanded devices (simulator/commanded-device.ts), which execute
 * commands for real: a set_interval record created on a Case is done, its status is in Salesforce,
 * and the device's acknowledged readings then come at the new interval; a reboot disconnects and
 * reconnects the device; a light reports its new state; a threshold flags the readings above it;
 * no command id is executed twice.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandedDevice } from '../../simulator/commanded-device';
import { DeviceKeys, masterSecret } from '../../simulator/credentials';
import { Random } from '../../simulator/devices';
import { NodeRedProcess, repoRoot } from '../support/node-red-process';
import { testAssertion } from '../support/salesforce';
import { eventually, sleep } from '../support/wait';

const CHANNEL = '/data/IoT_Command__ChangeEvent';
const USERNAME = 'integration@sandbox.iot-patterns.local';

type SalesforceRecord = Record<string, unknown> & { Id: string };

let node: NodeRedProcess;
let conn: import('jsforce').Connection;
let keys: DeviceKeys;
const devices: CommandedDevice[] = [];

beforeAll(async () => {
  const flow = JSON.parse(readFileSync(join(repoRoot, 'flows', 'commands-mqtt.json'), 'utf8')) as unknown[];
  node = await NodeRedProcess.start({ flows: flow });
  keys = new DeviceKeys(masterSecret(node.dataDir));
  const app = JSON.parse(readFileSync(join(node.dataDir, 'salesforce', 'connected-app.json'), 'utf8')) as { consumerKey: string };
  const privateKey = readFileSync(join(node.dataDir, 'salesforce', 'connected-app.key'), 'utf8');
  const { Connection } = await import('jsforce');
  conn = new Connection({ loginUrl: node.salesforceUrl, version: '62.0' });
  await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await testAssertion(node.salesforceUrl, { iss: app.consumerKey, sub: USERNAME, key: privateKey }) });
  // Commands made before the flow subscribed are not its (it starts with new events only).
  await eventually('the flow subscribed to command records', async () => {
    const stats = (await fetch(`${node.salesforceUrl}/_sandbox/streaming`).then((r) => r.json())) as { subscriptions: string[] };
    return stats.subscriptions.includes(CHANNEL) ? true : undefined;
  }, 60_000, 250);
});

afterAll(async () => {
  await Promise.all(devices.splice(0).map((d) => d.stop()));
  await node?.dispose();
});

async function simulated(id: string, intervalMs: number): Promise<CommandedDevice> {
  // No silences: the test measures the intervals between readings.
  const device = new CommandedDevice({ id, url: `mqtt://127.0.0.1:${node.brokerPorts.commands}`, apiKey: keys.apiKey(id), intervalMs, random: new Random(7), model: { silenceChance: 0 }, rebootMs: 1_000 });
  devices.push(device);
  await device.start();
  return device;
}

async function command(name: string, device: string, args?: unknown): Promise<{ recordId: string; caseId: string }> {
  const caseId = ((await conn.sobject('Case').create({ Subject: `${device} needs ${name}` })) as { id: string }).id;
  const recordId = ((await conn.sobject('IoT_Command__c').create({ Name: name, Device__c: device, Case__c: caseId, ...(args === undefined ? {} : { Arguments__c: JSON.stringify(args) }) })) as { id: string }).id;
  return { recordId, caseId };
}

async function doneInSalesforce(recordId: string): Promise<SalesforceRecord> {
  return eventually(`command ${recordId} Done in Salesforce`, async () => {
    const records = (await fetch(`${node.salesforceUrl}/_sandbox/records?type=IoT_Command__c`).then((r) => r.json())) as SalesforceRecord[];
    const found = records.find((r) => r.Id === recordId);
    return found?.Status__c === 'Done' ? found : undefined;
  }, 20_000);
}

/** The gaps (ms) between the acknowledged readings sent at or after `since`. */
function gapsSince(device: CommandedDevice, since: number): number[] {
  const times = device.reported.filter((r) => r.at >= since).map((r) => r.at);
  return times.slice(1).map((at, i) => at - times[i]);
}

describe('simulated devices executing the commands example\'s commands', () => {
  it('a new reporting interval from Salesforce is done, written back, and the readings come at it', async () => {
    const pump = await simulated('pump-31', 500);
    await eventually('readings every 0.5 s', () => (pump.reported.length >= 4 ? true : undefined), 10_000);
    const { recordId } = await command('set_interval', 'pump-31', { seconds: 2 });
    const done = await doneInSalesforce(recordId);
    expect(done.Result__c).toBe('{"interval_s":2}');
    const changedAt = Date.parse(String(done.Status_Time__c));
    expect(changedAt).toBeGreaterThan(Date.now() - 30_000);
    const before = gapsSince(pump, 0).slice(0, 3);
    for (const gap of before) {
      expect(gap).toBeLessThan(1_200);
    }
    await eventually('four readings at the new interval', () => (gapsSince(pump, changedAt).length >= 3 ? true : undefined), 15_000);
    for (const gap of gapsSince(pump, changedAt)) {
      expect(gap).toBeGreaterThan(1_500);
      expect(gap).toBeLessThan(2_700);
    }
    expect(pump.executed).toEqual([recordId]);
    expect(pump.settings.intervalMs).toBe(2_000);
  });

  it('a reboot disconnects and reconnects the device, a light reports its new state, a threshold flags readings, and nothing is executed twice', async () => {
    const lamp = await simulated('lamp-32', 1_000);
    const reboot = await command('reboot', 'lamp-32');
    const rebooted = await doneInSalesforce(reboot.recordId);
    expect(lamp.reboots).toBe(1);
    expect(JSON.parse(String(rebooted.Result__c))).toMatchObject({ rebooted: true });
    // Commands to a device go one at a time: the light after the reboot is done.
    const light = await command('light', 'lamp-32', { on: true, colour: 'red' });
    const lit = await doneInSalesforce(light.recordId);
    expect(JSON.parse(String(lit.Result__c))).toEqual({ light: { on: true, colour: 'red' } });
    expect(lamp.settings.light).toEqual({ on: true, colour: 'red' });
    expect(lamp.reported.some((r) => r.alarm)).toBe(false);
    // Below anything it measures: every reading from then on is an alarm.
    const threshold = await command('set_threshold', 'lamp-32', { temperature: -50 });
    const thresholdAt = Date.parse(String((await doneInSalesforce(threshold.recordId)).Status_Time__c));
    await eventually('two readings after the threshold', () => (lamp.reported.filter((r) => r.at >= thresholdAt).length >= 2 ? true : undefined), 10_000);
    expect(lamp.reported.filter((r) => r.at >= thresholdAt).every((r) => r.alarm === true)).toBe(true);
    // The flow's own status writes come back as record changes: nothing is executed twice.
    await sleep(1_000);
    expect(lamp.executed).toEqual([reboot.recordId, light.recordId, threshold.recordId]);
    expect(lamp.reboots).toBe(1);
  });
});
