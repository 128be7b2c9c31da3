/**
 * `npm start` killed with SIGKILL twenty times while its managed victoria-metrics holds fresh
 * points in memory: every start comes up (the leftover store is stopped with SIGTERM and waited
 * for until every thread of it has exited, so its data lock is free: no "cannot acquire lock on
 * flock.lock"), and every point the store had shown before each kill is still there at the end.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NodeRedProcess } from '../support/node-red-process';
import { exportSeries, pointsNow, writeAndReadBack } from '../support/services';
import { eventually } from '../support/wait';

const KILLS = 20;
const PER_ROUND = 500;

let first: NodeRedProcess | undefined;
let node: NodeRedProcess | undefined;
afterAll(async () => {
  await node?.dispose();
  // The first process owns the data folder: its dispose removes it.
  await first?.dispose();
});

describe('npm start killed again and again', () => {
  it(`keeps every point the store showed, over ${KILLS} kills, and starts every time`, async () => {
    first = await NodeRedProcess.start();
    node = first;
    const dataDir = first.dataDir;
    const from = Date.now() - 24 * 3_600_000;
    expect((await fetch(`${node.timeSeriesUrl}/write?db=iot&precision=ms`, { method: 'POST', body: `crash_probe,device=probe v=-1 ${from}` })).status).toBe(204);
    await exportSeries({ url: node.timeSeriesUrl }, 'crash_probe_v', 1);
    let expected = 1;
    const lost: string[] = [];
    for (let kill = 1; kill <= KILLS; kill++) {
      await writeAndReadBack({ url: node.timeSeriesUrl }, from + expected * 10, PER_ROUND, expected + PER_ROUND);
      expected += PER_ROUND;
      await node.crash();
      node = await NodeRedProcess.start({ dataDir });
      let seen = 0;
      await eventually('the points after the restart', async () => ((seen = await pointsNow({ url: node!.timeSeriesUrl }, 'crash_probe_v')) >= expected ? true : undefined), 10_000).catch(() => undefined);
      if (seen !== expected) {
        lost.push(`after kill ${kill}: ${seen} of ${expected} points`);
        // Go on from what is there, to count every kill that loses points.
        expected = seen;
      }
    }
    expect(lost).toEqual([]);
    expect(await node.stop()).toBe(0);
  });
});
