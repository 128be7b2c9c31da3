/**
 * node-red-node-test-helper answers RED._(key) with the key itself. Tests that check what users
 * read (status lines, error messages) wrap a node's register function with withMessages(), which
 * answers from the node's own en-US catalog, placeholders filled in, as Node-RED does. Several
 * wrapped nodes loaded together share one catalog.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeAPI } from 'node-red';

type Catalog = Record<string, unknown>;

const catalogs = new WeakMap<object, Catalog>();

export function withMessages(register: (RED: NodeAPI) => void, nodeFolder: string): (RED: NodeAPI) => void {
  const own = JSON.parse(readFileSync(join(__dirname, '..', '..', 'nodes', nodeFolder, 'locales', 'en-US', `${nodeFolder}.json`), 'utf8')) as Catalog;
  return (RED) => {
    let catalog = catalogs.get(RED);
    if (!catalog) {
      const shared: Catalog = {};
      catalog = shared;
      catalogs.set(RED, shared);
      (RED as unknown as { _: (key: string, values?: Record<string, unknown>) => string })._ = (key, values) => {
        const found = key.split('.').reduce<unknown>((at, part) => (at !== null && typeof at === 'object' ? (at as Catalog)[part] : undefined), shared);
        if (typeof found !== 'string') return key;
        return found.replace(/__(\w+)__/g, (_all, name: string) => String(values?.[name] ?? `__${name}__`));
      };
    }
    Object.assign(catalog, own);
    register(RED);
  };
}
