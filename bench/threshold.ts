/**
 * iot-threshold: the pure engine over 100,000 keys (readings per second, bytes of state per key)
 * with the plain rule, the forecast rule and the anomaly rule in the same run, and the node inside
 * Node-RED fed from a loop, beside Node-RED's core rbe node in deadband mode on the same messages;
 * and the same plain rule with its state shared through a local redis-server, beside local state.
 */
import { connect, redisSettings } from '../nodes/redis/connection';
import { ThresholdEngine, type AlertEvent } from '../nodes/threshold/engine';
import type { RuleConfig } from '../nodes/threshold/rules';
import { SharedThresholdState } from '../nodes/threshold/shared-state';
import { startRedis } from '../test/support/services';
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

const HOUR = 3_600_000;

/** A battery forecast with the node's defaults: below 3.3 V, warning within 48 h, critical within 6 h. */
const FORECAST: RuleConfig = {
  ...RULE,
  rule: 'forecast',
  hysteresis: 'none',
  levels: [
    { severity: 'warning', value: 48 * HOUR },
    { severity: 'critical', value: 6 * HOUR },
  ],
  raise: { mode: 'immediate' },
  forecast: { direction: 'below', target: 3.3, windowMs: 48 * HOUR, minReadings: 10, minConfidence: 0.9, clearMargin: 1 },
};

/** Unusual for the device: warning beyond 5 usual spreads, critical beyond 8, history and warm-up as the node's defaults. */
const ANOMALY: RuleConfig = {
  ...RULE,
  rule: 'anomaly',
  levels: [
    { severity: 'warning', value: 5, clear: 4 },
    { severity: 'critical', value: 8, clear: 6 },
  ],
  raise: { mode: 'immediate' },
  anomaly: { history: 100, warmup: 30, side: 'both', minDeviation: 0 },
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

/** Batteries report every 15 minutes, as in `npm run evaluate:forecast`. */
const BATTERY_INTERVAL_MS = 15 * 60_000;

/**
 * Batteries: each key its own voltage, losing between 0 and 4 mV an hour with 20 mV of noise,
 * a reading every 15 minutes per key, some of them crossing within the levels' lead times.
 */
function batteries(count: number, keys: number): Float64Array {
  const values = new Float64Array(count);
  const start = new Float64Array(keys);
  const drain = new Float64Array(keys);
  let seed = 11;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
  for (let k = 0; k < keys; k++) {
    start[k] = 3.35 + random() * 0.3;
    drain[k] = (random() * 0.004 * BATTERY_INTERVAL_MS) / HOUR;
  }
  for (let i = 0; i < count; i++) {
    const k = i % keys;
    values[i] = start[k] - drain[k] * Math.floor(i / keys) + (random() - 0.5) * 0.07;
  }
  return values;
}

/**
 * One engine over KEYS keys: readings per second (timers ticked as time goes) and bytes of state
 * per key. Each key reads every `intervalMs` (forecasts go by the readings' own times).
 */
function benchRule(label: string, rule: RuleConfig, warmup: Float64Array, values: Float64Array, intervalMs: number): Figure[] {
  let events = 0;
  const empty = memoryInUse();
  const keys = Array.from({ length: KEYS }, (_, i) => `device-${i}`);
  const withKeys = memoryInUse();
  const engine = new ThresholdEngine(rule, 'bench', { alert: () => events++ });
  for (let k = 0; k < KEYS; k++) engine.read(keys[k], warmup[k], 0);
  const full = memoryInUse();
  const bytesPerKey = (full - withKeys) / KEYS;
  const withKeyStrings = (full - empty) / KEYS;

  const step = intervalMs / KEYS;
  const run = (readings: Float64Array, from: number) => {
    for (let i = 0; i < ENGINE_READINGS; i++) {
      const at = from + i * step;
      if ((i & 1023) === 0) engine.tick(at);
      engine.read(keys[i % KEYS], readings[i], at, at);
    }
  };
  run(warmup, 1); // warm-up: the same work once before, so the measured run is optimised code
  events = 0;
  const perSecond = rate(ENGINE_READINGS, () => run(values, 1 + ENGINE_READINGS * step));
  return [
    {
      name: `${label}: readings evaluated per second (${format(KEYS)} keys)`,
      value: perSecond,
      unit: 'readings/s',
      goal: { op: '>=', value: 2_000_000 },
      note: `${format(events)} alert events in ${format(ENGINE_READINGS)} readings`,
    },
    {
      name: `${label}: state held per key (heap and typed arrays)`,
      value: bytesPerKey,
      unit: 'bytes/key',
      goal: { op: '<=', value: 300 },
      note: `${format(withKeyStrings)} bytes/key counting the key strings ("device-12345") too`,
    },
  ];
}

function benchEngine(): Figure[] {
  const wandering = readings(ENGINE_READINGS, KEYS);
  const plain = benchRule('threshold engine, plain rule (2 severities, hysteresis, 3-in-a-row)', RULE, wandering, wandering, KEYS);
  const anomaly = benchRule('threshold engine, anomaly rule (2 severities, hysteresis, history 100, warm-up 30)', ANOMALY, wandering, wandering, KEYS);
  // Fifty hours of a fleet's batteries: the first 25 for the warm-up, the next 25 measured.
  const days = batteries(2 * ENGINE_READINGS, KEYS);
  const forecast = benchRule(
    'threshold engine, forecast rule (battery below 3.3 V within 48 h / 6 h, trend over 48 h, a reading every 15 min per key)',
    FORECAST,
    days.subarray(0, ENGINE_READINGS),
    days.subarray(ENGINE_READINGS),
    BATTERY_INTERVAL_MS,
  );
  return [...plain, ...forecast, ...anomaly];
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

const SHARED_KEYS = 10_000;
const SHARED_READINGS = 200_000;
/** Readings in flight at once (different keys), as many devices' messages arriving together. */
const SHARED_IN_FLIGHT = 1_000;

/**
 * The plain rule on one instance with its state in a local redis-server (appendonly yes), each
 * device staying with this instance: readings per second and Redis commands per reading, beside
 * the same engine with local state on the same readings.
 */
async function benchSharedState(): Promise<Figure[]> {
  const redis = await startRedis();
  const connection = connect(redisSettings({ url: redis.url }), {});
  try {
    const pending: AlertEvent[] = [];
    const engine = new ThresholdEngine(RULE, 'bench', { alert: (event) => pending.push(event) }, { localTimers: false });
    const shared = new SharedThresholdState(connection.redis, 'bench', engine, pending);
    const keys = Array.from({ length: SHARED_KEYS }, (_, i) => `device-${i}`);
    const values = readings(2 * SHARED_READINGS, SHARED_KEYS);
    const run = async (from: number) => {
      for (let i = from; i < from + SHARED_READINGS; i += SHARED_IN_FLIGHT) {
        const batch: Array<Promise<unknown>> = [];
        for (let j = i; j < i + SHARED_IN_FLIGHT; j++) batch.push(shared.update(keys[j % SHARED_KEYS], j, () => engine.read(keys[j % SHARED_KEYS], values[j], j), () => undefined));
        await Promise.all(batch);
      }
    };
    await run(0); // warm-up: every key stored once, the code optimised
    const trips = shared.roundTrips;
    const started = process.hrtime.bigint();
    await run(SHARED_READINGS);
    const perSecond = SHARED_READINGS / (Number(process.hrtime.bigint() - started) / 1e9);
    const local = new ThresholdEngine(RULE, 'bench', { alert: () => undefined });
    const localRate = rate(2 * SHARED_READINGS, () => {
      for (let j = 0; j < 2 * SHARED_READINGS; j++) local.read(keys[j % SHARED_KEYS], values[j], j);
    });
    return [
      {
        name: `threshold engine, plain rule, state shared in Redis: readings per second on one instance (${format(SHARED_KEYS)} keys, ${format(SHARED_IN_FLIGHT)} in flight)`,
        value: perSecond,
        unit: 'readings/s',
        goal: { op: '>=', value: 30_000 },
        note: `local state on the same readings: ${format(localRate)} readings/s`,
      },
      {
        name: 'threshold engine, state shared in Redis: Redis commands per reading (a device staying with one instance)',
        value: (shared.roundTrips - trips) / SHARED_READINGS,
        unit: 'commands/reading',
        goal: { op: '<=', value: 1 },
        note: 'one Lua script (EVALSHA) per reading; ioredis sends those of one moment in one write',
      },
    ];
  } finally {
    await connection.close();
    await redis.dispose();
  }
}

export async function benchThreshold(): Promise<Figure[]> {
  return [...benchEngine(), ...(await benchNodes()), ...(await benchSharedState())];
}
