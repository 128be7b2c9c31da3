/**
 * iot-salesforce-out through the org's long bad spells, tested from outside (README, help,
 * Salesforce's documented behaviour) in a whole Node-RED at the editor's defaults, with real time
 * passing (minutes: hence test:chaos):
 *
 * - the daily API allowance spent (REQUEST_LIMIT_EXCEEDED `TotalRequests Limit exceeded.`): the
 *   connection holds for its hold time (5 min by default), says so in yellow with the time it
 *   ends, calls nothing meanwhile, then one probe; the buffered alerts are all written once;
 * - Salesforce answering 503 for a minute: yellow `retrying (SERVER_UNAVAILABLE) at …` while
 *   records wait for a retry, red `failing (SERVER_UNAVAILABLE)` once an alert failed after its
 *   last retry (as `unavailable`), green once written again; behind a buffer the alert is
 *   handed back and written once after the outage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shown, type NodeStatus } from '../support/editor-status';
import { described, errorIn, once, OutsideSalesforce } from '../support/outside-salesforce';
import { alertOf, outcomesOf, results, sendAlerts } from '../support/salesforce-flow';
import { eventually } from '../support/wait';

/** The connection's hold time at its default (README: 5 min). */
const DEFAULT_HOLD_MS = 5 * 60_000;

const org = new OutsideSalesforce();
beforeAll(async () => {
  await org.start();
  await org.startNodeRed();
});
afterAll(() => org.dispose());

/** `hh:mm:ss` in a status, as the time today it names (local time, as Node-RED shows it). */
function timeIn(status: NodeStatus): number {
  const [h, m, s] = (/(\d\d):(\d\d):(\d\d)/.exec(status.text ?? '') ?? []).slice(1).map(Number);
  const at = new Date(status.at);
  at.setHours(h, m, s, 0);
  // A time before the status came is tomorrow's (a hold across midnight).
  return at.getTime() < status.at - 60_000 ? at.getTime() + 86_400_000 : at.getTime();
}

describe('the daily API allowance spent, at the default hold time, behind a buffer at its defaults', () => {
  it('holds 5 minutes saying so in yellow, calls nothing meanwhile, then probes once and writes every alert once', async () => {
    const prefix = await org.deployTab('clientCredentials', [{ name: 'cases', buffered: true }]);
    const out = `${prefix}.out.cases`;
    await sendAlerts(org.node, 'cases', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);

    const { apiAllowance } = (await fetch(`${org.sf.sandbox.url}/_sandbox/stats`).then((r) => r.json())) as { apiAllowance: number };
    await fetch(`${org.sf.sandbox.url}/_sandbox/api-usage`, { method: 'POST', body: JSON.stringify({ used: apiAllowance }) });
    const from = org.proxy.calls.length;
    const ids = Array.from({ length: 20 }, (_, i) => `${prefix}-spent-${i}`);
    await sendAlerts(org.node, 'cases', ids.map((id, i) => alertOf(id, `pump-${i}`)));

    const holding = await org.statuses.until(out, 'yellow API limit reached: holding until …', (s) => s.fill === 'yellow' && /API limit reached.*holding until \d\d:\d\d:\d\d/.test(s.text ?? ''));
    const refused = org.proxy.apiCalls(from).filter((c) => c.status === 403);
    expect(refused.map(errorIn)).toEqual([{ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' }]);
    const holdEnds = timeIn(holding);
    console.log(`[daily hold] first refusal ${new Date(refused[0].at).toISOString()}; status ${shown(holding)}; holds ${holdEnds - refused[0].at} ms`);
    expect(holdEnds - refused[0].at).toBeGreaterThan(DEFAULT_HOLD_MS - 5_000);
    expect(holdEnds - refused[0].at).toBeLessThan(DEFAULT_HOLD_MS + 5_000);

    // The rolling allowance comes back during the hold; the connection cannot know until it probes.
    await fetch(`${org.sf.sandbox.url}/_sandbox/api-usage`, { method: 'POST', body: JSON.stringify({ used: 0 }) });
    const seen = await outcomesOf(org.node, ids, DEFAULT_HOLD_MS + 120_000);
    const calls = org.proxy.apiCalls(from);
    console.log(`[daily hold] calls: ${calls.map((c) => `${new Date(c.at).toISOString().slice(11, 19)} ${described([c])[0]}`).join(', ')}`);
    // Nothing called while the hold lasted (the refused call aside), nothing lost, nothing twice.
    expect(described(calls.filter((c) => c.at > refused[0].at && c.at < holdEnds - 1_000))).toEqual([]);
    expect(seen.failed.filter((r) => ids.includes(r.alertId)).map((r) => r.error)).toEqual([]);
    expect((await results(org.node)).dead.filter((r) => ids.includes(r.alertId))).toEqual([]);
    expect(await org.copiesPerAlert('Case', ids)).toEqual(once(ids));
    // Written once the hold ended, promptly.
    const lastWritten = Math.max(...seen.written.filter((r) => ids.includes(r.alertId)).map((r) => r.at));
    expect(lastWritten).toBeGreaterThanOrEqual(holdEnds - 1_000);
    expect(lastWritten - holdEnds).toBeLessThan(60_000);
    // Never red for a hold: it is not a failure.
    expect(org.statuses.history(out).filter((s) => s.at >= refused[0].at && s.fill === 'red').map(shown)).toEqual([]);
    await org.statuses.until(out, 'green once written', (s) => s.fill === 'green');
  });
});

describe('Salesforce answering 503 for a minute', () => {
  afterAll(() => {
    org.proxy.unavailableUntil = 0;
  });

  it('is yellow while records wait for a retry, red once an alert failed after its last retry, green once written; a buffered alert is written once after', async () => {
    const prefix = await org.deployTab('clientCredentials', [{ name: 'cases' }, { name: 'queued', buffered: true }]);
    const out = `${prefix}.out.cases`;
    await sendAlerts(org.node, 'cases', [alertOf(`${prefix}-warm`)]);
    await outcomesOf(org.node, [`${prefix}-warm`]);

    const from = org.proxy.calls.length;
    const outageStart = Date.now();
    org.proxy.unavailableUntil = outageStart + 60_000;
    const id = `${prefix}-in-outage`;
    const queued = `${prefix}-queued-in-outage`;
    await sendAlerts(org.node, 'cases', [alertOf(id)]);
    await sendAlerts(org.node, 'queued', [alertOf(queued, 'pump-2')]);

    const retrying = await org.statuses.until(out, 'yellow retrying (SERVER_UNAVAILABLE) at …', (s) => s.fill === 'yellow' && /^retrying \(SERVER_UNAVAILABLE\) at \d\d:\d\d:\d\d/.test(s.text ?? ''));
    expect(timeIn(retrying)).toBeGreaterThan(retrying.at - 1_000);

    const seen = await outcomesOf(org.node, [id], 120_000);
    const failed = seen.failed.find((r) => r.alertId === id);
    const failedAt = failed?.at ?? Date.now();
    console.log(`[503 minute] ${id} failed ${failedAt - outageStart} ms into the outage as ${JSON.stringify(failed?.error)}; calls ${described(org.proxy.apiCalls(from)).join(', ')}`);
    expect(failed?.error?.code).toBe('unavailable');
    // Until it failed: yellow (retrying), never red.
    expect(org.statuses.history(out).filter((s) => s.at >= outageStart && s.at < failedAt && s.fill === 'red').map(shown)).toEqual([]);
    const failing = await org.statuses.until(out, 'red failing (SERVER_UNAVAILABLE)', (s) => s.fill === 'red');
    expect(failing.text).toMatch(/^failing \(SERVER_UNAVAILABLE\)/);

    // After the outage: a new alert is written and the status turns green; the queued one was handed back and is written once.
    await eventually('the outage over', () => (Date.now() > org.proxy.unavailableUntil ? true : undefined), 90_000, 500);
    const after = `${prefix}-after-outage`;
    await sendAlerts(org.node, 'cases', [alertOf(after)]);
    const later = await outcomesOf(org.node, [after], 60_000);
    expect(later.failed.filter((r) => r.alertId === after).map((r) => r.error)).toEqual([]);
    // The queued alert: each attempt whose retries ran out is reported on the failed output (as
    // `unavailable`) and handed back to the buffer, which delivers it again until it is written.
    const written = await eventually('the queued alert written', async () => ((await results(org.node)).written.some((r) => r.alertId === queued) ? results(org.node) : undefined), 180_000, 250);
    console.log(`[503 minute] the queued alert: ${written.failed.filter((r) => r.alertId === queued).length} attempt(s) reported failed, then written ${(written.written.find((r) => r.alertId === queued)?.at ?? 0) - outageStart} ms into the outage`);
    expect(written.failed.filter((r) => r.alertId === queued).map((r) => r.error?.code).filter((code) => code !== 'unavailable')).toEqual([]);
    expect(written.dead.filter((r) => r.alertId === queued)).toEqual([]);
    expect(await org.copiesPerAlert('Case', [after, queued])).toEqual(once([after, queued]));
    await org.statuses.until(out, 'green once written', (s) => s.fill === 'green');
  });
});
