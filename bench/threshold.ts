/**
 * iot-threshold: the pure engine over 100,000 keys (readings per second, bytes of state per key),
 * and the node inside Node-RED fed from a loop, beside Node-RED's core rbe node in deadband mode
 * on the same messages.
 */
import { ThresholdEngine } from '../nodes/threshold/engine';
import type { RuleConfig } from '../nodes/threshold/rules';
import { startRuntime, type BenchNode } from './embedded-runtime';
import { format, memoryInUse, rate, type Figure } from './measure';

const KEYS = 100_000;
const ENGINE_READINGS = 10_000_000;
const NODE_MESSAGES = 1_000_000;

/** Two severities with hysteresis and a 3-in-a-row confirmation: the pump example. */
const RULE: RuleConfig = {
  rule: 'above',
  measure: 'value',
  rateUnitMs: 60_000,
  hysteresis: 'explicit',
  deadband: 0,
  levels: [
    { severity: 'warning', value: 70, clear: 65 },
    { severity: 'critical', value: 90, clear: 85 },
  ],
  raise: { mode: 'count', count: 3 },
  clear: { mode: 'immediate' },
};

/**
 * Readings that wander: each key drifts around its own level between 40 and 100, so some keys
 * cross thresholds now and then and most do not, as real fleets do.
 */
function readings(count: number, keys: number): Float64Array {
  const values = new Float64Array(count);
  const level = new Float64Array(keys);
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  for (let k = 0; k < keys; k++) level[k] = 40 + random() * 60;
  for (let i = 0; i < count; i++) {
    const k = i % keys;
    level[k] += (random() - 0.5) * 2;
    values[i] = level[k];
  }
  return values;
}

function benchEngine(): Figure[] {
  const values = readings(ENGINE_READINGS, KEYS);
  let events = 0;
  const empty = memoryInUse();
  const keys = Array.from({ length: KEYS }, (_, i) => `device-${i}`);
  const withKeys = memoryInUse();
  const engine = new ThresholdEngine(RULE, 'bench', { alert: () => events++ });
  for (let k = 0; k < KEYS; k++) engine.read(keys[k], 50, 0);
  const full = memoryInUse();
  const bytesPerKey = (full - withKeys) / KEYS;
  const withKeyStrings = (full - empty) / KEYS;

  const run = (from: number) => {
    for (let i = 0; i < ENGINE_READINGS; i++) engine.read(keys[i % KEYS], values[i], from + i);
  };
  run(1); // warm-up: the same work once, so the measured run is optimised code
  events = 0;
  const perSecond = rate(ENGINE_READINGS, () => run(ENGINE_READINGS + 1));
  return [
    {
      name: `threshold engine: readings evaluated per second (${format(KEYS)} keys, 2 severities, hysteresis, 3-in-a-row)`,
      value: perSecond,
      unit: 'readings/s',
      goal: { op: '>=', value: 2_000_000 },
      note: `${format(events)} alert events in ${format(ENGINE_READINGS)} readings`,
    },
    {
      name: 'threshold engine: state held per key (heap and typed arrays)',
      value: bytesPerKey,
      unit: 'bytes/key',
      goal: { op: '<=', value: 300 },
      note: `${format(withKeyStrings)} bytes/key counting the key strings ("device-12345") too`,
    },
  ];
}

function messages(count: number): Array<{ topic: string; payload: number }> {
  const values = readings(count, KEYS);
  const out = new Array<{ topic: string; payload: number }>(count);
  for (let i = 0; i < count; i++) out[i] = { topic: `device-${i % KEYS}`, payload: values[i] };
  return out;
}

/** Messages per second that node takes, fed by receive() in a loop. */
function feed(node: BenchNode, batch: Array<{ topic: string; payload: number }>): number {
  return rate(batch.length, () => {
    for (const msg of batch) node.receive(msg);
  });
}

async function benchNodes(): Promise<Figure[]> {
  const flow = [
    { id: 'bench.tab', type: 'tab', label: 'bench' },
    {
      id: 'bench.threshold',
      type: 'iot-threshold',
      z: 'bench.tab',
      property: 'payload',
      propertyType: 'msg',
      keyPropertyType: 'device',
      rule: 'above',
      hysteresis: 'explicit',
      levels: [
        { severity: 'warning', value: '70', clear: '65' },
        { severity: 'critical', value: '90', clear: '85' },
      ],
      raiseMode: 'count',
      raiseValue: '3',
      clearMode: 'immediate',
      persist: true,
      outputs: 3,
      wires: [['bench.sink'], ['bench.sink'], ['bench.sink']],
    },
    { id: 'bench.rbe', type: 'rbe', z: 'bench.tab', func: 'deadband', gap: '5', start: '', inout: 'out', septopics: true, property: 'payload', topi: 'topic', wires: [['bench.sink']] },
    { id: 'bench.sink', type: 'junction', z: 'bench.tab', wires: [] },
  ];
  const runtime = await startRuntime(flow);
  try {
    const threshold = runtime.node('bench.threshold');
    const rbe = runtime.node('bench.rbe');
    // Warm both up on one set of messages, then measure each on its own fresh copy.
    feed(threshold, messages(200_000));
    feed(rbe, messages(200_000));
    const thresholdRate = feed(threshold, messages(NODE_MESSAGES));
    const rbeRate = feed(rbe, messages(NODE_MESSAGES));
    return [
      {
        name: `threshold node in Node-RED: messages per second (${format(KEYS)} keys, state saved)`,
        value: thresholdRate,
        unit: 'msg/s',
        goal: { op: '>=', value: 100_000 },
        note: `core rbe (deadband) on the same messages: ${format(rbeRate)} msg/s; ratio ${(thresholdRate / rbeRate).toFixed(2)}`,
      },
    ];
  } finally {
    await runtime.stop();
  }
}

export async function benchThreshold(): Promise<Figure[]> {
  return [...benchEngine(), ...(await benchNodes())];
}
