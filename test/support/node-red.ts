/**
 * node-red-node-test-helper bound to the Node-RED runtime under test: the development dependency
 * (Node-RED 4.1), or the one NODE_RED_PATH names (the Node-RED 5 leg, see scripts/nr5.ts).
 *
 * The helper does not serve the flow's `http in` nodes; `captureHttpNodes` (loaded as one of the
 * node modules) and `serveHttpNodes` let real HTTP clients reach them on 127.0.0.1.
 */
import { createServer, type RequestListener } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { NodeAPI } from 'node-red';
import helper from 'node-red-node-test-helper';

const require = createRequire(__filename);

export const nodeRedPath = process.env.NODE_RED_PATH ?? require.resolve('node-red');
helper.init(nodeRedPath);

export { helper };

type NodeModule = (RED: NodeAPI) => void;
const core = createRequire(nodeRedPath);

/** Node-RED's own nodes, for flows that wire them as users do. */
export const coreNodes = {
  httpIn: core('@node-red/nodes/core/network/21-httpin.js') as NodeModule,
  catch: core('@node-red/nodes/core/common/25-catch.js') as NodeModule,
  complete: core('@node-red/nodes/core/common/24-complete.js') as NodeModule,
};

let httpNodeApp: RequestListener | undefined;

/** Load among a flow's node modules: keeps the app the runtime mounts `http in` routes on. */
export function captureHttpNodes(RED: NodeAPI): void {
  httpNodeApp = RED.httpNode as unknown as RequestListener;
}

/** Serves the loaded flow's `http in` nodes (the latest load's) on a free port of 127.0.0.1. */
export async function serveHttpNodes(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (httpNodeApp) httpNodeApp(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
