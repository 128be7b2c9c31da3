/**
 * Pattern 4 · Gateway, end to end: gateways publish batches for their sensors; each sensor's
 * readings are stored with their own time and judged on their own; a sensor of another gateway is
 * refused reading by reading, and a gateway with the wrong key is not let in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../simulator/run';
import { countBy, expectedClears, expectedEpisodes, PatternRun, readingsPerDevice, sorted, temperatureRule } from '../support/patterns';

let run: PatternRun;
let report: Report;

beforeAll(async () => {
  run = await PatternRun.start('pattern-4-gateway.json');
  report = await run.simulate('gateway', { devices: 2, rate: 2, duration: 5, overheatAt: { 0: 1 } });
});
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 4 · Gateway, end to end', () => {
  it('stores every reading of every registered sensor, and none of the stranger', async () => {
    const expected = new Map([...readingsPerDevice(report)].map(([device, list]) => [device, list.length]));
    expect(expected.size).toBe(16);
    expect(expected.has('gw-99:s-01')).toBe(false);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    const stored = await run.storedPerDevice('temperature', total);
    expect(sorted(stored)).toEqual(sorted(expected));
  });

  it('refuses the gateway with the wrong key', () => {
    expect(report.sent.find((s) => s.kind === 'wrong password')).toMatchObject({ accepted: false });
  });

  it('opens exactly the Cases the sensors call for, each naming its sensor, and closes those whose alert cleared', async () => {
    const expected = expectedEpisodes(readingsPerDevice(report), ['temperature', temperatureRule(3)]);
    const cleared = expectedClears(readingsPerDevice(report), ['temperature', temperatureRule(3)]);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    const cases = await run.recordsWhen('Case', `${total} Cases`, (r) => r.length >= total);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const settled = await run.records('Case');
    expect(sorted(countBy(settled, 'IoT_Device_Id__c'))).toEqual(sorted(expected));
    expect(sorted(countBy(settled.filter((c) => c.Status === 'Closed'), 'IoT_Device_Id__c'))).toEqual(sorted(cleared));
    for (const c of cases) expect(String(c.Subject)).toMatch(new RegExp(`^temperature above (80|90) on ${String(c.IoT_Device_Id__c)}`));
  });
});
