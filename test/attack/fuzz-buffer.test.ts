/**
 * iot-buffer fuzzed: 10,000 hostile messages (seeded) into a local queue as the pattern flows use
 * it, with Catch and Complete nodes scoped to it: no crash, no unhandled rejection, every message
 * done once (stored, or refused with a code its help lists), nothing polluted. Among them: control
 * commands of every type, forged and malformed delivery tokens, retry flags, and messages no store
 * can hold (cycles, functions, symbols, BigInts, over a megabyte).
 */
import { expect, it } from 'vitest';
import bufferNode from '../../nodes/buffer/buffer';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems, readingMessage, type FuzzOptions } from '../support/fuzz';

fuzzRuntime('buffer');

const queue: Omit<FuzzOptions, 'count' | 'seed' | 'message'> = {
  modules: [bufferNode],
  flow: [
    { id: 'buf', type: 'iot-buffer', name: 'readings', wires: [['delivered'], ['dead'], ['control'], ['refused']] },
    { id: 'delivered', type: 'helper' },
    { id: 'dead', type: 'helper' },
    { id: 'control', type: 'helper' },
    { id: 'refused', type: 'helper' },
  ],
  under: 'buf',
  outputs: ['delivered', 'dead', 'control'],
  errorOutputs: ['refused'],
  codes: ['queue_full', 'too_large', 'overloaded', 'disk_full', 'no_permission', 'io_error', 'store_locked', 'backend_unavailable', 'not_serializable', 'too_deep', 'too_many_keys', 'bad_control', 'invalid_config'],
};
const each = (messages: Array<Record<string, unknown>>) => fuzzNode({ ...queue, count: messages.length, seed: 0, message: (_h, n) => messages[n] });

it('takes 10,000 hostile messages: nothing crashes, every message is done once, every refusal is coded', async () => {
  const report = await fuzzNode({
    ...queue,
    count: 10_000,
    seed: 1203,
    message: (h) => {
      const msg = readingMessage(h);
      if (h.chance(0.02)) msg.control = h.chance(0.5) ? h.pick(['pause', 'resume', 'status', 'PURGE', 'stop', '', 'status ']) : h.value();
      if (h.chance(0.03)) msg._delivery = h.chance(0.5) ? { source: h.pick(['buf', 'other-buffer', '__proto__']), id: h.chance(0.5) ? h.int(0, 20_000) : h.value(), ...(h.chance(0.3) ? { last: h.value() } : {}) } : h.value();
      if (h.chance(0.02)) msg.retry = h.value();
      if (h.chance(0.02)) msg.retryAfter = h.value();
      if (h.chance(0.01)) msg.error = h.value();
      return msg;
    },
  });
  console.log(`fuzz buffer: ${JSON.stringify({ sendMs: report.sendMs, settleMs: report.settleMs, codes: report.codes, outputs: report.outputs, generic: report.genericMessages })}`);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.accounted).toBe(10_000);
  expect(report.codes.not_serializable).toBeGreaterThan(0);
});

it('stores a message whose topic is 70,000 characters long, or refuses it as too_large, and stores the next (bug: first on a fresh store, never done; later, internal "out of range")', async () => {
  const report = await each([{ payload: { temperature: 21.5 }, topic: 'x'.repeat(70_000) }, { payload: { temperature: 22.5 }, topic: 'pump-1' }]);
  expect(problems(report)).toEqual(NO_PROBLEMS);
});

it('refuses a msg.control holding a cycle or a BigInt with bad_control (bug: internal)', async () => {
  const control: Record<string, unknown> = { command: 'pause' };
  control.self = control;
  const report = await each([{ payload: 1, control }, { payload: 2, control: 5n }]);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.codes).toEqual({ bad_control: 2 });
});
