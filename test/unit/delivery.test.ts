/**
 * The delivery protocol between the buffer and the sinks (nodes/shared/delivery.ts).
 */
import type { NodeAPI, NodeMessage } from 'node-red';
import { describe, expect, it } from 'vitest';
import { deliveryOf, settleDelivery, type Outcome } from '../../nodes/shared/delivery';

function fakeRed(nodes: Record<string, unknown>): NodeAPI {
  return { nodes: { getNode: (id: string) => nodes[id] ?? null } } as unknown as NodeAPI;
}

describe('delivery tokens', () => {
  it('reads a token only when it has the contract shape', () => {
    expect(deliveryOf({ _delivery: { buffer: 'b1', id: 'd1' } })).toEqual({ buffer: 'b1', id: 'd1' });
    expect(deliveryOf({})).toBeUndefined();
    expect(deliveryOf({ _delivery: 'b1' })).toBeUndefined();
    expect(deliveryOf({ _delivery: { buffer: 'b1' } })).toBeUndefined();
  });

  it('settles at the buffer that delivered the message', () => {
    const settled: Array<[string, Outcome]> = [];
    const RED = fakeRed({ b1: { settleDelivery: (id: string, outcome: Outcome) => settled.push([id, outcome]) } });
    const msg: NodeMessage = { payload: 1, _delivery: { buffer: 'b1', id: 'd1' } };
    expect(settleDelivery(RED, msg, { ok: true })).toBe(true);
    expect(settleDelivery(RED, msg, { ok: false, reason: 'rejected', retry: false })).toBe(true);
    expect(settled).toEqual([
      ['d1', { ok: true }],
      ['d1', { ok: false, reason: 'rejected', retry: false }],
    ]);
  });

  it('says so when there is nothing to settle', () => {
    const RED = fakeRed({ other: { id: 'other' } });
    expect(settleDelivery(RED, { payload: 1 }, { ok: true })).toBe(false);
    expect(settleDelivery(RED, { _delivery: { buffer: 'gone', id: 'd' } }, { ok: true })).toBe(false);
    expect(settleDelivery(RED, { _delivery: { buffer: 'other', id: 'd' } }, { ok: true })).toBe(false);
  });
});
