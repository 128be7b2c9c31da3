/**
 * From the editor's properties (strings, as typed) to what the queue and the stores run with.
 * Kept apart from the adapter so that a unit test can check every conversion without Node-RED.
 */
import { isAbsolute, join } from 'node:path';
import { DEFAULT_PARSE_LIMITS, type ShapeLimits } from '../shared/json-limits';
import { SettingsReader, SIZE_UNITS_BYTES } from '../shared/settings';
import type { LocalStoreOptions } from './local-store';
import type { QueueOptions } from './queue';
import type { RedisStoreOptions } from './redis-store';

/** The buffer node's properties as saved in the flow. */
export interface BufferProperties {
  settingsVersion?: unknown;
  name?: string;
  backend?: string;
  dataDir?: string;
  fsyncWindow?: string | number;
  redisUrl?: string;
  stream?: string;
  group?: string;
  consumer?: string;
  claimIdle?: string | number;
  order?: string;
  keyProperty?: string;
  keyPropertyType?: string;
  maxInFlight?: string | number;
  rate?: string | number;
  batchSize?: string | number;
  batchWait?: string | number;
  ackMode?: string;
  ackTimeout?: string | number;
  maxAttempts?: string | number;
  retryDelay?: string | number;
  retryDelayMax?: string | number;
  maxMessages?: string | number;
  maxSize?: string | number;
  whenFull?: string;
  maxDepth?: string | number;
  maxKeys?: string | number;
  crashLimit?: string | number;
  /** "Pass each message on once stored": an output of its own, after the delivered one. */
  acceptedOutput?: boolean;
  catchErrors?: boolean;
}

export interface BufferCredentials {
  redisUsername?: string;
  redisPassword?: string;
}

/** Where the node runs: what the defaults are made of. */
export interface BufferContext {
  nodeId: string;
  userDir: string | undefined;
  hostname: string;
}

export interface BufferConfig {
  backend: 'local' | 'redis';
  queue: QueueOptions;
  /** What a message may hold, per property: deeper or larger is refused, never stored. */
  limits: ShapeLimits;
  /** Deaths in a row after which a message is set aside (0: never), and where they are counted. */
  crashLimit: number;
  crashFile?: string;
  local?: LocalStoreOptions;
  redis?: RedisStoreOptions;
}

const MB = SIZE_UNITS_BYTES.MB;
/** Redis entries read ahead with an automatic window: one read fetches this many at most. */
const AUTO_PREFETCH = 2_000;
const SEGMENT_MIN = MB;
const SEGMENT_MAX = 64 * MB;

export const DEFAULTS = {
  fsyncWindowMs: 5,
  batchWaitMs: 1000,
  ackTimeoutS: 30,
  maxAttempts: 5,
  retryDelayS: 1,
  retryDelayMaxS: 60,
  maxMessages: 1_000_000,
  maxSizeMb: 1024,
  claimIdleS: 60,
  crashLimit: 3,
} as const;

export function bufferConfig(p: BufferProperties, credentials: BufferCredentials, context: BufferContext): BufferConfig {
  const settings = new SettingsReader();
  const number = (value: string | number | undefined, fallback: number, field: string, min: number, max = Infinity, integer = true): number =>
    settings.number(value, fallback, field, { min, max, integer });
  const choice = <T extends string>(value: string | undefined, allowed: readonly T[], field: string): T => settings.choice(value, allowed, field);

  const backend = choice(p.backend, ['local', 'redis'] as const, 'backend');
  const maxBytes = backend === 'local' ? Math.round(number(p.maxSize, DEFAULTS.maxSizeMb, 'maximum size (MB)', 0, Infinity, false) * MB) : 0;
  const maxMessages = number(p.maxMessages, DEFAULTS.maxMessages, 'maximum messages', 0);
  const whenFull = choice(p.whenFull, ['refuse', 'drop-oldest'] as const, 'when full');
  const batchSize = number(p.batchSize, 1, 'batch size', 1, 100_000);
  const queue: QueueOptions = {
    order: choice(p.order, ['fifo', 'key'] as const, 'order'),
    // Empty: the editor's default, automatic (a node from before it has its 10 from migrations.ts).
    maxInFlight: isAuto(p.maxInFlight) || String(p.maxInFlight ?? '').trim() === '' ? 'auto' : number(p.maxInFlight, 0, 'maximum in flight', 1, 1_000_000),
    ratePerSecond: number(p.rate, 0, 'drain rate (messages per second)', 0, Infinity, false),
    batchSize,
    batchWaitMs: number(p.batchWait, DEFAULTS.batchWaitMs, 'batch wait (ms)', 0, 3_600_000),
    ackMode: choice(p.ackMode, ['settle', 'send'] as const, 'acknowledgement'),
    ackTimeoutMs: Math.round(number(p.ackTimeout, DEFAULTS.ackTimeoutS, 'acknowledgement timeout (s)', 0.001, 86_400, false) * 1000),
    maxAttempts: number(p.maxAttempts, DEFAULTS.maxAttempts, 'attempts', 0),
    retryDelayMs: Math.round(number(p.retryDelay, DEFAULTS.retryDelayS, 'retry delay (s)', 0, 86_400, false) * 1000),
    retryDelayMaxMs: Math.round(number(p.retryDelayMax, DEFAULTS.retryDelayMaxS, 'longest retry delay (s)', 0, 86_400, false) * 1000),
    // Redis applies the count cap itself (atomically for every instance sharing the stream).
    maxMessages: backend === 'local' ? maxMessages : 0,
    maxBytes,
    whenFull,
  };
  if (queue.retryDelayMaxMs < queue.retryDelayMs) queue.retryDelayMaxMs = queue.retryDelayMs;

  const limits: ShapeLimits = {
    maxDepth: number(p.maxDepth, DEFAULT_PARSE_LIMITS.maxDepth, 'deepest nesting', 1, 1_000),
    maxKeys: number(p.maxKeys, DEFAULT_PARSE_LIMITS.maxKeys, 'most keys and items', 1, 10_000_000),
  };
  const crashLimit = number(p.crashLimit, DEFAULTS.crashLimit, 'deaths before a message is set aside', 0, 1_000);
  const config: BufferConfig = { backend, queue, limits, crashLimit };
  if (backend === 'local') {
    const dir = dataFolder(p.dataDir, context, settings);
    config.local = {
      dir,
      fsyncWindowMs: number(p.fsyncWindow, DEFAULTS.fsyncWindowMs, 'fsync window (ms)', 0, 1000),
      segmentBytes: maxBytes > 0 ? Math.min(SEGMENT_MAX, Math.max(SEGMENT_MIN, Math.floor(maxBytes / 16))) : SEGMENT_MAX,
    };
    config.crashFile = join(dir, 'crashes.json');
  } else {
    const url = (p.redisUrl ?? '').trim();
    if (!/^rediss?:\/\//.test(url)) settings.problem(`the Redis URL must start with redis:// or rediss:// (got ${JSON.stringify(url)})`);
    else if (/^rediss?:\/\/[^/@]*:[^/@]+@/.test(url)) settings.problem('put the Redis password in the password field (kept in the credentials), not in the URL');
    config.redis = {
      url,
      username: credentials.redisUsername || undefined,
      password: credentials.redisPassword || undefined,
      stream: p.stream?.trim() || `iot-buffer:${context.nodeId}`,
      group: p.group?.trim() || 'iot-buffer',
      consumer: p.consumer?.trim() || `${context.hostname}:${context.nodeId}`,
      maxLength: maxMessages,
      whenFull,
      claimIdleMs: Math.round(number(p.claimIdle, DEFAULTS.claimIdleS, 'take-over time (s)', 0.1, 86_400, false) * 1000),
      prefetch: Math.max(queue.maxInFlight === 'auto' ? AUTO_PREFETCH : queue.maxInFlight, batchSize) + batchSize,
    };
    // A Redis consumer counts its own deaths, on the machine it runs on.
    if (context.userDir) config.crashFile = join(context.userDir, 'iot-buffer', `${safeName(context.nodeId)}.crashes.json`);
  }
  settings.check();
  return config;
}

function isAuto(value: string | number | undefined): boolean {
  return typeof value === 'string' && value.trim().toLowerCase() === 'auto';
}

/** The data folder: as configured (relative to the user directory), or <userDir>/iot-buffer/<id>. */
function dataFolder(configured: string | undefined, context: BufferContext, settings: SettingsReader): string {
  const value = configured?.trim() ?? '';
  if (value !== '' && isAbsolute(value)) return value;
  if (!context.userDir) {
    settings.problem('Node-RED has no user directory: set an absolute data folder');
    return '';
  }
  return value === '' ? join(context.userDir, 'iot-buffer', safeName(context.nodeId)) : join(context.userDir, value);
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}
