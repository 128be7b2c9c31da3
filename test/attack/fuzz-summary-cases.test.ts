/**
 * The bugs the iot-summary fuzz found, one message each (see the report to the lead). A file of
 * their own, run in a process of its own: the timestamp bug leaves a node that cannot be stopped
 * (its close throws), which would spoil the tests after it; it goes last.
 */
import { expect, it } from 'vitest';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems } from '../support/fuzz';
import { minute } from './summary-minute';

fuzzRuntime('summary-cases');

/** Messages without a time are summarised at their arrival: a time taken when the test starts may fall in a window that closed while the runtime started. */
/** The given messages, one each, then lingerMs more (11 s lets the snapshot, every 10 s, and the status timer run). */
const each = (messages: Array<Record<string, unknown>>, lingerMs = 0) => fuzzNode({ ...minute, count: messages.length, seed: 0, message: (_h, n) => messages[n], lingerMs });

it('keeps running when a device meta holds a cycle or a BigInt (bug: the snapshot of open windows throws, uncaught)', async () => {
  const meta: Record<string, unknown> = { site: 'roof' };
  meta.self = meta;
  const report = await each([
    { payload: { temperature: 21.5 }, device: { id: 'pump-1', method: 'apikey', meta } },
    { payload: { temperature: 21.5 }, device: { id: 'pump-2', method: 'apikey', meta: { serial: 10n } } },
  ], 11_000);
  expect(problems(report)).toEqual(NO_PROBLEMS);
});

it('refuses a reading with no key (no device, no topic) with missing_key (bug: summarised under the key "")', async () => {
  const report = await each([{ payload: { temperature: 21.5 } }, { payload: { temperature: 22.5 } }, { flush: true }]);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.codes).toEqual({ missing_key: 2 });
});

it('refuses a msg.timestamp outside the dates JavaScript has (1e21, -1e308) with bad_timestamp, and keeps running (bug: accepted, then "Invalid time value" thrown by its timers, uncaught)', async () => {
  const device = (id: string) => ({ id, method: 'apikey' });
  const report = await each([
    // A device of its own: pump-1's minute may have been summarised already by the first test's run.
    { payload: { temperature: 21.5 }, device: device('pump-4') },
    { payload: { temperature: 21.5 }, device: device('pump-1'), timestamp: 1e21 },
    { payload: { temperature: 21.5 }, device: device('pump-2'), timestamp: 1e21 },
    { payload: { temperature: 21.5 }, device: device('pump-3'), timestamp: -1e308 },
  ], 11_000);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.codes).toEqual({ bad_timestamp: 3 });
});
