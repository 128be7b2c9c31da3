/**
 * iot-device-registry (config node): who the devices are. Holds them in one of three ways (a list
 * edited in the editor with its secrets in credentials; a registry file, reloaded when it
 * changes; derived keys from one master secret) and offers the registry service that
 * iot-device-auth and iot-mqtt-broker verify credentials with.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { AUTH_METHODS, type AuthMethod } from '../shared/device-registry-api';
import { migrateSettings } from '../shared/settings-version';
import { fleetFiles, loadFleets, type FleetSetting } from './fleets';
import type { Fleet } from './x509';
import { decodeSecret, parseRecord, RecordError } from './records';
import { DeviceRegistry } from './registry';
import { listFromCsv, listToCsv, type ListedDevice as ListRow } from './list-csv';
import { loadRegistryFile, parseIdList, RegistryFileError } from './registry-file';
import { REGISTRY_MIGRATIONS } from './migrations';
import { DerivedStore, KEY_DERIVATIONS, RecordStore, type KeyDerivation } from './stores';

interface ListedDevice {
  id?: string;
  [field: string]: unknown;
}

interface RegistryDef extends NodeDef {
  settingsVersion?: unknown;
  source?: 'list' | 'file' | 'derived';
  devices?: ListedDevice[];
  file?: string;
  masterSource?: 'credential' | 'env';
  masterEnv?: string;
  derivedMethods?: string[];
  keyDerivation?: KeyDerivation;
  idPattern?: string;
  gatewaySeparator?: string;
  derivedMeta?: string;
  revoked?: string;
  revokedFile?: string;
  fleets?: FleetSetting[];
  lockFailures?: string | number;
  lockWindow?: string | number;
  lockDuration?: string | number;
}

interface RegistryCredentials {
  /** JSON: { "<device id>": { "secret": "…", "apiKey": "…" } } */
  secrets: string | undefined;
  masterSecret: string | undefined;
}

type RegistryNode = Node<RegistryCredentials> & { registry: DeviceRegistry };

const RELOAD_DELAY_MS = 250;


function seconds(value: string | number | undefined, fallback: number): number {
  const n = Number(value);
  return value === undefined || value === '' || !Number.isFinite(n) || n < 0 ? fallback : n;
}

export = function register(RED: NodeAPI): void {
  function IotDeviceRegistryNode(this: RegistryNode, given: RegistryDef): void {
    RED.nodes.createNode(this, given);
    const node = this;
    let def: RegistryDef;
    try {
      const migrated = migrateSettings(given, REGISTRY_MIGRATIONS);
      def = migrated.props;
      for (const note of migrated.notes) node.log(RED._(`iot-device-registry.migrated.${note}`, { from: migrated.from }));
    } catch (err) {
      // A flow from a newer pack: refuse every credential rather than guess what it meant.
      node.registry = new DeviceRegistry({ failures: 0, windowMs: 0, lockMs: 0 });
      node.registry.loadFailed((err as Error).message);
      node.error(RED._('iot-device-registry.errors.not-loaded', { problem: (err as Error).message }));
      return;
    }
    const registry = new DeviceRegistry({
      failures: seconds(def.lockFailures, 10),
      windowMs: seconds(def.lockWindow, 60) * 1000,
      lockMs: seconds(def.lockDuration, 300) * 1000,
    });
    node.registry = registry;
    const watchers: FSWatcher[] = [];
    const timers = new Set<NodeJS.Timeout>();
    let closed = false;
    const userDir = (RED.settings.userDir as string | undefined) ?? process.cwd();
    const pathOf = (file: string) => (isAbsolute(file) ? file : resolve(userDir, file));

    function failed(problem: string): void {
      registry.loadFailed(problem);
      node.error(RED._('iot-device-registry.errors.not-loaded', { problem }));
    }

    /** Calls reload when the file changes, also when an editor replaces it by renaming. */
    function watchFile(path: string, reload: () => void): void {
      try {
        const watcher = watch(dirname(path), (_event, name) => {
          if (closed || (name !== null && name !== basename(path))) return;
          const timer = setTimeout(() => {
            timers.delete(timer);
            if (!closed) reload();
          }, RELOAD_DELAY_MS);
          timers.add(timer);
        });
        watcher.on('error', (err) => node.warn(RED._('iot-device-registry.errors.no-watch', { path, message: err.message })));
        watchers.push(watcher);
      } catch (err) {
        node.warn(RED._('iot-device-registry.errors.no-watch', { path, message: (err as Error).message }));
      }
    }

    // --- devices -------------------------------------------------------------------------------
    const source = def.source ?? 'list';
    if (source === 'list') {
      try {
        const secrets = JSON.parse(node.credentials?.secrets || '{}') as Record<string, { secret?: string; apiKey?: string }>;
        const records = (def.devices ?? []).map((device, i) =>
          parseRecord({ ...device, ...(secrets[String(device.id)] ?? {}) }, { where: `device ${i + 1}${device.id ? ` (${device.id})` : ''}`, secretsAllowed: true }),
        );
        registry.use(new RecordStore(records));
      } catch (err) {
        failed(err instanceof SyntaxError ? 'the stored secrets are not valid JSON' : (err as Error).message);
      }
    } else if (source === 'file') {
      if (!def.file) {
        failed(RED._('iot-device-registry.errors.no-file'));
      } else {
        const path = pathOf(def.file);
        const load = (initial: boolean) =>
          loadRegistryFile(path).then(
            (store) => {
              if (closed) return;
              registry.use(store);
              if (!initial) node.log(RED._('iot-device-registry.log.reloaded', { path, count: store.size }));
            },
            (err: Error & { code?: string }) => {
              if (closed) return;
              const problem = err.code === 'ENOENT' ? RED._('iot-device-registry.errors.missing-file', { path }) : err.message;
              if (registry.state === 'ready') node.warn(RED._('iot-device-registry.errors.reload-failed', { problem }));
              else failed(problem);
            },
          );
        void load(true);
        watchFile(path, () => void load(false));
      }
    } else {
      const master = def.masterSource === 'env' ? (def.masterEnv ? process.env[def.masterEnv] : undefined) : node.credentials?.masterSecret;
      try {
        if (!master) {
          throw new RecordError(def.masterSource === 'env' ? RED._('iot-device-registry.errors.no-master-env', { name: def.masterEnv || '?' }) : RED._('iot-device-registry.errors.no-master'));
        }
        const methods = (def.derivedMethods ?? ['apikey', 'hmac', 'sas']).filter((m): m is AuthMethod => (AUTH_METHODS as readonly string[]).includes(m));
        const meta = def.derivedMeta ? (JSON.parse(def.derivedMeta) as Record<string, unknown>) : undefined;
        const derivation = def.keyDerivation as KeyDerivation;
        if (!KEY_DERIVATIONS.includes(derivation)) throw new RecordError(RED._('iot-device-registry.errors.bad-derivation', { value: String(derivation) }));
        // v1 stays usable (devices in the field have v1 keys), but it is said at every start.
        if (derivation === 'v1') node.warn(RED._('iot-device-registry.errors.key-derivation-v1'));
        registry.use(
          new DerivedStore(decodeSecret(master), {
            methods,
            derivation,
            ...(def.idPattern ? { idPattern: new RegExp(def.idPattern) } : {}),
            ...(def.gatewaySeparator ? { gatewaySeparator: def.gatewaySeparator } : {}),
            ...(meta ? { meta } : {}),
          }),
        );
      } catch (err) {
        // The master secret's own text never goes into a message: only what is wrong with it.
        failed(err instanceof SyntaxError ? RED._('iot-device-registry.errors.bad-meta') : (err as Error).message);
      }
    }

    // --- revocation ----------------------------------------------------------------------------
    const listed = parseIdList(def.revoked ?? '');
    if (def.revokedFile) {
      const path = pathOf(def.revokedFile);
      const load = () =>
        readFile(path, 'utf8').then(
          (text) => {
            if (!closed) registry.setRevoked([...listed, ...parseIdList(text)]);
          },
          (err: Error) => {
            if (closed) return;
            // Fail closed: without its revocation list the registry would accept revoked devices.
            const problem = RED._('iot-device-registry.errors.revocation-unreadable', { path, message: err.message });
            registry.revocationUnknown(problem);
            node.error(problem);
          },
        );
      registry.revocationUnknown(RED._('iot-device-registry.errors.revocation-loading'));
      void load();
      watchFile(path, () => void load());
    } else {
      registry.setRevoked(listed);
    }

    // --- client certificates: the fleets whose CAs issue them ----------------------------------
    const fleetSettings = Array.isArray(def.fleets) ? def.fleets : [];
    if (fleetSettings.length > 0) {
      let loaded: Fleet[] = [];
      const loadCertificates = () =>
        loadFleets(fleetSettings, pathOf, loaded)
          .then(({ fleets, problems }) => {
            if (closed) return;
            loaded = fleets;
            registry.useFleets(fleets);
            for (const problem of problems) node.error(RED._('iot-device-registry.errors.fleet', { problem }));
          })
          .catch((err: Error) => node.error(RED._('iot-device-registry.errors.fleet', { problem: err.message })));
      registry.expectFleets();
      void loadCertificates();
      for (const path of new Set(fleetFiles(fleetSettings, pathOf))) watchFile(path, () => void loadCertificates());
    }

    node.on('close', (done: () => void) => {
      closed = true;
      for (const watcher of watchers) watcher.close();
      for (const timer of timers) clearTimeout(timer);
      done();
    });
  }

  RED.nodes.registerType<RegistryNode, RegistryDef, unknown, RegistryCredentials>('iot-device-registry', IotDeviceRegistryNode, {
    credentials: {
      secrets: { type: 'text' },
      masterSecret: { type: 'password' },
    },
  });

  // The editor's CSV import and export of the device list (list-csv.ts): the format is defined once,
  // here on the server. They read and write text only, nothing of a deployed registry. A CSV that
  // is refused is an answer for the person who gave it ({ problem }), not a failed request.
  const csvRoute = (handle: (body: Record<string, unknown>) => unknown) => (req: { body?: unknown }, res: { json(v: unknown): void }) => {
    try {
      res.json(handle((req.body ?? {}) as Record<string, unknown>));
    } catch (err) {
      if (!(err instanceof RegistryFileError)) throw err;
      res.json({ problem: err.message });
    }
  };
  RED.httpAdmin.post(
    '/iot-device-registry/csv/import',
    RED.auth.needsPermission('iot-device-registry.read'),
    csvRoute((body) => ({ devices: listFromCsv(typeof body.text === 'string' ? body.text : '') })),
  );
  RED.httpAdmin.post(
    '/iot-device-registry/csv/export',
    RED.auth.needsPermission('iot-device-registry.read'),
    csvRoute((body) => {
      if (!Array.isArray(body.devices)) throw new RegistryFileError('no device list to export');
      return { text: listToCsv(body.devices as ListRow[]) };
    }),
  );
};
