/**
 * A Node-RED runtime in this process for benchmarks: the pack loaded, the given flow started, no
 * HTTP listener. Nodes are fetched by id and fed with receive() from a loop.
 */
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface BenchNode {
  receive(msg: object): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
}

interface Runtime {
  init(server: unknown, settings: object): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  events: { once(event: string, listener: () => void): void };
  nodes: { getNode(id: string): BenchNode | null };
}

export interface EmbeddedRuntime {
  node(id: string): BenchNode;
  stop(): Promise<void>;
}

/**
 * `extraNodes`: node files (name to JavaScript source) for this runtime only, loaded from the user
 * directory's nodes/ folder as Node-RED loads a user's own nodes.
 */
export async function startRuntime(flow: object[], extraNodes: Record<string, string> = {}): Promise<EmbeddedRuntime> {
  const userDir = mkdtempSync(join(tmpdir(), 'iot-bench-'));
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flow));
  if (Object.keys(extraNodes).length > 0) mkdirSync(join(userDir, 'nodes'));
  for (const [name, source] of Object.entries(extraNodes)) writeFileSync(join(userDir, 'nodes', name), source);
  const RED = require(process.env.NODE_RED_PATH ?? 'node-red') as Runtime;
  RED.init(createServer(), {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: 'bench',
    nodesDir: [resolve(__dirname, '..', '..')],
    httpAdminRoot: false,
    httpNodeRoot: false,
    telemetry: { enabled: false },
    logging: { console: { level: 'warn', metrics: false, audit: false } },
  });
  const started = new Promise<void>((done) => RED.events.once('flows:started', done));
  await RED.start();
  await started;
  return {
    node(id) {
      const found = RED.nodes.getNode(id);
      if (!found) throw new Error(`no node ${id} in the benchmark flow`);
      return found;
    },
    async stop() {
      await RED.stop();
      rmSync(userDir, { recursive: true, force: true });
    },
  };
}
