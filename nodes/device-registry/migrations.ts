/**
 * The registry node's settings versions (nodes/shared/settings-version.ts). Version 2 added key
 * derivation v2 (a key per method). A registry from before it derives keys as it always did (v1),
 * so that devices in the field keep working until they are given their v2 keys.
 */
import type { Migration } from '../shared/settings-version';
import type { KeyDerivation } from './stores';

export interface VersionedRegistryProperties {
  settingsVersion?: unknown;
  source?: string;
  keyDerivation?: KeyDerivation;
}

export const REGISTRY_MIGRATIONS: ReadonlyArray<Migration<VersionedRegistryProperties>> = [
  {
    to: 2,
    apply(props) {
      if (props.keyDerivation !== undefined) return undefined;
      props.keyDerivation = 'v1';
      return props.source === 'derived' ? 'key-derivation-kept-v1' : undefined;
    },
  },
];
