/**
 * Pattern 3 · Buffered as shipped through five minutes without the time-series store, then five
 * minutes without Salesforce (issue 11 item 3): longer than the writer's own retries (it gives up
 * after 300 s and hands the readings back to the queue), so the queue's redelivery is what keeps
 * them. The same promises as the one-minute end-to-end test (test/support/pattern-outages.ts).
 */
import { afterAll, describe, it } from 'vitest';
import { buffersThroughOutages } from '../support/pattern-outages';
import { PatternRun } from '../support/patterns';

let run: PatternRun | undefined;
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 3 · Buffered through outages of five minutes', () => {
  it('opens no silence Case while the store is down, stores every reading after it, and loses no alert while Salesforce is down', async () => {
    run = await PatternRun.start('pattern-3-buffered.json');
    await buffersThroughOutages(run, { storeOutageMs: 300_000, salesforceOutageMs: 300_000 }, (line) => console.log(`[outages] ${line}`));
  });
});
