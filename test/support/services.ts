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
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureInstalled, SYSTEM_PACKAGES, type SystemPackage } from './system-packages';
import { eventually, sleep } from './wait';

export const HOST = '127.0.0.1';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

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
  /** Writes any config into dataDir and returns the command line. */
  command(dataDir: string, port: number): { program: string; args: string[] };
  /** Resolves true once the server answers. */
  ready(port: number): Promise<boolean>;
  /** The address tests use. */
  url(port: number): string;
}

export class ManagedServer {
  readonly dataDir: string;
  private child: ChildProcess | undefined;
  private log: string[] = [];

  private constructor(
    private readonly spec: ServerSpec,
    readonly port: number,
  ) {
    this.dataDir = mkdtempSync(join(tmpdir(), `iot-${spec.name}-`));
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
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts (again) on the same port with the same data. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.running) return;
    const { program, args } = this.spec.command(this.dataDir, this.port);
    this.log = [];
    const child = spawn(program, args, { cwd: this.dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk: Buffer) => {
      this.log.push(chunk.toString());
      if (this.log.length > 200) this.log.splice(0, this.log.length - 200);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    child.once('error', (err) => {
      spawnError = err;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`${this.name} could not be started (${program}): ${spawnError.message}`);
      if (!this.running) throw new Error(`${this.name} exited at start (code ${child.exitCode}, signal ${child.signalCode}):\n${this.logTail()}`);
      if (await this.spec.ready(this.port).catch(() => false)) return;
      await sleep(100);
    }
    await this.stop();
    throw new Error(`${this.name} did not answer on port ${this.port} within ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** Stops the process (SIGTERM, then SIGKILL after 10 s); the data stays. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }

  /** Stops the process and removes its data. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  logTail(lines = 40): string {
    return this.log.join('').split('\n').slice(-lines).join('\n');
  }
}

async function httpOk(url: string, expected: number[] = [200]): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return expected.includes(response.status);
}

export function startMosquitto(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'mosquitto',
    pkg: SYSTEM_PACKAGES.mosquitto,
    command(dataDir, port) {
      const config = join(dataDir, 'mosquitto.conf');
      writeFileSync(config, [`listener ${port} ${HOST}`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ''].join('\n'));
      return { program: SYSTEM_PACKAGES.mosquitto.binary, args: ['-c', config] };
    },
    ready: (port) => portOpen(port),
    url: (port) => `mqtt://${HOST}:${port}`,
  });
}

export function startVictoriaMetrics(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'victoria-metrics',
    pkg: SYSTEM_PACKAGES.victoriaMetrics,
    command: (dataDir, port) => ({
      program: SYSTEM_PACKAGES.victoriaMetrics.binary,
      args: [
        `-storageDataPath=${join(dataDir, 'data')}`,
        `-httpListenAddr=${HOST}:${port}`,
        // Queries see new points after 1 s instead of 30 s.
        '-search.latencyOffset=1s',
        '-retentionPeriod=100y',
        '-loggerLevel=ERROR',
      ],
    }),
    ready: (port) => httpOk(`http://${HOST}:${port}/health`),
    url: (port) => `http://${HOST}:${port}`,
  });
}

export function startInfluxDB(): Promise<ManagedServer> {
  return ManagedServer.launch({
    name: 'influxdb',
    pkg: SYSTEM_PACKAGES.influxdb,
    command(dataDir, port) {
      const config = join(dataDir, 'influxdb.conf');
      writeFileSync(
        config,
        [
          'reporting-disabled = true',
          `bind-address = "${HOST}:0"`,
          '[meta]',
          `  dir = "${join(dataDir, 'meta')}"`,
          '[data]',
          `  dir = "${join(dataDir, 'data')}"`,
          `  wal-dir = "${join(dataDir, 'wal')}"`,
          '  query-log-enabled = false',
          '[http]',
          '  enabled = true',
          `  bind-address = "${HOST}:${port}"`,
          '  log-enabled = false',
          '[monitor]',
          '  store-enabled = false',
          '[logging]',
          '  level = "error"',
          '',
        ].join('\n'),
      );
      return { program: SYSTEM_PACKAGES.influxdb.binary, args: ['-config', config] };
    },
    ready: (port) => httpOk(`http://${HOST}:${port}/ping`, [204]),
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
    }),
    ready: (port) => portOpen(port),
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
 * at least `points` points are searchable.
 */
export async function exportSeries(vm: ManagedServer, selector: string, points = 1, timeoutMs = 15_000): Promise<ExportedSeries[]> {
  return eventually(`${points} point(s) of ${selector} in victoria-metrics`, async () => {
    // Without a flush, new series can take ten seconds to become searchable.
    await fetch(`${vm.url}/internal/force_flush`);
    const text = await fetch(`${vm.url}/api/v1/export?match[]=${encodeURIComponent(selector)}`).then((r) => r.text());
    const series = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as ExportedSeries);
    const total = series.reduce((n, s) => n + s.values.length, 0);
    return total >= points ? series : undefined;
  }, timeoutMs);
}
