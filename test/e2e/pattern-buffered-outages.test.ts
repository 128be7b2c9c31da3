/**
 * Pattern 3 · Buffered as shipped, at its own settings, through a minute without the time-series
 * store and then a minute without Salesforce while its devices report every second: no Case for
 * silence, every acknowledged reading stored, the store kept up while Salesforce was down, and no
 * alert lost (test/support/pattern-outages.ts; five-minute outages run in test/chaos/).
 */
import { afterAll, describe, it } from 'vitest';
import { buffersThroughOutages } from '../support/pattern-outages';
import { PatternRun } from '../support/patterns';

let run: PatternRun | undefined;
afterAll(async () => {
  await run?.dispose();
});

describe('Pattern 3 · Buffered through outages of a minute', () => {
  it('opens no silence Case while the store is down, stores every reading after it, and loses no alert while Salesforce is down', async () => {
    run = await PatternRun.start('pattern-3-buffered.json');
    await buffersThroughOutages(run, { storeOutageMs: 60_000, salesforceOutageMs: 60_000 }, (line) => console.log(`[outages] ${line}`));
  }, 600_000);
});
