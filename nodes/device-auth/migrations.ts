/**
 * The device-auth node's settings versions (nodes/shared/settings-version.ts). Version 2 added
 * the accepted methods of "auto", x509 among them. A node from before it accepted every method
 * of a shared secret or key, and no certificate: it keeps that until the user changes it.
 */
import { SECRET_METHODS } from '../shared/device-registry-api';
import type { Migration } from '../shared/settings-version';

export interface VersionedDeviceAuthProperties {
  settingsVersion?: unknown;
  accepted?: string[];
}

export const DEVICE_AUTH_MIGRATIONS: ReadonlyArray<Migration<VersionedDeviceAuthProperties>> = [
  {
    to: 2,
    apply(props) {
      if (props.accepted !== undefined) return undefined;
      props.accepted = [...SECRET_METHODS];
      return 'accepted-kept-secret-methods';
    },
  },
];
