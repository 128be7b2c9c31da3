/**
 * iot-redis's settings as typed in the editor (each problem named, the password never taken
 * from a URL), where it says it connects (no credentials), and the connection state its user
 * nodes show in their status.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ConnectionWatch, describeTarget, redisSettings, type RedisProperties } from '../../nodes/redis/connection';
import type { RedisClient } from '../../nodes/shared/redis-api';
import { connectionProblem, tagOfDevice, type SharedRedis } from '../../nodes/shared/redis-api';

describe('iot-redis settings', () => {
  it('has working defaults: one server, prefix iot, 5 s per command', () => {
    expect(redisSettings({ url: 'redis://127.0.0.1:6379' })).toEqual({ topology: 'single', url: 'redis://127.0.0.1:6379', nodes: [], masterName: '', tls: false, prefix: 'iot', commandTimeoutMs: 5_000 });
  });

  const valid: Array<[string, RedisProperties, Partial<ReturnType<typeof redisSettings>>]> = [
    ['rediss:// turns TLS on', { url: 'rediss://cache.example.com:6380/2' }, { tls: true }],
    ['a username in the URL (no password) is kept', { url: 'redis://app@cache:6379' }, { url: 'redis://app@cache:6379' }],
    ['cluster seeds, the default port filled in', { topology: 'cluster', nodes: '10.0.0.1:7000, 10.0.0.2' }, { nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 6379 }] }],
    ['IPv6 seeds in brackets', { topology: 'cluster', nodes: '[::1]:7000' }, { nodes: [{ host: '::1', port: 7000 }] }],
    ['sentinels at their default port', { topology: 'sentinel', sentinels: 's1 s2:26380', masterName: 'mymaster' }, { nodes: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], masterName: 'mymaster' }],
    ['a prefix and a timeout', { url: 'redis://r', prefix: 'plant-7:', timeout: '0.5' }, { prefix: 'plant-7:', commandTimeoutMs: 500 }],
    ['an empty prefix and timeout (an older flow): the defaults', { url: 'redis://r', prefix: '', timeout: '' }, { prefix: 'iot', commandTimeoutMs: 5_000 }],
  ];
  it.each(valid)('takes %s', (_, props, expected) => {
    expect(redisSettings(props)).toMatchObject(expected);
  });

  const invalid: Array<[string, RedisProperties, string]> = [
    ['an http URL', { url: 'http://127.0.0.1:6379' }, 'the URL must start with redis:// or rediss://'],
    ['no URL', { url: '' }, 'the URL must start with redis://'],
    ['a password in the URL', { url: 'redis://app:secret@cache:6379' }, 'put the password in the password field'],
    ['an unknown topology', { topology: 'ring', url: 'redis://r' }, 'the topology must be single, cluster or sentinel'],
    ['a cluster without nodes', { topology: 'cluster', nodes: ' ' }, 'cluster nodes: give at least one host:port'],
    ['a cluster node with a bad port', { topology: 'cluster', nodes: 'a:99999' }, 'cluster nodes: "a:99999" is not host:port'],
    ['sentinels without a master', { topology: 'sentinel', sentinels: 's1' }, 'name the master the sentinels watch'],
    ['a prefix with braces (its own hash tag)', { url: 'redis://r', prefix: '{iot}' }, 'the key prefix may hold letters, digits'],
    ['a timeout of 0', { url: 'redis://r', timeout: '0' }, 'the command timeout must be a number of seconds above 0'],
    ['a timeout that is not a number', { url: 'redis://r', timeout: 'soon' }, 'the command timeout must be a number'],
  ];
  it.each(invalid)('refuses %s, naming it', (_, props, problem) => {
    expect(() => redisSettings(props)).toThrow(problem);
  });

  it('names every problem at once', () => {
    expect(() => redisSettings({ url: 'http://x', prefix: 'a b', timeout: '-1' })).toThrow(/URL.*; the key prefix.*; the command timeout/);
  });

  it('says where it connects without the credentials', () => {
    expect(describeTarget(redisSettings({ url: 'redis://app@cache:6379/2' }))).toBe('redis://cache:6379/2');
    expect(describeTarget(redisSettings({ topology: 'cluster', nodes: 'a:7000 b:7001' }))).toBe('cluster a:7000, b:7001');
    expect(describeTarget(redisSettings({ topology: 'sentinel', sentinels: 's1', masterName: 'm' }))).toBe('sentinel m at s1:26379');
  });
});

describe('the connection state user nodes show', () => {
  function watched(): { client: EventEmitter; redis: SharedRedis; changes: string[] } {
    const client = new EventEmitter();
    const watch = new ConnectionWatch(client as unknown as RedisClient, 'redis://r:6379');
    const changes: string[] = [];
    const redis: SharedRedis = {
      client: client as unknown as RedisClient,
      prefix: 'iot',
      target: 'redis://r:6379',
      get state() {
        return watch.state;
      },
      get problem() {
        return watch.problem;
      },
      onChange: (listener) => watch.onChange(listener),
    };
    redis.onChange(() => changes.push(JSON.stringify(connectionProblem(redis) ?? 'ok')));
    return { client, redis, changes };
  }

  it('is yellow while it connects, green once ready, red once lost, green again', () => {
    const { client, redis, changes } = watched();
    expect(connectionProblem(redis)).toEqual({ fill: 'yellow', text: 'connecting to Redis' });
    client.emit('ready');
    expect(connectionProblem(redis)).toBeUndefined();
    client.emit('error', new Error('read ECONNRESET'));
    client.emit('close');
    expect(connectionProblem(redis)).toEqual({ fill: 'red', text: 'Redis at redis://r:6379: read ECONNRESET' });
    client.emit('ready');
    expect(changes).toEqual(['"ok"', JSON.stringify({ fill: 'red', text: 'Redis at redis://r:6379: read ECONNRESET' }), '"ok"']);
  });

  it('is red when it cannot reach Redis at the start, with the reason', () => {
    const { client, redis } = watched();
    client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    expect(connectionProblem(redis)).toEqual({ fill: 'red', text: 'Redis at redis://r:6379: connect ECONNREFUSED 127.0.0.1:6379' });
  });
});

describe('keys spread over a Redis Cluster', () => {
  it('tags a device\'s keys by its id', () => {
    expect(tagOfDevice('pump-1')).toBe('{pump-1}');
  });
});
