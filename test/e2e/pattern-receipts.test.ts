/**
 * Accepted means stored, seen from the devices (issue 11 items 1 and 7): a sender is acknowledged
 * only for what the pattern's queue has on disk. The Buffered pattern (MQTT: the PUBACK) and the
 * Double Buffered pattern (HTTP batches: 202, else 503 with Retry-After) run as shipped but for a
 * queue that holds only 20 readings, with the time-series store down so that nothing leaves it:
 * past 20 the devices are told nothing (or 503) and keep their readings; once the store is back
 * the queue drains, the devices send again, and every reading is acknowledged and stored once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PatternName } from '../../simulator/scenarios';
import type { FlowNode } from '../support/buffer-flow';
import { PatternRun, readingsPerDevice, sorted } from '../support/patterns';
import { sleep } from '../support/wait';

const CAPACITY = 20;

let run: PatternRun | undefined;
afterEach(async () => {
  await run?.dispose();
  run = undefined;
});

async function acknowledgesOnlyWhatIsStored(flowFile: string, pattern: PatternName, queue: string): Promise<void> {
  run = await PatternRun.start(flowFile, (node: FlowNode) => {
    if (node.id === queue) node.maxMessages = String(CAPACITY);
  });
  await run.store.stop();
  // 2 devices, 2 readings a second each, for 10 s: twice what the queue holds.
  const simulation = run.simulation(pattern, { devices: 2, rate: 2, duration: 10, bad: false, model: { silenceChance: 0 }, settleMs: 120_000 });
  const running = simulation.run();
  const acknowledgedReadings = () => simulation.sent.filter((s) => s.accepted).reduce((n, s) => n + (s.readings?.length ?? 0), 0);
  const sentReadings = () => simulation.sent.reduce((n, s) => n + (s.readings?.length ?? 0), 0);
  await sleep(13_000);
  const whileFull = { acknowledged: acknowledgedReadings(), sent: sentReadings() };
  await run.store.start();
  const report = await running;

  expect(whileFull.sent).toBe(2 * CAPACITY);
  expect(whileFull.acknowledged).toBeGreaterThan(0);
  expect(whileFull.acknowledged).toBeLessThanOrEqual(CAPACITY);
  expect(report.sent.filter((s) => !s.accepted).map((s) => `${s.sender} at ${new Date(s.at).toISOString()}: ${String(s.status)}`)).toEqual([]);
  const expected = new Map([...readingsPerDevice(report)].map(([device, list]) => [device, list.length]));
  expect([...expected.values()].reduce((a, b) => a + b, 0)).toBe(2 * CAPACITY);
  expect(sorted(await run.storedPerDevice('temperature', 2 * CAPACITY, 60_000))).toEqual(sorted(expected));
}

describe('a sender is acknowledged only for what the queue stored', () => {
  it('Buffered: no PUBACK past what the queue holds, and every reading acknowledged and stored once there is room', async () => {
    await acknowledgesOnlyWhatIsStored('pattern-3-buffered.json', 'buffered', 'buffered.readings');
  });

  it('Double Buffered: 503 past what the queue holds, and every batch answered 202 and stored once there is room', async () => {
    await acknowledgesOnlyWhatIsStored('pattern-8-double-buffered.json', 'double', 'double.readings');
  });
});
