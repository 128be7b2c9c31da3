/**
 * The buffer node's settings versions (nodes/shared/settings-version.ts). Version 2 made the
 * window of messages in flight automatic by default. A node from before it without a number had
 * 10 in flight: it keeps 10 until the user changes it.
 */
import type { Migration } from '../shared/settings-version';

export interface VersionedBufferProperties {
  settingsVersion?: unknown;
  maxInFlight?: string | number;
}

export const BUFFER_MIGRATIONS: ReadonlyArray<Migration<VersionedBufferProperties>> = [
  {
    to: 2,
    apply(props) {
      if (props.maxInFlight !== undefined && String(props.maxInFlight).trim() !== '') return undefined;
      props.maxInFlight = '10';
      return 'in-flight-kept-10';
    },
  },
];
