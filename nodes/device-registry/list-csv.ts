/**
 * CSV import and export of the editor's device list, in the registry file's CSV format
 * (registry-file.ts): the same columns, the same reader, so a file exported from the editor is a
 * registry file and a registry file can be pasted into the list. The editor reaches this through
 * the node's admin endpoints (device-registry.ts): it cannot import TypeScript, and a browser copy
 * would be a second definition of the format.
 *
 * A listed device is what the editor holds in a row: text fields as typed, `enabled` a boolean,
 * and `apiKey` its API key box (kept in the credentials). The CSV holds no secrets: a shared secret
 * is never written, an API key is written as its SHA-256 (`apiKeyHash`), and an `apiKeyHash` read
 * goes into the API key box, where a hash is taken as one (records.ts).
 */
import { sha256 } from '../shared/digest';
import { CsvError, formatCsv, parseCsv } from './csv';
import { checkColumns, CSV_COLUMNS, RegistryFileError } from './registry-file';

export interface ListedDevice {
  id: string;
  enabled: boolean;
  apiKey?: string;
  methods?: string;
  gateway?: string;
  algorithms?: string;
  publicKey?: string;
  meta?: string;
  publishTopics?: string;
  subscribeTopics?: string;
  certificates?: string;
}

/** The list's text fields that are CSV columns of the same name. */
const TEXT_FIELDS = ['methods', 'publicKey', 'algorithms', 'certificates', 'gateway', 'publishTopics', 'subscribeTopics', 'meta'] as const;
const API_KEY_HASH = /^(?:sha256:)?[0-9a-fA-F]{64}$/;

function enabledOf(text: string, line: number): boolean {
  if (/^(true|yes|1)?$/i.test(text.trim())) return true;
  if (/^(false|no|0)$/i.test(text.trim())) return false;
  throw new RegistryFileError(`line ${line}: enabled must be true or false, not ${JSON.stringify(text)}`);
}

/**
 * The devices of a registry CSV as rows of the list. The text's shape (quotes, field counts,
 * columns) must be right, or nothing is taken; the values are left for the editor's validation to
 * mark, row by row, as it marks what is typed. `meta.<name>` columns join the row's meta JSON.
 */
export function listFromCsv(text: string): ListedDevice[] {
  let table;
  try {
    table = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvError) throw new RegistryFileError(err.message);
    throw err;
  }
  checkColumns(table.header);
  const secrets = table.header.filter((name) => name === 'secret' || name === 'apiKey');
  if (secrets.length > 0) throw new RegistryFileError(`line 1: a registry CSV holds no secrets (${secrets.join(', ')}): give API keys as apiKeyHash, type shared secrets in the list`);
  return table.rows.map(({ line, fields }) => {
    const raw = new Map(table.header.map((name, i) => [name, fields[i]]));
    const device: ListedDevice = { id: raw.get('id') ?? '', enabled: enabledOf(raw.get('enabled') ?? '', line) };
    for (const name of TEXT_FIELDS) {
      const value = raw.get(name);
      if (value !== undefined && value !== '') device[name] = value;
    }
    const apiKeyHash = raw.get('apiKeyHash');
    if (apiKeyHash) device.apiKey = apiKeyHash;
    const metaFields = [...raw].filter(([name, value]) => name.startsWith('meta.') && value !== '');
    if (metaFields.length > 0) {
      let meta: unknown = {};
      try {
        meta = device.meta ? JSON.parse(device.meta) : {};
      } catch {
        meta = undefined;
      }
      // A meta that is not a JSON object stays as written, for the editor to mark.
      if (meta !== null && typeof meta === 'object' && !Array.isArray(meta)) {
        device.meta = JSON.stringify({ ...meta, ...Object.fromEntries(metaFields.map(([name, value]) => [name.slice(5), value])) });
      }
    }
    return device;
  });
}

/**
 * The list as a registry CSV: id and enabled, then each other column that some device fills, in
 * the registry's column order. API keys are written as SHA-256 hashes; secrets are never written.
 */
export function listToCsv(devices: readonly ListedDevice[]): string {
  if (devices.some((device) => device === null || typeof device !== 'object')) throw new RegistryFileError('every device of the list is an object');
  const hashes = devices.map((device, i) => {
    const key = typeof device.apiKey === 'string' ? device.apiKey : '';
    if (key === '' || API_KEY_HASH.test(key.trim())) return key.trim();
    if (key.length < 16) throw new RegistryFileError(`device ${i + 1} (${device.id}): an API key needs at least 16 characters`);
    return `sha256:${sha256(key).toString('hex')}`;
  });
  const valueOf = (device: ListedDevice, i: number, column: string): string => {
    if (column === 'enabled') return device.enabled === false ? 'false' : 'true';
    if (column === 'apiKeyHash') return hashes[i];
    const value = (device as unknown as Record<string, unknown>)[column];
    return typeof value === 'string' ? value : '';
  };
  const columns = [...CSV_COLUMNS].filter((column) => column === 'id' || column === 'enabled' || devices.some((device, i) => valueOf(device, i, column) !== ''));
  return formatCsv([columns, ...devices.map((device, i) => columns.map((column) => valueOf(device, i, column)))]);
}
