/**
 * Versioned node settings. A node's properties carry `settingsVersion`; a flow written before the
 * node had versions carries none and is version 1. Each migration takes the properties of the
 * version before it to its own, filling in what the old flow lacks with the value that keeps the
 * old behaviour, and says what it did, so the node can log it once at start.
 *
 * How a node adopts it (iot-device-registry is the first):
 * - runtime: `const { props, notes } = migrateSettings(def, MIGRATIONS)` before reading def;
 * - editor: `settingsVersion: { value: <current> }` in the defaults (new nodes start current), and
 *   in oneditprepare the same migrations on `this` when `this.settingsVersion` is missing or
 *   older, so that opening and saving an old node never switches it to a new default silently;
 *   oneditsave stores the current version. Importing a flow leaves missing properties missing
 *   (Node-RED applies defaults only to nodes added from the palette), so the runtime still sees
 *   an old flow as old.
 */

export interface Migration<P> {
  /** The version this migration produces (2 for the first one). */
  to: number;
  /** Changes `props` (a copy of the node's) in place; returns a note for the log, if any. */
  apply(props: P): string | undefined;
}

export interface Migrated<P> {
  props: P;
  /** The version the node's properties had. */
  from: number;
  /** What the migrations did, oldest first. */
  notes: string[];
}

export class SettingsVersionError extends Error {}

/** The settings version properties declare: missing means 1. */
export function settingsVersionOf(value: unknown): number {
  if (value === undefined || value === null || value === '') return 1;
  const version = Number(value);
  if (!Number.isInteger(version) || version < 1) throw new SettingsVersionError(`settings version ${JSON.stringify(value)} is not a version number`);
  return version;
}

/** Brings properties of any earlier version to the latest one the migrations know. */
export function migrateSettings<P extends V, V extends { settingsVersion?: unknown }>(props: P, migrations: ReadonlyArray<Migration<V>>): Migrated<P> {
  const from = settingsVersionOf(props.settingsVersion);
  const latest = migrations.reduce((max, m) => Math.max(max, m.to), 1);
  if (from > latest) throw new SettingsVersionError(`these settings are version ${from}, newer than this version of the pack knows (${latest}): update the pack`);
  const copy = { ...props };
  const notes: string[] = [];
  for (const migration of [...migrations].sort((a, b) => a.to - b.to)) {
    if (migration.to <= from) continue;
    const note = migration.apply(copy);
    if (note) notes.push(note);
  }
  copy.settingsVersion = latest;
  return { props: copy, from, notes };
}
