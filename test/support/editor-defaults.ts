/**
 * The properties a node gets when an integrator drops it into the editor and sets nothing: the
 * `value` of each entry of the `defaults` its editor file registers, read by running the editor
 * file's script against a stand-in RED (as the editor runs it), not by copying numbers into tests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { repoRoot } from './node-red-process';

/** A RED (and jQuery) that accepts any call the editor script makes while it registers. */
function standIn(): unknown {
  const anything: unknown = new Proxy(function () {}, {
    get: (_target, key) => (key === Symbol.toPrimitive ? () => '' : anything),
    apply: () => anything,
  });
  return anything;
}

export function editorDefaults(type: string): Record<string, unknown> {
  const folder = type.replace(/^iot-/, '');
  const html = readFileSync(join(repoRoot, 'nodes', folder, `${folder}.html`), 'utf8');
  const script = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html)?.[1];
  if (!script) throw new Error(`no editor script in ${folder}.html`);
  const registered = new Map<string, { defaults: Record<string, { value: unknown }> }>();
  const RED = new Proxy(standIn() as object, {
    get: (target, key) =>
      key === 'nodes'
        ? new Proxy(standIn() as object, {
            get: (nodes, name) =>
              name === 'registerType'
                ? (type: string, definition: { defaults: Record<string, { value: unknown }> }) => registered.set(type, definition)
                : Reflect.get(nodes, name),
          })
        : Reflect.get(target, key),
  });
  runInNewContext(script, { RED, $: standIn(), jQuery: standIn(), window: {}, document: standIn(), console });
  const definition = registered.get(type);
  if (!definition) throw new Error(`${folder}.html registers no ${type}`);
  return Object.fromEntries(Object.entries(definition.defaults).map(([key, entry]) => [key, structuredClone(entry.value)]));
}

/**
 * A node as the editor saves it: the editor's defaults, then what the integrator set. Config node
 * references and wires are the caller's.
 */
export function asDropped(type: string, set: Record<string, unknown>): { type: string; [property: string]: unknown } {
  return { type, ...editorDefaults(type), ...set };
}
