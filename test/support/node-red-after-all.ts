// Apart from node-red-process.ts: the benchmarks load that in plain node, where vitest cannot be required.
import { afterAll } from 'vitest';
import { NodeRedProcess, type NodeRedOptions } from './node-red-process';

/**
 * For a test file: starts Node-RED processes that are all disposed after the file's tests, also
 * when a test fails half way.
 */
export function disposedAfterAll(): (options?: NodeRedOptions) => Promise<NodeRedProcess> {
  const nodes: NodeRedProcess[] = [];
  afterAll(async () => {
    for (const node of nodes.reverse()) await node.dispose();
  });
  return async (options) => {
    const node = await NodeRedProcess.start(options);
    nodes.push(node);
    return node;
  };
}
