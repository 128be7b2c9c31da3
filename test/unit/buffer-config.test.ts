/**
 * The buffer's settings versions (nodes/buffer/migrations.ts): a node as an old flow saved it
 * keeps the window it had; a current node's empty window is the editor's default, automatic.
 */
import { describe, expect, it } from 'vitest';
import { BUFFER_MIGRATIONS } from '../../nodes/buffer/migrations';
import { bufferConfig, type BufferProperties } from '../../nodes/buffer/node-config';
import { migrateSettings } from '../../nodes/shared/settings-version';

const context = { nodeId: 'buffer', userDir: '/tmp/user', hostname: 'host' };
// As a flow from before settings versions saved it (examples/buffer-flaky-sink.json's shape).
const V1_NODE: BufferProperties = { name: 'buffer', backend: 'local', order: 'fifo', ackMode: 'settle', batchSize: '1' };

describe('buffer settings versions', () => {
  it.each<[string, BufferProperties, number | 'auto', string[]]>([
    ['a node from before versions without a window keeps 10 in flight', V1_NODE, 10, ['in-flight-kept-10']],
    ['a node from before versions with an empty window keeps 10 in flight', { ...V1_NODE, maxInFlight: '' }, 10, ['in-flight-kept-10']],
    ['a node from before versions keeps its own number', { ...V1_NODE, maxInFlight: '3' }, 3, []],
    ['a current node keeps automatic', { ...V1_NODE, settingsVersion: 2, maxInFlight: 'auto' }, 'auto', []],
    ['a current node with an empty window is automatic, the editor default', { ...V1_NODE, settingsVersion: 2, maxInFlight: '' }, 'auto', []],
  ])('%s', (_, node, maxInFlight, notes) => {
    const migrated = migrateSettings(node, BUFFER_MIGRATIONS);
    expect(migrated.notes).toEqual(notes);
    expect(bufferConfig(migrated.props, {}, context).queue.maxInFlight).toBe(maxInFlight);
  });
});
