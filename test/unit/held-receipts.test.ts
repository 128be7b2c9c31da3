/**
 * Receipts held by a front door until what it handed on is settled (nodes/shared/held-receipts.ts).
 */
import { describe, expect, it } from 'vitest';
import type { Outcome } from '../../nodes/shared/delivery';
import { combineOutcomes, HeldReceipts } from '../../nodes/shared/held-receipts';

const OK: Outcome = { ok: true };
const AGAIN: Outcome = { ok: false, retry: true, reason: 'disk_full: no space left', code: 'disk_full' };
const NEVER: Outcome = { ok: false, retry: false, reason: 'too_deep: the value nests more than 32 levels deep', code: 'too_deep' };

function holder(withinMs = 30_000) {
  const answers: Array<[string, Outcome]> = [];
  const receipts = new HeldReceipts('r1.', withinMs);
  const hold = (name: string, parts = 1, now = 0) => receipts.hold(parts, (o) => answers.push([name, o]), now);
  return { receipts, answers, hold };
}

describe('held receipts', () => {
  it('answers a receipt once its delivery is settled, with that outcome, and only once', () => {
    const { receipts, answers, hold } = holder();
    const [a] = hold('a');
    const [b] = hold('b');
    expect(receipts.waiting).toBe(2);
    expect(receipts.settle(b, AGAIN)).toBe(true);
    expect(receipts.settle(b, OK)).toBe(false);
    expect(receipts.settle(a, OK)).toBe(true);
    expect(answers).toEqual([
      ['b', AGAIN],
      ['a', OK],
    ]);
    expect(receipts.waiting).toBe(0);
  });

  it('gives every holder its own ids, so a redeployed node never takes its predecessor’s settlements', () => {
    const first = new HeldReceipts('x1.', 1000).hold(2, () => undefined, 0);
    const second = new HeldReceipts('x2.', 1000).hold(2, () => undefined, 0);
    expect(new Set([...first, ...second]).size).toBe(4);
    expect(new HeldReceipts('x2.', 1000).settle(first[0], OK)).toBe(false);
  });

  it('answers a batch when the last of its parts is settled: any "again" wins, else any part taken', () => {
    const { receipts, answers, hold } = holder();
    const taken = hold('taken', 3);
    const again = hold('again', 3);
    const refused = hold('refused', 2);
    for (const id of taken) receipts.settle(id, id === taken[1] ? NEVER : OK);
    receipts.settle(again[0], OK);
    receipts.settle(again[1], AGAIN);
    expect(answers.map(([name]) => name)).toEqual(['taken']);
    receipts.settle(again[2], OK);
    for (const id of refused) receipts.settle(id, NEVER);
    expect(answers).toEqual([
      ['taken', OK],
      ['again', AGAIN],
      ['refused', NEVER],
    ]);
  });

  it('answers "not settled, again" when the time is up, oldest first, and ignores later settlements', () => {
    const { receipts, answers, hold } = holder(30_000);
    const [early] = hold('early', 1, 1_000);
    hold('late', 1, 20_000);
    expect(receipts.nextDeadline()).toBe(31_000);
    expect(receipts.expire(30_999)).toBe(0);
    expect(receipts.expire(31_000)).toBe(1);
    expect(answers).toEqual([['early', { ok: false, retry: true, code: 'not_settled', reason: 'not settled within 30 s' }]]);
    expect(receipts.settle(early, OK)).toBe(false);
    expect(receipts.nextDeadline()).toBe(50_000);
    receipts.releaseAll(AGAIN);
    expect(answers[1]).toEqual(['late', AGAIN]);
    expect(receipts.nextDeadline()).toBeUndefined();
  });

  it.each<[string, Outcome[], Outcome]>([
    ['nothing to wait for', [], OK],
    ['all taken', [OK, OK], OK],
    ['one again', [OK, AGAIN, NEVER], AGAIN],
    ['some refused for good, some taken', [NEVER, OK], OK],
    ['all refused for good', [NEVER, NEVER], NEVER],
  ])('combines the outcomes of a batch: %s', (_name, outcomes, expected) => {
    expect(combineOutcomes(outcomes)).toEqual(expected);
  });
});
