/**
 * Registry files: JSON (an array of devices, or { "devices": [...] }) or CSV (a header line,
 * one device per line). They hold public keys and hashed API keys, never secrets. A file is
 * taken whole or not at all: one bad line rejects it, and the registry keeps what it had.
 *
 * CSV columns: id, enabled, methods, apiKeyHash, publicKey, algorithms, certificates, gateway,
 * publishTopics, subscribeTopics (lists separated by spaces), meta (JSON) and meta.<name> (one
 * field each).
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { CsvError, parseCsv } from './csv';
import { parseRecord, RecordError, type DeviceRecord } from './records';
import { RecordStore } from './stores';

export type RegistryFormat = 'json' | 'csv';

const JSON_FIELDS = new Set(['id', 'enabled', 'methods', 'apiKeyHash', 'publicKey', 'algorithms', 'certificates', 'gateway', 'topics', 'publishTopics', 'subscribeTopics', 'meta']);
/** In the order a written CSV has them. */
export const CSV_COLUMNS = new Set([...JSON_FIELDS].filter((f) => f !== 'topics'));
/** Named in errors as secrets a file may not hold, rather than as unknown fields. */
const SECRET_FIELDS = new Set(['secret', 'apiKey']);
const MAX_PROBLEMS = 5;

export class RegistryFileError extends Error {}

export function formatOf(path: string): RegistryFormat {
  return extname(path).toLowerCase() === '.csv' ? 'csv' : 'json';
}

function checkFields(names: Iterable<string>, allowed: Set<string>, where: string): void {
  for (const name of names) {
    if (allowed.has(name) || SECRET_FIELDS.has(name) || (allowed === CSV_COLUMNS && name.startsWith('meta.') && name.length > 5)) continue;
    throw new RecordError(`${where}: unknown field ${JSON.stringify(name)} (known: ${[...allowed].join(', ')})`);
  }
}

/** Every device of a registry file's text, or an error naming up to five bad lines. */
export function parseRegistryText(text: string, format: RegistryFormat): DeviceRecord[] {
  const records: DeviceRecord[] = [];
  const problems: string[] = [];
  const add = (raw: Record<string, unknown>, where: string, fields: Set<string>) => {
    try {
      checkFields(Object.keys(raw), fields, where);
      records.push(parseRecord(raw, { where, secretsAllowed: false }));
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      problems.push(err.message);
    }
  };
  if (format === 'csv') {
    let table;
    try {
      table = parseCsv(text);
    } catch (err) {
      if (err instanceof CsvError) throw new RegistryFileError(err.message);
      throw err;
    }
    checkColumns(table.header);
    for (const row of table.rows) {
      const raw: Record<string, unknown> = {};
      table.header.forEach((name, i) => (raw[name] = row.fields[i]));
      add(raw, `line ${row.line}`, CSV_COLUMNS);
      if (problems.length >= MAX_PROBLEMS) break;
    }
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new RegistryFileError(`not valid JSON: ${(err as Error).message}`);
    }
    const devices = Array.isArray(parsed) ? parsed : (parsed as { devices?: unknown } | null)?.devices;
    if (!Array.isArray(devices)) throw new RegistryFileError('a JSON registry is an array of devices, or { "devices": [...] }');
    for (const [i, raw] of devices.entries()) {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) problems.push(`device ${i + 1}: not an object`);
      else add(raw as Record<string, unknown>, `device ${i + 1}${typeof (raw as { id?: unknown }).id === 'string' ? ` (${(raw as { id: string }).id})` : ''}`, JSON_FIELDS);
      if (problems.length >= MAX_PROBLEMS) break;
    }
  }
  if (problems.length > 0) throw new RegistryFileError(problems.join('; '));
  return records;
}

export function checkColumns(header: string[]): void {
  if (!header.includes('id')) throw new RegistryFileError('line 1: the header needs an id column');
  try {
    checkFields(header, CSV_COLUMNS, 'line 1');
  } catch (err) {
    throw new RegistryFileError((err as Error).message);
  }
}

/** A registry file as a store: parsed, validated, ids unique, gateways registered. */
export async function loadRegistryFile(path: string): Promise<RecordStore> {
  const text = await readFile(path, 'utf8');
  try {
    return new RecordStore(parseRegistryText(text, formatOf(path)));
  } catch (err) {
    if (err instanceof RegistryFileError || err instanceof RecordError) throw new RegistryFileError(`${path}: ${err.message}`);
    throw err;
  }
}

/**
 * A revocation list file: one entry per line (or comma separated): a device id, `serial:<hex>` (a
 * certificate's serial number) or `sha256:<hex>` (a certificate's fingerprint); blank lines and
 * lines starting with # are ignored.
 */
export function parseIdList(text: string): string[] {
  return text
    .split(/\r?\n|,/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}
