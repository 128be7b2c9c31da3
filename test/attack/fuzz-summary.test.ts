/**
 * iot-summary fuzzed: 10,000 hostile messages (seeded) into the Buffered pattern's per-device
 * minute (open windows kept on disk, time from msg.timestamp), with Catch and Complete nodes
 * scoped to it: no crash, no unhandled rejection, every message done once, every rejection coded
 * as its help says, no summary for a key that is no device. The bugs it found, one message each,
 * are in fuzz-summary-cases.test.ts.
 */
import { expect, it } from 'vitest';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems, readingMessage } from '../support/fuzz';
import { minute } from './summary-minute';

fuzzRuntime('summary');

it('takes 10,000 hostile messages: nothing crashes, every message is done once, every rejection is coded', async () => {
  const report = await fuzzNode({
    ...minute,
    count: 10_000,
    seed: 1202,
    message: (h) => {
      const msg = readingMessage(h);
      if (h.chance(0.01)) msg.flush = h.value() ?? true;
      return msg;
    },
  });
  console.log(`fuzz summary: ${JSON.stringify({ sendMs: report.sendMs, settleMs: report.settleMs, codes: report.codes, outputs: report.outputs, generic: report.genericMessages })}`);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.accounted).toBe(10_000);
});

