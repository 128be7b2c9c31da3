/**
 * iot-redis: one connection to Redis (a single server, a Redis Cluster, or the master that
 * Sentinel names), shared by every node that keeps state there to share it between Node-RED
 * instances. The username and password are kept in Node-RED credentials.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { SharedRedis } from '../shared/redis-api';
import { connect, describeTarget, redisSettings, type RedisCredentials, type RedisProperties } from './connection';

type RedisNode = Node & { redis?: SharedRedis; problem?: string };

export = function register(RED: NodeAPI): void {
  function IotRedisNode(this: RedisNode, def: NodeDef & RedisProperties): void {
    RED.nodes.createNode(this, def);
    const node = this;
    let close: () => Promise<void> = () => Promise.resolve();
    try {
      const settings = redisSettings(def);
      const target = describeTarget(settings);
      const connection = connect(settings, (node.credentials ?? {}) as RedisCredentials);
      const watch = connection.watch;
      // Logged once per change, not per retry: a Redis that stays away must not flood the log.
      let logged: string | undefined;
      watch.onChange(() => {
        const line = watch.state === 'ready' ? '' : (watch.problem ?? '');
        if (line === logged) return;
        if (watch.state === 'ready' && logged !== undefined) node.log(RED._('iot-redis.log.ready', { target }));
        else if (line) node.warn(line);
        logged = line;
      });
      node.redis = connection.redis;
      close = connection.close;
    } catch (err) {
      node.problem = (err as Error).message;
      node.error(RED._('iot-redis.errors.invalid-config', { message: node.problem }));
    }

    node.on('close', (done: () => void) => {
      close().finally(done);
    });
  }

  RED.nodes.registerType('iot-redis', IotRedisNode, {
    credentials: {
      username: { type: 'text' },
      password: { type: 'password' },
    },
  });
};
