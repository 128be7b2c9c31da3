/**
 * Real servers for the tests, started on 127.0.0.1 on free ports with temporary data folders:
 * mosquitto, victoria-metrics, influxdb 1.x and redis-server. A server that is not installed is
 * installed (as root) or the test fails naming the package: never a silent skip.
 *
 *   const vm = await startVictoriaMetrics();   // in beforeAll
 *   ... vm.url ...
 *   await vm.stop();                          // down, data kept: an outage
 *   await vm.start();                         // up again, same port and data
 *   await vm.dispose();                       // in afterAll: stopped and data removed
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ServerProcess, type ServerCommand } from '../../scripts/server-process';
import { influxdbCommand, victoriaMetricsCommand } from '../../scripts/time-series-servers';
import { ensureInstalled, SYSTEM_PACKAGES, type SystemPackage } from './system-packages';
import { eventually } from './wait';

export const HOST = '127.0.0.1';
export { freePort };

export function portOpen(port: number, host = HOST): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface ServerSpec {
  name: string;
  pkg: SystemPackage;
  /** Writes any config into dataDir and says how to run the server and see it answer. */
  command(dataDir: string, port: number): ServerCommand;
  /** The address tests use. */
  url(port: number): string;
}

export class ManagedServer {
  readonly dataDir: string;
  private readonly process: ServerProcess;

  private constructor(
    private readonly spec: ServerSpec,
    readonly port: number,
  ) {
    this.dataDir = mkdtempSync(join(tmpdir(), `iot-${spec.name}-`));
    this.process = new ServerProcess(spec.name, () => spec.command(this.dataDir, port), this.dataDir);
  }

  static async launch(spec: ServerSpec): Promise<ManagedServer> {
    ensureInstalled(spec.pkg);
    let lastError: Error | undefined;
    // A free port can be taken between our check and the server's bind: try a few.
    for (let attempt = 0; attempt < 3; attempt++) {
      const server = new ManagedServer(spec, await freePort());
      try {
        await server.start();
        return server;
      } catch (err) {
        lastError = err as Error;
        await server.dispose();
      }
    }
    throw lastError;
  }

  get name(): string {
    return this.spec.name;
  }

  get url(): string {
    return this.spec.url(this.port);
  }

  get running(): boolean {
    return this.process.running;
  }

  /** The server's process id while it runs (for its CPU time and memory in /proc). */
  get pid(): number | undefined {
    return this.process.pid;
  }

  /** Starts (again) on the same port with the same data. */
  start(timeoutMs = 30_000): Promise<void> {
    return this.process.start(timeoutMs);
  }

  /** Stops the process (SIGTERM, then SIGKILL after 10 s); the data stays. */
  stop(): Promise<void> {
    return this.process.stop();
  }

  /** Stops the process and removes its data. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  logTail(lines = 40): string {
    return this.process.logTail(lines);
  }
}

/** `settings`: further lines of mosquitto.conf (`max_queued_messages 0`, say). */
export function startMosquitto(settings: string[] = []): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'mosquitto',
    pkg: SYSTEM_PACKAGES.mosquitto,
    command(dataDir, port) {
      const config = join(dataDir, 'mosquitto.conf');
      writeFileSync(config, [`listener ${port} ${HOST}`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ...settings, ''].join('\n'));
      return { program: SYSTEM_PACKAGES.mosquitto.binary, args: ['-c', config], ready: () => portOpen(port) };
    },
    url: (port) => `mqtt://${HOST}:${port}`,
  });
}

export function startVictoriaMetrics(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'victoria-metrics',
    pkg: SYSTEM_PACKAGES.victoriaMetrics,
    command: (dataDir, port) => victoriaMetricsCommand(dataDir, HOST, port),
    url: (port) => `http://${HOST}:${port}`,
  });
}

export function startInfluxDB(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'influxdb',
    pkg: SYSTEM_PACKAGES.influxdb,
    command: (dataDir, port) => influxdbCommand(dataDir, HOST, port),
    url: (port) => `http://${HOST}:${port}`,
  });
}

export function startRedis(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'redis',
    pkg: SYSTEM_PACKAGES.redis,
    command: (dataDir, port) => ({
      program: SYSTEM_PACKAGES.redis.binary,
      args: ['--port', String(port), '--bind', HOST, '--dir', dataDir, '--save', '', '--appendonly', 'yes', '--daemonize', 'no', '--loglevel', 'warning'],
      ready: () => portOpen(port),
    }),
    url: (port) => `redis://${HOST}:${port}`,
  });
}

export interface ExportedSeries {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

/**
 * Every series victoria-metrics holds for a selector, read with /api/v1/export, waiting until
 * at least `points` points are searchable. `flush` (the default) makes new series searchable at
 * once instead of after about ten seconds; it also writes what the store holds in memory to disk,
 * so a test about what a crash loses reads with `flush: false`, as a dashboard would.
 */
export async function exportSeries(vm: { url: string }, selector: string, points = 1, timeoutMs = 15_000, { flush = true } = {}): Promise<ExportedSeries[]> {
  return eventually(`${points} point(s) of ${selector} in victoria-metrics`, async () => {
    if (flush) await fetch(`${vm.url}/internal/force_flush`);
    const text = await fetch(`${vm.url}/api/v1/export?match[]=${encodeURIComponent(selector)}`).then((r) => r.text());
    const series = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as ExportedSeries);
    const total = series.reduce((n, s) => n + s.values.length, 0);
    return total >= points ? series : undefined;
  }, timeoutMs);
}

/** How many points of a selector victoria-metrics answers with now, without a flush (as a dashboard reads). */
export async function pointsNow(vm: { url: string }, selector: string): Promise<number> {
  const text = await fetch(`${vm.url}/api/v1/export?match[]=${encodeURIComponent(selector)}`).then((r) => r.text());
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .reduce((n, line) => n + (JSON.parse(line) as ExportedSeries).values.length, 0);
}

/**
 * Writes `count` new points of the series `crash_probe_v` (10 ms apart, after `from`) with the
 * InfluxDB v1 API into the store, as the flows' writers do, and waits until a reader sees all
 * `expected` points of the series without a flush: what the store has answered for and shows,
 * but may still hold only in memory.
 */
export async function writeAndReadBack(vm: { url: string }, from: number, count: number, expected: number): Promise<void> {
  for (let start = 0; start < count; start += 100) {
    const lines = Array.from({ length: Math.min(100, count - start) }, (_, i) => `crash_probe,device=probe v=${start + i} ${from + (start + i + 1) * 10}`);
    const response = await fetch(`${vm.url}/write?db=iot&precision=ms`, { method: 'POST', body: lines.join('\n') });
    if (response.status !== 204) throw new Error(`the store answered ${response.status} to a write: ${await response.text()}`);
  }
  await eventually(`${expected} points of crash_probe_v read back`, async () => ((await pointsNow(vm, 'crash_probe_v')) >= expected ? true : undefined), 20_000, 50);
}
