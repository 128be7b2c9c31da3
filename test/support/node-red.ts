/**
 * node-red-node-test-helper bound to the Node-RED runtime under test: the development dependency
 * (Node-RED 4.1), or the one NODE_RED_PATH names (the Node-RED 5 leg, see scripts/nr5.ts).
 */
import { createRequire } from 'node:module';
import helper from 'node-red-node-test-helper';

const require = createRequire(__filename);

export const nodeRedPath = process.env.NODE_RED_PATH ?? require.resolve('node-red');
helper.init(nodeRedPath);

export { helper };
