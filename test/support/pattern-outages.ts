/**
 * The Buffered pattern as shipped, through an outage of the time-series store and then one of
 * Salesforce, while its devices report every second (issue 11 item 3). Shared by the end-to-end
 * test (a minute each) and the chaos test (five minutes each): what is promised does not depend on
 * how long the outage lasts.
 *
 *   - The store down: the rules read every reading as it is stored in the queue, not as the store
 *     takes it, so no device looks silent and no Case opens for silence; once the store is back,
 *     every acknowledged reading is in it.
 *   - Salesforce down, a device running hot meanwhile: the readings go on into the store as they
 *     come (the CRM has a queue of its own), and once Salesforce is back every Case the readings
 *     call for is there: no alert lost.
 */
import { expect } from 'vitest';
import type { Report } from '../../simulator/run';
import { exportSeries } from './services';
import { countBy, expectedEpisodes, PatternRun, readingsPerDevice, sorted, temperatureRule, type SalesforceRecord } from './patterns';
import { sleep } from './wait';

export interface OutagePlan {
  storeOutageMs: number;
  salesforceOutageMs: number;
}

const DEVICES = 3;
/** Normal traffic before, between and after the outages. */
const CALM_MS = 10_000;

export async function buffersThroughOutages(run: PatternRun, plan: OutagePlan, log: (line: string) => void = () => undefined): Promise<void> {
  const durationS = Math.ceil((3 * CALM_MS + plan.storeOutageMs + plan.salesforceOutageMs) / 1000);
  // Device 0 runs hot a few seconds into the Salesforce outage: its alert must wait, not vanish.
  const hotAt = Math.round((2 * CALM_MS + plan.storeOutageMs + 5_000) / 1000);
  const simulation = run.simulation('buffered', { devices: DEVICES, rate: 1, duration: durationS, bad: false, overheatAt: { 0: hotAt }, model: { silenceChance: 0 } });
  const running = simulation.run();
  const acknowledged = () => simulation.sent.filter((s) => s.accepted).length;

  await sleep(CALM_MS);
  log(`store down at ${acknowledged()} readings acknowledged`);
  await run.store.stop();
  await sleep(plan.storeOutageMs);
  await run.store.start();
  log(`store back at ${acknowledged()} readings acknowledged`);
  await sleep(CALM_MS);
  const silentDuringStoreOutage = await silenceCases(run);

  log(`Salesforce down at ${acknowledged()} readings acknowledged`);
  await run.salesforceOutage(plan.salesforceOutageMs);
  const salesforceDownAt = Date.now();
  await sleep(plan.salesforceOutageMs - 5_000);
  // Still within the Salesforce outage: what was acknowledged 5 s ago is in the store already.
  const acknowledgedBefore = simulation.sent.filter((s) => s.accepted && s.at < Date.now() - 5_000).length;
  const keptUp = await exportSeries(run.store, 'readings_temperature', acknowledgedBefore, 4_000).then(
    () => 'the store kept up',
    () => `fewer than the ${acknowledgedBefore} readings acknowledged 5 s before were in the store while Salesforce was down`,
  );
  await sleep(Math.max(0, plan.salesforceOutageMs - (Date.now() - salesforceDownAt)));
  log(`Salesforce back at ${acknowledged()} readings acknowledged`);
  const report: Report = await running;
  const silentAtTheEnd = await silenceCases(run);

  // Every device reported every second throughout: no silence, before or after.
  expect(silentDuringStoreOutage).toEqual([]);
  expect(silentAtTheEnd).toEqual([]);
  const sent = report.sent.filter((s) => !s.bad);
  expect(sent.filter((s) => !s.accepted).map((s) => `${s.sender} at ${new Date(s.at).toISOString()}: ${String(s.status)}`)).toEqual([]);

  // The store kept up while Salesforce was down.
  expect(keptUp).toBe('the store kept up');

  // Every acknowledged reading is stored, once.
  const expected = new Map([...readingsPerDevice(report)].map(([device, list]) => [device, list.length]));
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  expect(sorted(await run.storedPerDevice('temperature', total, 120_000))).toEqual(sorted(expected));

  // Every alert the readings call for is a Case, the one raised during the outage too.
  const episodes = expectedEpisodes(readingsPerDevice(report), ['temperature', temperatureRule(3)]);
  const cases = await run.recordsWhen('Case', 'every alert a Case', (records) => sorted(countBy(hot(records), 'IoT_Device_Id__c')).join() === sorted(episodes).join(), 120_000);
  expect(sorted(countBy(hot(cases), 'IoT_Device_Id__c'))).toEqual(sorted(episodes));
  expect(episodes.get('pump-01')).toBeGreaterThanOrEqual(1);
}

function hot(cases: SalesforceRecord[]): SalesforceRecord[] {
  return cases.filter((c) => /^temperature above/.test(String(c.Subject)));
}

async function silenceCases(run: PatternRun): Promise<string[]> {
  return (await run.records('Case')).filter((c) => /silent for/.test(String(c.Subject))).map((c) => String(c.Subject));
}
