/**
 * A node's saved state (nodes/shared/node-state.ts) as its status shows it: a write that fails is
 * reported once and kept as the problem, and a later snapshot that is written clears it (the
 * node's status turns from yellow "state not saved" back to green).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeState } from '../../nodes/shared/node-state';
import { eventually } from '../support/wait';

let userDir: string;
beforeEach(() => {
  userDir = mkdtempSync(join(tmpdir(), 'iot-node-state-'));
});
afterEach(() => {
  rmSync(userDir, { recursive: true, force: true });
});

describe('NodeState', () => {
  it('keeps a failed snapshot as its problem until a later snapshot is written, then says it recovered', async () => {
    const failures: string[] = [];
    let recovered = 0;
    let count = 0;
    const { state } = NodeState.open<{ count: number }, never>(userDir, {
      name: 'node-1',
      current: () => ({ count }),
      onFailure: (message) => failures.push(message),
      onRecovered: () => recovered++,
      snapshotEveryMs: 20,
    });
    // A folder where the snapshot's temporary file goes: every write fails (even for root).
    const blocker = join(userDir, 'iot-state', 'node-1.json.tmp');
    mkdirSync(blocker);
    count = 1;
    state.changed();
    await eventually('the failed write', () => state.problem, 3_000);
    count = 2;
    state.changed();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(failures).toHaveLength(1);
    expect(recovered).toBe(0);
    rmSync(blocker, { recursive: true });
    count = 3;
    state.changed();
    await eventually('the recovery', () => (recovered > 0 ? true : undefined), 3_000);
    expect(state.problem).toBeUndefined();
    expect(recovered).toBe(1);
    await state.close(false);
  });
});
