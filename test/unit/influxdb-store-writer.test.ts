/**
 * The connection of iot-influxdb (nodes/influxdb/store-writer.ts): settings checked, the request
 * of each write API version (path, query, authentication), gzip, and errors as the client
 * library's HttpError, against a fake server on loopback.
 */
import { HttpError } from '@influxdata/influxdb-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, settingsFromProperties, StoreWriter, writeRequest, type StoreProperties } from '../../nodes/influxdb/store-writer';
import { FakeInflux, type FakeHandler } from '../support/fake-influx';

const fakes: FakeInflux[] = [];
const writers: StoreWriter[] = [];
afterEach(async () => {
  await Promise.all(writers.splice(0).map((w) => w.close(1000)));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function fake(handler?: FakeHandler): Promise<FakeInflux> {
  const server = await FakeInflux.start(handler);
  fakes.push(server);
  return server;
}

function writer(properties: StoreProperties, credentials = {}): StoreWriter {
  const w = new StoreWriter(settingsFromProperties(properties), credentials);
  writers.push(w);
  return w;
}

describe('settings', () => {
  it('fills in defaults', () => {
    expect(settingsFromProperties({ url: 'http://db:8086/', bucket: 'b' })).toEqual({
      url: 'http://db:8086',
      version: 'v2',
      org: '',
      bucket: 'b',
      database: '',
      retentionPolicy: '',
      precision: 'ms',
      gzip: true,
      timeoutMs: 10_000,
      ca: undefined,
      insecure: false,
    });
  });

  it('takes a CA certificate as PEM text', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    expect(settingsFromProperties({ url: 'https://db', bucket: 'b', ca: pem }).ca).toBe(pem);
  });

  it.each([
    [{ url: '' }, /no URL/],
    [{ url: 'db:8086', bucket: 'b' }, /must start with http/],
    [{ url: 'not a url' }, /is not a URL/],
    [{ url: 'http://db', version: 'v2' }, /needs a bucket/],
    [{ url: 'http://db', version: 'v1' }, /needs a database/],
    [{ url: 'http://db', version: 'v3' }, /needs a database/],
    [{ url: 'http://db', version: 'v4', database: 'd' }, /unknown write API/],
    [{ url: 'http://db', bucket: 'b', precision: 'h' }, /unknown precision/],
    [{ url: 'http://db', bucket: 'b', timeout: '-1' }, /timeout/],
    [{ url: 'https://db', bucket: 'b', ca: '/no/such/ca.pem' }, /cannot be read/],
  ] as Array<[StoreProperties, RegExp]>)('refuses %j', (properties, message) => {
    expect(() => settingsFromProperties(properties)).toThrow(ConfigError);
    expect(() => settingsFromProperties(properties)).toThrow(message);
  });
});

describe('requests by API version', () => {
  it.each([
    [{ version: 'v2', org: 'my org', bucket: 'b/rp', precision: 'ns' }, {}, '/api/v2/write?org=my+org&bucket=b%2Frp&precision=ns', undefined],
    [{ version: 'v2', bucket: 'b' }, {}, '/api/v2/write?bucket=b&precision=ms', undefined],
    [{ version: 'v1', database: 'iot', retentionPolicy: 'week', precision: 'us' }, { username: 'writer', password: 'p:w' }, '/write?db=iot&rp=week&precision=u', `Basic ${Buffer.from('writer:p:w').toString('base64')}`],
    [{ version: 'v1', database: 'iot', precision: 'ns' }, {}, '/write?db=iot&precision=ns', undefined],
    [{ version: 'v3', database: 'iot', precision: 's' }, { token: 'apiv3_t' }, '/api/v3/write_lp?db=iot&precision=second', 'Bearer apiv3_t'],
  ] as const)('%j', (properties, credentials, path, authorization) => {
    const request = writeRequest(settingsFromProperties({ url: 'http://db', ...properties }), credentials);
    expect(request.path).toBe(path);
    expect(request.headers.authorization).toBe(authorization);
    expect(request.headers['content-type']).toBe('text/plain; charset=utf-8');
  });
});

describe('writing', () => {
  it('v2: posts the body with the token, gzip-compressed when large enough', async () => {
    const server = await fake();
    const w = writer({ url: server.url, version: 'v2', org: 'o', bucket: 'b' }, { token: 'secret-token' });
    const small = 'm v=1 1';
    const large = Array.from({ length: 100 }, (_, i) => `m,device=d${i} v=${i} ${i}`).join('\n');
    await w.write(small);
    await w.write(large);
    expect(server.requests.map((r) => [r.method, r.path, r.query.toString(), r.headers.authorization, r.gzipped])).toEqual([
      ['POST', '/api/v2/write', 'org=o&bucket=b&precision=ms', 'Token secret-token', false],
      ['POST', '/api/v2/write', 'org=o&bucket=b&precision=ms', 'Token secret-token', true],
    ]);
    expect(server.requests[1].body).toBe(large);
    expect(w.describe()).toBe(`${server.url} v2 bucket b (org o)`);
    expect(w.describe()).not.toContain('secret');
  });

  it('v1: basic authentication, never the password in the URL', async () => {
    const server = await fake();
    const w = writer({ url: server.url, version: 'v1', database: 'iot', gzip: false }, { username: 'u', password: 'hunter2' });
    await w.write('m v=1 1');
    const [request] = server.requests;
    expect(request.path).toBe('/write');
    expect(request.query.toString()).not.toContain('hunter2');
    expect(request.headers.authorization).toBe(`Basic ${Buffer.from('u:hunter2').toString('base64')}`);
  });

  it('keeps a path prefix of the URL', async () => {
    const server = await fake();
    const w = writer({ url: `${server.url}/influx/`, version: 'v3', database: 'iot' }, { token: 't' });
    await w.write('m v=1 1');
    expect(server.requests[0].path).toBe('/influx/api/v3/write_lp');
    expect(server.requests[0].headers.authorization).toBe('Bearer t');
  });

  it('rejects with HttpError carrying the status, body and Retry-After', async () => {
    const server = await fake(() => ({ status: 429, body: '{"message":"slow down"}', headers: { 'retry-after': '3' } }));
    const w = writer({ url: server.url, bucket: 'b' });
    const error = (await w.write('m v=1 1').catch((e: unknown) => e)) as HttpError;
    expect(error).toBeInstanceOf(HttpError);
    expect(error.statusCode).toBe(429);
    expect(error.body).toBe('{"message":"slow down"}');
    expect(error.headers?.['retry-after']).toBe('3');
  });

  it('fails a request that takes longer than the timeout', async () => {
    const server = await fake(() => new Promise((resolve) => setTimeout(() => resolve({ status: 204 }), 2000)));
    const w = writer({ url: server.url, bucket: 'b', timeout: 0.2 });
    await expect(w.write('m v=1 1')).rejects.toThrow(/timed out/);
  });

  it('waits for the writes under way when it closes', async () => {
    const server = await fake(() => new Promise((resolve) => setTimeout(() => resolve({ status: 204 }), 200)));
    const w = new StoreWriter(settingsFromProperties({ url: server.url, bucket: 'b' }), {});
    const write = w.write('m v=1 1');
    await w.close(5000);
    await expect(write).resolves.toBeUndefined();
  });
});
