/**
 * The services harness itself: each real server starts on loopback and does one round trip.
 */
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { exportSeries, startInfluxDB, startMosquitto, startRedis, startVictoriaMetrics, type ManagedServer } from '../support/services';

const started: ManagedServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.dispose()));
});

async function launch(start: () => Promise<ManagedServer>): Promise<ManagedServer> {
  const server = await start();
  started.push(server);
  expect(server.url).toMatch(/127\.0\.0\.1:\d+$/);
  return server;
}

describe('services harness', () => {
  it('mosquitto: a subscriber receives what a publisher sends', async () => {
    const broker = await launch(startMosquitto);
    const subscriber = await mqtt.connectAsync(broker.url);
    const publisher = await mqtt.connectAsync(broker.url);
    try {
      await subscriber.subscribeAsync('harness/+/reading', { qos: 1 });
      const received = new Promise<[string, string]>((resolve) => subscriber.on('message', (topic, payload) => resolve([topic, payload.toString()])));
      await publisher.publishAsync('harness/pump-1/reading', '{"temperature":21.5}', { qos: 1 });
      expect(await received).toEqual(['harness/pump-1/reading', '{"temperature":21.5}']);
    } finally {
      await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
    }
  });

  it('victoria-metrics: a point written with the InfluxDB v2 API is read back exactly', async () => {
    const vm = await launch(startVictoriaMetrics);
    const at = Date.now();
    const write = await fetch(`${vm.url}/api/v2/write?org=o&bucket=b&precision=ms`, {
      method: 'POST',
      body: `sensor,device=pump-1 temp=21.5 ${at}\n`,
    });
    expect(write.status).toBe(204);
    const [series] = await exportSeries(vm, 'sensor_temp');
    expect(series.metric).toMatchObject({ __name__: 'sensor_temp', device: 'pump-1' });
    expect(series.values).toEqual([21.5]);
    expect(series.timestamps).toEqual([at]);
  });

  it('victoria-metrics: a point written twice is kept once, as InfluxDB keeps it', async () => {
    const vm = await launch(startVictoriaMetrics);
    const at = Date.now();
    const body = `again,device=pump-1 temp=21.5 ${at}\nagain,device=pump-1 temp=22 ${at + 1}\n`;
    // At-least-once delivery writes a point again after a lost answer or a redelivery: the pack
    // counts on the store keeping one point per series and time.
    for (let i = 0; i < 2; i++) expect((await fetch(`${vm.url}/api/v2/write?org=o&bucket=b&precision=ms`, { method: 'POST', body })).status).toBe(204);
    const [series] = await exportSeries(vm, 'again_temp', 2);
    expect(series.values).toEqual([21.5, 22]);
    expect(series.timestamps).toEqual([at, at + 1]);
  });

  it('influxdb 1.x: a point written with the v1 API is read back with InfluxQL', async () => {
    const influx = await launch(startInfluxDB);
    const created = await fetch(`${influx.url}/query?q=${encodeURIComponent('CREATE DATABASE harness')}`, { method: 'POST' });
    expect(created.status).toBe(200);
    const write = await fetch(`${influx.url}/write?db=harness&precision=ms`, { method: 'POST', body: 'sensor,device=pump-1 temp=21.5 1700000000123\n' });
    expect(write.status).toBe(204);
    const query = await fetch(`${influx.url}/query?db=harness&epoch=ms&q=${encodeURIComponent('SELECT temp, device FROM sensor')}`).then((r) => r.json());
    expect(query.results[0].series[0].values).toEqual([[1700000000123, 21.5, 'pump-1']]);
  });

  it('redis: a value set is got back, and survives a restart of the server', async () => {
    const redis = await launch(startRedis);
    const client = new Redis(redis.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    await client.set('harness:key', 'value-1');
    expect(await client.get('harness:key')).toBe('value-1');
    client.disconnect();
    await redis.stop();
    await redis.start();
    const again = new Redis(redis.port, '127.0.0.1', { lazyConnect: true });
    await again.connect();
    expect(await again.get('harness:key')).toBe('value-1');
    again.disconnect();
  });
});
