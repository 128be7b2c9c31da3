/**
 * iot-buffer in a real Node-RED killed with SIGKILL: 100,000 messages are pushed over HTTP (a
 * batch is answered 202 only once the buffer stored all of it), delivered to a file sink that
 * acknowledges through Complete and Catch nodes, and Node-RED is killed three times at random
 * points: once while messages are still being pushed and delivered, twice in the middle of
 * delivery. After each restart the buffer goes on. In the end every accepted message is in the
 * file, and each crash caused at most as many duplicates as the in-flight window.
 *
 * Three kills on one stream of 100,000 messages prove the point within the time this suite may
 * take; the kill points are random and printed, so a failure can be replayed.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferEndpoints, bufferStats, deployBufferFlow, fileSink, pushReadings, type FlowNode } from '../support/buffer-flow';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually, sleep } from '../support/wait';

const MESSAGES = 100_000;
const BATCH = 2_000;
const IN_FLIGHT = 100;
const KILLS_IN_DELIVERY = 2;

const flow: FlowNode[] = [
  { id: 'crash.tab', type: 'tab', label: 'buffer crash' },
  ...bufferEndpoints('crash', 'crash.buffer'),
  {
    id: 'crash.buffer',
    type: 'iot-buffer',
    z: 'crash.tab',
    name: 'durable',
    backend: 'local',
    fsyncWindow: '5',
    order: 'fifo',
    maxInFlight: String(IN_FLIGHT),
    ackTimeout: '30',
    maxAttempts: '0',
    maxMessages: '0',
    maxSize: '0',
    wires: [['crash.line'], [], ['crash.answer'], ['crash.refused']],
  },
  ...fileSink('crash', 'crash.buffer', '`${msg.payload.id} ${msg.payload.attempt}`'),
];

const work = mkdtempSync(join(tmpdir(), 'iot-buffer-crash-'));
const deliveredFile = join(work, 'delivered.txt');
const running: NodeRedProcess[] = [];
afterAll(async () => {
  for (const node of running) await node.dispose();
  rmSync(work, { recursive: true, force: true });
});

async function start(dataDir?: string): Promise<NodeRedProcess> {
  const node = await NodeRedProcess.start({ dataDir, env: { DELIVERED_FILE: deliveredFile } });
  running.push(node);
  return node;
}

/** Lines fully written to the sink's file, as "id attempt". */
function deliveredLines(): string[] {
  if (!existsSync(deliveredFile)) return [];
  const text = readFileSync(deliveredFile, 'utf8');
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '');
}

const randomBetween = (low: number, high: number) => low + Math.random() * (high - low);

describe('iot-buffer across kill -9', () => {
  it('delivers every accepted message at least once, with no more duplicates per crash than the in-flight window', async () => {
    let node = await start();
    await deployBufferFlow(node, flow);

    const accepted = new Set<number>();
    /** Sizes of the delivered file at each kill: the boundaries between runs. */
    const boundaries: number[] = [];
    const killPoints: string[] = [];
    let attempt = 0;

    const crashAndRestart = async (what: string) => {
      killPoints.push(`${what} (${deliveredLines().length} lines delivered, ${accepted.size} accepted)`);
      await node.crash();
      boundaries.push(existsSync(deliveredFile) ? statSync(deliveredFile).size : 0);
      node = await start(node.dataDir);
    };

    // Push every batch until it is answered 202; kill once at a random batch while pushing.
    const killDuringPush = Math.floor(randomBetween(5, MESSAGES / BATCH - 5));
    for (let first = 0; first < MESSAGES; first += BATCH) {
      const ids = Array.from({ length: BATCH }, (_, i) => first + i);
      for (;;) {
        attempt++;
        const pushing = pushReadings(
          node,
          ids.map((id) => ({ id, attempt })),
        );
        if (first / BATCH === killDuringPush && boundaries.length === 0) {
          await sleep(randomBetween(0, 40));
          await crashAndRestart(`during the push of batch ${first / BATCH}`);
        }
        if ((await pushing) === 202) {
          ids.forEach((id) => accepted.add(id));
          break;
        }
      }
    }

    // Kill in the middle of delivery, at random points, twice.
    for (let k = 0; k < KILLS_IN_DELIVERY; k++) {
      const target = deliveredLines().length + randomBetween(0.1, 0.5) * (MESSAGES - deliveredLines().length);
      await eventually('delivery under way', () => (deliveredLines().length >= target ? true : undefined), 120_000, 20);
      await crashAndRestart(`in delivery, kill ${k + 1}`);
    }

    await eventually('every accepted message delivered', () => {
      const ids = new Set(deliveredLines().map((l) => Number(l.split(' ')[0])));
      return [...accepted].every((id) => ids.has(id)) ? true : undefined;
    }, 180_000, 250);
    await eventually('an empty queue', async () => {
      const s = await bufferStats(node);
      return s.depth === 0 && s.inFlight === 0 ? true : undefined;
    }, 30_000);

    // Duplicates: a message (id and push attempt) delivered again after a crash.
    const text = readFileSync(deliveredFile, 'utf8');
    const runs: string[][] = [];
    let from = 0;
    for (const to of [...boundaries, text.length]) {
      runs.push(text.slice(from, to).split('\n').filter((l) => l !== ''));
      from = to;
    }
    const seen = new Set<string>();
    const duplicatesPerRun = runs.map((lines) => {
      let duplicates = 0;
      const inRun = new Set<string>();
      for (const line of lines) {
        if (seen.has(line) || inRun.has(line)) duplicates++;
        inRun.add(line);
      }
      inRun.forEach((l) => seen.add(l));
      return duplicates;
    });
    const report = `kills: ${killPoints.join('; ')}; duplicates per run: ${duplicatesPerRun.join(', ')}`;
    console.log(`[buffer crash] ${report}`);
    expect(accepted.size, report).toBe(MESSAGES);
    expect(runs.length, report).toBe(boundaries.length + 1);
    expect(duplicatesPerRun[0], report).toBe(0);
    for (const duplicates of duplicatesPerRun) expect(duplicates, report).toBeLessThanOrEqual(IN_FLIGHT);
  });
});
