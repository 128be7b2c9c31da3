/**
 * The connection of iot-redis: its settings checked once, and one ioredis client (a single
 * Redis, a Redis Cluster, or a master found through Sentinel) shared by every node that keeps
 * shared state in it. Free of Node-RED.
 *
 * One client per config node: ioredis auto-pipelining gathers the commands that every node sends
 * in one event-loop turn into one write, so a thousand readings in a turn cost one round trip
 * per Redis node, not a thousand. Commands fail rather than hang while Redis is away (one retry,
 * a command timeout), so that the nodes answer "try again" instead of piling messages up.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisClient, RedisState, SharedRedis } from '../shared/redis-api';

export type RedisTopology = 'single' | 'cluster' | 'sentinel';

/** The node's properties as saved in the flow. */
export interface RedisProperties {
  name?: string;
  topology?: string;
  url?: string;
  nodes?: string;
  sentinels?: string;
  masterName?: string;
  tls?: boolean;
  prefix?: string;
  timeout?: string | number;
}

export interface RedisCredentials {
  username?: string;
  password?: string;
}

export interface RedisSettings {
  topology: RedisTopology;
  /** single: the server's URL (redis:// or rediss://). */
  url: string;
  /** cluster: seed nodes; sentinel: the sentinels. */
  nodes: Array<{ host: string; port: number }>;
  masterName: string;
  tls: boolean;
  /** Every key starts with it (several flows or fleets may share one Redis). */
  prefix: string;
  /** A command not answered within this is failed (ms). */
  commandTimeoutMs: number;
}

export const DEFAULT_PREFIX = 'iot';
const DEFAULT_TIMEOUT_S = 5;

export class RedisConfigError extends Error {}

function hostPorts(text: string | undefined, what: string, defaultPort: number, problems: string[]): Array<{ host: string; port: number }> {
  const list = (text ?? '').split(/[\s,]+/).filter((entry) => entry !== '');
  const out: Array<{ host: string; port: number }> = [];
  for (const entry of list) {
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
    const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
    if (!match || !Number.isInteger(port) || port < 1 || port > 65_535) {
      problems.push(`${what}: ${JSON.stringify(entry)} is not host:port`);
      continue;
    }
    out.push({ host: match[1].replace(/^\[|\]$/g, ''), port });
  }
  if (out.length === 0 && problems.length === 0) problems.push(`${what}: give at least one host:port`);
  return out;
}

/** Checks the properties as typed in the editor; throws a RedisConfigError naming every problem. */
export function redisSettings(p: RedisProperties): RedisSettings {
  const problems: string[] = [];
  const topology = (p.topology || 'single') as RedisTopology;
  if (!['single', 'cluster', 'sentinel'].includes(topology)) problems.push(`the topology must be single, cluster or sentinel (got ${JSON.stringify(p.topology)})`);
  const url = (p.url ?? '').trim();
  let nodes: Array<{ host: string; port: number }> = [];
  if (topology === 'single') {
    if (!/^rediss?:\/\/[^\s]+$/.test(url)) problems.push(`the URL must start with redis:// or rediss:// (got ${JSON.stringify(url)})`);
    else if (/^rediss?:\/\/[^/@]*:[^/@]+@/.test(url)) problems.push('put the password in the password field (kept in the credentials), not in the URL');
  } else if (topology === 'cluster') {
    nodes = hostPorts(p.nodes, 'cluster nodes', 6379, problems);
  } else if (topology === 'sentinel') {
    nodes = hostPorts(p.sentinels, 'sentinels', 26379, problems);
    if (!(p.masterName ?? '').trim()) problems.push('name the master the sentinels watch');
  }
  const prefix = (p.prefix ?? '').trim() || DEFAULT_PREFIX;
  // Braces would become a hash tag of their own and put every key of the prefix in one slot.
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) problems.push(`the key prefix may hold letters, digits and _ . : - (got ${JSON.stringify(prefix)})`);
  const timeoutS = p.timeout === undefined || p.timeout === '' ? DEFAULT_TIMEOUT_S : Number(p.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 600) problems.push(`the command timeout must be a number of seconds above 0 (got ${JSON.stringify(p.timeout)})`);
  if (problems.length > 0) throw new RedisConfigError(problems.join('; '));
  return {
    topology,
    url,
    nodes,
    masterName: (p.masterName ?? '').trim(),
    tls: p.tls === true || url.startsWith('rediss://'),
    prefix,
    commandTimeoutMs: Math.round(timeoutS * 1000),
  };
}

/** Where the client connects to, without credentials: for status lines and logs. */
export function describeTarget(settings: RedisSettings): string {
  if (settings.topology === 'single') return settings.url.replace(/^(rediss?:\/\/)[^@/]*@/, '$1');
  const list = settings.nodes.map((n) => `${n.host}:${n.port}`).join(', ');
  return settings.topology === 'cluster' ? `cluster ${list}` : `sentinel ${settings.masterName} at ${list}`;
}

/**
 * One ioredis client for the settings, connecting at once. Reconnects by itself (every 0.2 s
 * growing to 2 s); a command waits at most for one reconnection, then fails.
 */
export function openClient(settings: RedisSettings, credentials: RedisCredentials): RedisClient {
  const common: RedisOptions = {
    username: credentials.username || undefined,
    password: credentials.password || undefined,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    commandTimeout: settings.commandTimeoutMs,
    retryStrategy: (times: number) => Math.min(times * 200, 2_000),
    ...(settings.tls ? { tls: {} } : {}),
  };
  if (settings.topology === 'cluster') {
    const options: ClusterOptions = {
      enableAutoPipelining: true,
      redisOptions: common,
      clusterRetryStrategy: (times: number) => Math.min(times * 200, 2_000),
    };
    return new Cluster(settings.nodes, options) as unknown as RedisClient;
  }
  if (settings.topology === 'sentinel') {
    return new Redis({ ...common, sentinels: settings.nodes, name: settings.masterName, sentinelUsername: credentials.username || undefined, sentinelPassword: credentials.password || undefined }) as unknown as RedisClient;
  }
  return new Redis(settings.url, common) as unknown as RedisClient;
}

/** Follows a client's connection: ready, or down with the last error. */
export class ConnectionWatch {
  state: RedisState = 'connecting';
  problem: string | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(client: RedisClient, target: string) {
    client.on('ready', () => this.set('ready', undefined));
    // An error while connected is followed by 'close'; one while not connected means it is down.
    client.on('error', (err: Error) => {
      this.problem = `Redis at ${target}: ${err.message}`;
      if (this.state !== 'ready') this.set('down', this.problem);
    });
    client.on('close', () => {
      if (this.state === 'ready') this.set('down', this.problem ?? `lost the connection to Redis at ${target}`);
    });
    client.on('end', () => this.set('down', this.problem ?? `the connection to Redis at ${target} ended`));
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(state: RedisState, problem: string | undefined): void {
    this.state = state;
    this.problem = problem;
    this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}

const QUIT_WAIT_MS = 2_000;

/** The shared connection the nodes use, and how to end it. */
export function connect(settings: RedisSettings, credentials: RedisCredentials): { redis: SharedRedis; watch: ConnectionWatch; close(): Promise<void> } {
  const client = openClient(settings, credentials);
  const target = describeTarget(settings);
  const watch = new ConnectionWatch(client, target);
  const redis: SharedRedis = {
    client,
    prefix: settings.prefix,
    target,
    get state() {
      return watch.state;
    },
    get problem() {
      return watch.problem;
    },
    onChange: (listener) => watch.onChange(listener),
  };
  // A Redis that is away would keep QUIT waiting: the socket is closed after a moment.
  const close = () =>
    Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, QUIT_WAIT_MS).unref())]).then(() => client.disconnect());
  return { redis, watch, close };
}
