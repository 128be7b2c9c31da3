/**
 * The delivery protocol between sources (buffer, front doors) and settlers (nodes/shared/delivery.ts),
 * and the settlement every rejection makes (nodes/shared/coded-error.ts).
 */
import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { describe, expect, it } from 'vitest';
import { isTransient, reject } from '../../nodes/shared/coded-error';
import { announceCapacity, deliveryOf, settleDelivery, settleIfReturned, type Outcome } from '../../nodes/shared/delivery';

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

  it('settles a source’s own delivery wired back into it: done from a Complete node, again or for good from a Catch node', () => {
    const settled: Array<[string, Outcome]> = [];
    const source = { id: 's1', settleDelivery: (id: string, outcome: Outcome) => settled.push([id, outcome]) };
    expect(settleIfReturned(source, { _delivery: { source: 's1', id: 'd1' } })).toBe(true);
    expect(settleIfReturned(source, { _delivery: { source: 's1', id: 'd2' }, error: { message: 'Error: boom', source: { type: 'function', name: 'decode' } } })).toBe(true);
    expect(settleIfReturned(source, { _delivery: { source: 's1', id: 'd3' }, error: { message: 'bad' }, retry: false })).toBe(true);
    expect(settleIfReturned(source, { _delivery: { source: 'other', id: 'd4' } })).toBe(false);
    expect(settleIfReturned(source, { payload: 1 })).toBe(false);
    expect(settled).toEqual([
      ['d1', { ok: true }],
      ['d2', { ok: false, reason: 'function "decode": boom', retry: true, retryAfterMs: undefined }],
      ['d3', { ok: false, reason: 'bad', retry: false, retryAfterMs: undefined }],
    ]);
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

describe('a rejection settles the delivery the message carries', () => {
  const node = { id: 'auth' } as Node;
  const rejectWith = (code: string) => {
    const settled: Array<[string, Outcome]> = [];
    const RED = fakeRed({ b1: { settleDelivery: (id: string, outcome: Outcome) => settled.push([id, outcome]) } });
    const sent: Array<Array<NodeMessage | null>> = [];
    let doneWith: Error | undefined | null = null;
    const msg: NodeMessage = { payload: 1, _delivery: { source: 'b1', id: 'd1' } };
    reject(node, msg, code, 'why', (out) => sent.push(out), (err) => (doneWith = err), { outputs: 2, catchErrors: false, RED });
    return { settled, sent, doneWith, msg };
  };

  it('for good (retry: false) when the message itself is at fault', () => {
    const { settled, sent, doneWith, msg } = rejectWith('too_deep');
    expect(settled).toEqual([['d1', { ok: false, retry: false, code: 'too_deep', reason: 'too_deep: why' }]]);
    expect(sent).toEqual([[null, msg]]);
    expect(msg.error).toEqual({ code: 'too_deep', message: 'why', node: 'auth' });
    expect(doneWith).toBeUndefined();
  });

  it.each(['rate_limited', 'registry_unavailable', 'internal', 'disk_full', 'queue_full'])('to be sent again (retry: true) for %s', (code) => {
    expect(rejectWith(code).settled).toEqual([['d1', { ok: false, retry: true, code, reason: `${code}: why` }]]);
  });

  it('once only, when the node settled it with an outcome of its own first (a sink’s retry-after)', () => {
    const settled: Array<[string, Outcome]> = [];
    const RED = fakeRed({ b1: { settleDelivery: (id: string, outcome: Outcome) => settled.push([id, outcome]) } });
    const msg: NodeMessage = { payload: 1, _delivery: { source: 'b1', id: 'd1' } };
    const own: Outcome = { ok: false, retry: true, retryAfterMs: 30_000, reason: 'the store said 503' };
    settleDelivery(RED, msg, own);
    reject(node, msg, 'write_failed', 'why', () => undefined, () => undefined, { outputs: 2, catchErrors: false, RED });
    expect(settled).toEqual([['d1', own]]);
  });

  it('and nothing when the message carries no delivery', () => {
    const RED = fakeRed({});
    const msg: NodeMessage = { payload: 1 };
    expect(() => reject(node, msg, 'malformed', 'why', () => undefined, () => undefined, { outputs: 1, catchErrors: false, RED })).not.toThrow();
    expect(isTransient('malformed')).toBe(false);
  });
});
