/**
 * How to run the two time-series stores Debian offers on loopback: victoria-metrics (InfluxDB v1
 * and v2 write APIs) and influxd 1.x (v1 API). Used by the tests and by `npm start`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerCommand } from './server-process';

export const VICTORIA_METRICS = '/usr/bin/victoria-metrics';
export const INFLUXD = '/usr/bin/influxd';

async function answers(url: string, status: number): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.status === status;
}

export function victoriaMetricsCommand(dataDir: string, host: string, port: number): ServerCommand {
  return {
    program: VICTORIA_METRICS,
    args: [
      `-storageDataPath=${join(dataDir, 'data')}`,
      `-httpListenAddr=${host}:${port}`,
      // Queries see new points after 1 s instead of 30 s.
      '-search.latencyOffset=1s',
      '-retentionPeriod=100y',
      // One point per series and time, as InfluxDB keeps it: a point written again (a retry after
      // a lost answer, a buffer's redelivery) replaces itself instead of being stored twice.
      '-dedup.minScrapeInterval=1ms',
      '-loggerLevel=ERROR',
    ],
    ready: () => answers(`http://${host}:${port}/health`, 200),
  };
}

export function influxdbCommand(dataDir: string, host: string, port: number): ServerCommand {
  const config = join(dataDir, 'influxdb.conf');
  writeFileSync(
    config,
    [
      'reporting-disabled = true',
      `bind-address = "${host}:0"`,
      '[meta]',
      `  dir = "${join(dataDir, 'meta')}"`,
      '[data]',
      `  dir = "${join(dataDir, 'data')}"`,
      `  wal-dir = "${join(dataDir, 'wal')}"`,
      '  query-log-enabled = false',
      '[http]',
      '  enabled = true',
      `  bind-address = "${host}:${port}"`,
      '  log-enabled = false',
      '[monitor]',
      '  store-enabled = false',
      '[logging]',
      '  level = "error"',
      '',
    ].join('\n'),
  );
  return { program: INFLUXD, args: ['-config', config], ready: () => answers(`http://${host}:${port}/ping`, 204) };
}

/** influxd 1.x: makes a database (nothing happens when it exists). */
export async function createInfluxDatabase(url: string, database: string): Promise<void> {
  const response = await fetch(`${url}/query?q=${encodeURIComponent(`CREATE DATABASE "${database}"`)}`, { method: 'POST' });
  if (!response.ok) throw new Error(`CREATE DATABASE ${database} answered ${response.status}: ${await response.text()}`);
}
