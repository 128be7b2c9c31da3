/**
 * A whole Node-RED, started the way `npm start` starts it (dist/scripts/start.js), as a child
 * process on free ports with its own data folder. For end-to-end and browser tests, and for the
 * pattern benchmark, which runs compiled in plain node: nothing here may import vitest (its
 * test-file helpers are in node-red-after-all.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../scripts/server-process';
import { stopLeftoverStore } from '../../scripts/timeseries-store';

/** The repository, from this file in test/support or compiled in dist/test/support (the benchmarks). */
export const repoRoot = [resolve(__dirname, '..', '..'), resolve(__dirname, '..', '..', '..')].find((dir) => existsSync(join(dir, 'package.json'))) as string;

export interface NodeRedOptions {
  /** Reuse a data folder (a restart); a new temporary one otherwise. */
  dataDir?: string;
  /** Start with these flows instead of the example flows a first start deploys. */
  flows?: unknown[];
  env?: Record<string, string>;
  args?: string[];
  /** Options for node itself (`--cpu-prof`, which NODE_OPTIONS does not take). */
  nodeArgs?: string[];
}

export class NodeRedProcess {
  editorUrl = '';
  mqttUrl = '';
  timeSeriesUrl = '';
  salesforceUrl = '';
  dashboardUrl = '';
  /** The example flows' device brokers, on free ports so that test processes do not collide. */
  brokerPorts = { devices: 0, buffered: 0, gateway: 0 };
  output = '';
  private constructor(
    readonly child: ChildProcess,
    readonly dataDir: string,
    private readonly ownsDataDir: boolean,
  ) {}

  static async start(options: NodeRedOptions = {}): Promise<NodeRedProcess> {
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'iot-node-red-'));
    if (options.flows) {
      mkdirSync(join(dataDir, 'node-red'), { recursive: true });
      writeFileSync(join(dataDir, 'node-red', 'flows.json'), JSON.stringify(options.flows));
    }
    const brokerPorts = { devices: await freePort(), buffered: await freePort(), gateway: await freePort() };
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), join(repoRoot, 'dist/scripts/start.js'), ...(options.args ?? [])], {
      cwd: repoRoot,
      env: {
        ...process.env,
        PORT: '0',
        MQTT_PORT: '0',
        SF_SANDBOX_PORT: '0',
        INFLUX_PORT: '0',
        IOT_DEVICES_MQTT_PORT: String(brokerPorts.devices),
        IOT_BUFFERED_MQTT_PORT: String(brokerPorts.buffered),
        IOT_GATEWAY_MQTT_PORT: String(brokerPorts.gateway),
        IOT_DATA_DIR: dataDir,
        NODE_RED_CREDENTIAL_SECRET: 'test-secret',
        NODE_RED_LOG_LEVEL: 'warn',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own, as in a terminal: interrupt() signals all of it.
      detached: true,
    });
    const node = new NodeRedProcess(child, dataDir, options.dataDir === undefined);
    node.brokerPorts = brokerPorts;
    child.stdout?.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    // A start that fails or hangs leaves nothing running (the child has its own process group).
    const started = new Promise<void>((ready, fail) => {
      const timer = setTimeout(() => fail(new Error(`Node-RED did not start within 60 s:\n${node.output}`)), 60_000);
      const check = () => {
        if (!node.output.includes('Press Ctrl-C to stop.')) return;
        clearTimeout(timer);
        node.editorUrl = (/^Node-RED editor: (\S+)/m.exec(node.output)?.[1] ?? '').replace(/\/$/, '');
        node.mqttUrl = /^MQTT broker:\s+(\S+)/m.exec(node.output)?.[1] ?? '';
        node.timeSeriesUrl = /^Time series:\s+(\S+)/m.exec(node.output)?.[1] ?? '';
        node.salesforceUrl = (/^Salesforce:\s+(\S+)/m.exec(node.output)?.[1] ?? '').replace(/\/$/, '');
        node.dashboardUrl = /^Fleet dashboard:\s+(\S+)/m.exec(node.output)?.[1] ?? '';
        ready();
      };
      child.stdout?.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`Node-RED exited with code ${code} at start:\n${node.output}`));
      });
    });
    try {
      await started;
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), 'SIGKILL');
      await node.dispose();
      throw err;
    }
    return node;
  }

  /**
   * A deploy through the admin API, as the editor's Deploy button makes it: full (the default),
   * `flows` (only the tabs with a changed node restart) or `nodes` (only the changed nodes). The
   * flows start a moment after it answers.
   */
  async deploy(flows: unknown[], type: 'full' | 'flows' | 'nodes' = 'full'): Promise<void> {
    const response = await fetch(`${this.editorUrl}/flows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': type },
      body: JSON.stringify(flows),
    });
    if (response.status !== 204) throw new Error(`deploy failed: ${response.status} ${await response.text()}`);
  }

  /**
   * Ctrl-C in a terminal: SIGINT to the whole process group, the children npm start runs too.
   * Resolves with the exit code once npm start has stopped.
   */
  interrupt(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(this.child.exitCode);
    const exited = new Promise<number | null>((done) => this.child.once('exit', (code) => done(code)));
    process.kill(-(this.child.pid as number), 'SIGINT');
    return exited;
  }

  /** SIGINT (or the signal given) to npm start alone: resolves with the exit code once it has stopped. */
  stop(signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(this.child.exitCode);
    const exited = new Promise<number | null>((done) => this.child.once('exit', (code) => done(code)));
    this.child.kill(signal);
    return exited;
  }

  /** kill -9: no chance to save anything. */
  async crash(): Promise<void> {
    await this.stop('SIGKILL');
  }

  /** Ends the process at once, and the managed store it leaves behind (no server outlives a test). */
  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    await stopLeftoverStore(this.dataDir);
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
