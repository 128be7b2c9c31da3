/**
 * The contract between iot-redis (one connection to a Redis, a Redis Cluster or a master behind
 * Sentinel) and the nodes that keep state there when they share it between Node-RED instances
 * (today iot-device-auth: its replay cache and rate limits).
 *
 * Keys: `<prefix>:{<tag>}:<what>:...`. The part in braces is the hash tag: a Redis Cluster puts
 * every key with the same tag in one slot, so that one Lua script may read and change all of
 * them. Device-keyed state is tagged by device (`tagOfDevice`), so a cluster spreads the fleet.
 * No script touches two tags.
 */
import type { NodeAPI } from 'node-red';
import type { Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;
export type RedisState = 'connecting' | 'ready' | 'down';

export interface SharedRedis {
  readonly client: RedisClient;
  /** Every key starts with `<prefix>:`. */
  readonly prefix: string;
  readonly state: RedisState;
  /** Why it is not ready, when it is not. */
  readonly problem: string | undefined;
  /** Where it connects, without credentials. */
  readonly target: string;
  /** Called on every change of state; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

/** The iot-redis config node a property names, if it is one and it started. */
export function redisService(RED: NodeAPI, id: string | undefined): SharedRedis | undefined {
  if (!id) return undefined;
  const node = RED.nodes.getNode(id) as { redis?: SharedRedis } | null;
  return node?.redis;
}

/** The hash tag of a device's keys: its id (a cluster spreads devices over its slots). */
export function tagOfDevice(device: string): string {
  return `{${device}}`;
}

/** What a node that shares its state says in its status about the connection, or undefined when it is ready. */
export function connectionProblem(redis: SharedRedis): { fill: 'yellow' | 'red'; text: string } | undefined {
  if (redis.state === 'ready') return undefined;
  if (redis.state === 'connecting') return { fill: 'yellow', text: `connecting to Redis${redis.problem ? `: ${redis.problem}` : ''}` };
  return { fill: 'red', text: redis.problem ?? 'Redis is down' };
}
