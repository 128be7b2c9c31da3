/**
 * The delivery protocol between sources (buffer, front doors) and settlers (nodes/shared/delivery.ts).
 */
import type { NodeAPI, NodeMessage } from 'node-red';
import { describe, expect, it } from 'vitest';
import { announceCapacity, deliveryOf, settleDelivery, type Outcome } from '../../nodes/shared/delivery';

function fakeRed(nodes: Record<string, unknown>): NodeAPI {
  return { nodes: { getNode: (id: string) => nodes[id] ?? null } } as unknown as NodeAPI;
}

describe('delivery tokens', () => {
  it('reads a token only when it has the contract shape', () => {
    expect(deliveryOf({ _delivery: { source: 'b1', id: 'd1' } })).toEqual({ source: 'b1', id: 'd1' });
    expect(deliveryOf({ _delivery: { source: 'b1', id: 'd1', last: true } })).toEqual({ source: 'b1', id: 'd1', last: true });
    expect(deliveryOf({ _delivery: { source: 'b1', id: 'd1', last: 'yes' } })).toEqual({ source: 'b1', id: 'd1' });
    expect(deliveryOf({})).toBeUndefined();
    expect(deliveryOf({ _delivery: 'b1' })).toBeUndefined();
    expect(deliveryOf({ _delivery: null })).toBeUndefined();
    expect(deliveryOf({ _delivery: { source: 'b1' } })).toBeUndefined();
    expect(deliveryOf({ _delivery: { buffer: 'b1', id: 'd1' } })).toBeUndefined();
  });

  it('settles at the source that handed the message on', () => {
    const settled: Array<[string, Outcome]> = [];
    const RED = fakeRed({ b1: { settleDelivery: (id: string, outcome: Outcome) => settled.push([id, outcome]) } });
    const msg: NodeMessage = { payload: 1, _delivery: { source: 'b1', id: 'd1' } };
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
    expect(settleDelivery(RED, { _delivery: { source: 'gone', id: 'd' } }, { ok: true })).toBe(false);
    expect(settleDelivery(RED, { _delivery: { source: 'other', id: 'd' } }, { ok: true })).toBe(false);
  });

  it('passes a sink’s capacity to a source that follows it, and only to one', () => {
    const announced: Array<[string, number]> = [];
    const RED = fakeRed({ b1: { settleDelivery: () => undefined, announceCapacity: (sink: string, n: number) => announced.push([sink, n]) }, b2: { settleDelivery: () => undefined } });
    expect(announceCapacity(RED, { _delivery: { source: 'b1', id: 'd1' } }, 'sink-1', 20_000)).toBe(true);
    expect(announceCapacity(RED, { _delivery: { source: 'b2', id: 'd1' } }, 'sink-1', 20_000)).toBe(false);
    expect(announceCapacity(RED, { payload: 1 }, 'sink-1', 20_000)).toBe(false);
    expect(announced).toEqual([['sink-1', 20_000]]);
  });
});
