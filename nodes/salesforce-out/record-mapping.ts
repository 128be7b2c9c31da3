/**
 * Ready-made records from what the pack's nodes send: `msg.alert` from iot-threshold and
 * `msg.device` from iot-device-auth become a Case or a Lead (for the REST API, or as a Web-to
 * form). A Case says what happened in its subject ("temperature above 80 on pump-17"), tells
 * the reading, rule, severity and times in its description, takes its priority from the
 * severity, links the device's Asset, Account and Contact from its metadata, and carries the
 * alert id in an external id field so that every change of one alert updates the same Case.
 */
import type { DeviceIdentity } from '../shared/device';
import { checkShape, DEFAULT_PARSE_LIMITS } from '../shared/json-limits';

export interface Alert {
  id: string;
  state: 'raised' | 'cleared';
  key?: string;
  reading?: string;
  rule?: string;
  severity?: string;
  previousSeverity?: string;
  change?: string;
  value?: unknown;
  threshold?: unknown;
  since?: number;
  at?: number;
  text?: string;
  reason?: string;
}

export interface MappingOptions {
  /** The external id field that holds the alert id (upserts match on it). */
  externalIdField?: string;
  /** Case Origin. */
  origin: string;
  /** Close the Case (Status = Closed) when the alert clears. */
  closeOnClear: boolean;
  /** Lead Source. */
  leadSource: string;
}

export const PRIORITY_BY_SEVERITY: Readonly<Record<string, string>> = { critical: 'High', major: 'High', minor: 'Medium', warning: 'Medium', info: 'Low' };

/** msg.alert when it has the threshold node's shape, else a sentence saying what is wrong. */
export function readAlert(value: unknown): Alert | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'msg.alert is missing (the ready-made mapping needs an alert from iot-threshold)';
  const alert = value as Partial<Alert>;
  if (typeof alert.id !== 'string' || alert.id === '') return 'msg.alert.id is missing: it identifies the alert (and its Case)';
  if (alert.state !== 'raised' && alert.state !== 'cleared') return 'msg.alert.state must be "raised" or "cleared"';
  return alert as Alert;
}

/** "temperature above 80 on pump-17": the alert's text without the reading and the new severity. */
export function subjectOf(alert: Alert): string {
  if (alert.text) return alert.text.replace(/ \([^()]*\)(, now \w+)?$/, '');
  const on = alert.key ? ` on ${alert.key}` : '';
  return `${alert.reading ?? 'reading'} ${alert.rule ?? 'alert'} ${formatThreshold(alert.threshold)}${on}`.trim();
}

/** What the support agent reads: what happened, the reading, the rule, the times, the device. */
export function describeAlert(alert: Alert, device: DeviceIdentity | undefined): string {
  const lines = [alert.text ?? subjectOf(alert), ''];
  const deviceId = device?.id ?? alert.key;
  if (deviceId) lines.push(`Device: ${deviceId}${device?.gateway ? ` (through gateway ${device.gateway})` : ''}`);
  if (alert.reading !== undefined || alert.value !== undefined) {
    const rule = alert.rule ? `, rule: ${alert.rule}` : '';
    lines.push(`Reading: ${alert.reading ?? 'value'} = ${formatValue(alert.value)} (threshold ${formatThreshold(alert.threshold)}${rule})`);
  }
  if (alert.severity) lines.push(`Severity: ${alert.severity}${alert.previousSeverity ? ` (was ${alert.previousSeverity})` : ''}`);
  if (alert.since !== undefined) lines.push(`Raised: ${formatTime(alert.since)}`);
  if (alert.state === 'cleared') lines.push(`Cleared: ${formatTime(alert.at)}${alert.reason ? ` (${alert.reason})` : ''}`);
  else if (alert.change && alert.change !== 'raised') lines.push(`${capitalise(alert.change)}: ${formatTime(alert.at)}`);
  lines.push(`Alert id: ${alert.id}`);
  return lines.join('\n');
}

/** The device metadata's non-empty texts under their record or form field names. */
function fromMeta(device: DeviceIdentity | undefined, names: ReadonlyArray<readonly [metaKey: string, field: string]>): Record<string, string> {
  const meta = device?.meta ?? {};
  const found: Record<string, string> = {};
  for (const [metaKey, field] of names) {
    if (typeof meta[metaKey] === 'string' && meta[metaKey] !== '') found[field] = meta[metaKey] as string;
  }
  return found;
}

/** Salesforce ids of the device's Asset, Account and Contact. */
const LINKS = [
  ['assetId', 'AssetId'],
  ['accountId', 'AccountId'],
  ['contactId', 'ContactId'],
] as const;

/** Who to answer on a Web-to-Case form. */
const WEB_CONTACT = [
  ['contactName', 'name'],
  ['contactEmail', 'email'],
  ['contactPhone', 'phone'],
  ['company', 'company'],
] as const;

export function caseFromAlert(alert: Alert, device: DeviceIdentity | undefined, options: MappingOptions): Record<string, unknown> {
  const record: Record<string, unknown> = { Description: describeAlert(alert, device), Origin: options.origin, ...fromMeta(device, LINKS) };
  if (alert.state === 'raised' && alert.change !== 'deescalated') {
    // A cleared or de-escalated alert's threshold is a clear level ("back below 85"): the subject
    // and priority of the raise (or of the escalation) stay, and the description tells the rest.
    record.Subject = subjectOf(alert);
    const priority = PRIORITY_BY_SEVERITY[alert.severity ?? ''];
    if (priority) record.Priority = priority;
  } else if (options.closeOnClear) {
    record.Status = 'Closed';
  }
  if (options.externalIdField) record[options.externalIdField] = alert.id;
  return record;
}

export function leadFromAlert(alert: Alert, device: DeviceIdentity | undefined, options: MappingOptions): Record<string, unknown> {
  const meta = device?.meta ?? {};
  const text = (key: string): string | undefined => (typeof meta[key] === 'string' && meta[key] !== '' ? (meta[key] as string) : undefined);
  const deviceId = device?.id ?? alert.key ?? 'device';
  const record: Record<string, unknown> = {
    LastName: text('contactLastName') ?? text('contactName') ?? deviceId,
    Company: text('company') ?? text('accountName') ?? deviceId,
    Description: describeAlert(alert, device),
    LeadSource: options.leadSource,
  };
  if (text('contactFirstName')) record.FirstName = text('contactFirstName');
  if (text('contactEmail')) record.Email = text('contactEmail');
  if (text('contactPhone')) record.Phone = text('contactPhone');
  if (options.externalIdField) record[options.externalIdField] = alert.id;
  return record;
}

/** A Web-to-Case form: the standard form field names (custom fields go by their 15-character id). */
export function webToCaseFromAlert(alert: Alert, device: DeviceIdentity | undefined): Record<string, string> {
  const form: Record<string, string> = { subject: subjectOf(alert), description: describeAlert(alert, device), ...fromMeta(device, WEB_CONTACT) };
  const priority = PRIORITY_BY_SEVERITY[alert.severity ?? ''];
  if (priority && alert.state === 'raised') form.priority = priority;
  return form;
}

/** A Web-to-Lead form: last_name and company are required by Salesforce. */
export function webToLeadFromAlert(alert: Alert, device: DeviceIdentity | undefined, options: Pick<MappingOptions, 'leadSource'>): Record<string, string> {
  const lead = leadFromAlert(alert, device, { ...options, origin: '', closeOnClear: false });
  const form: Record<string, string> = { last_name: String(lead.LastName), company: String(lead.Company), description: String(lead.Description), lead_source: options.leadSource };
  if (lead.FirstName) form.first_name = String(lead.FirstName);
  if (lead.Email) form.email = String(lead.Email);
  if (lead.Phone) form.phone = String(lead.Phone);
  return form;
}

/**
 * The most a record takes as JSON. Salesforce's longest text field holds 131,072 characters; a
 * record many times that is a mistake (a payload passed whole), not a Case.
 */
export const MAX_RECORD_LENGTH = 1_048_576;

/** Why a record cannot be sent at all (too deep, too large, not JSON), or undefined. */
export function recordProblem(record: Record<string, unknown>): { code: string; message: string } | undefined {
  const shape = checkShape(record, DEFAULT_PARSE_LIMITS);
  if (shape) return { code: shape.code, message: `the record: ${shape.message}` };
  let text: string;
  try {
    text = JSON.stringify(record);
  } catch (err) {
    return { code: 'not_serializable', message: `the record cannot be sent as JSON: ${(err as Error).message}` };
  }
  if (text.length > MAX_RECORD_LENGTH) return { code: 'too_large', message: `the record is ${text.length} characters as JSON, more than the ${MAX_RECORD_LENGTH} a record may take` };
  return undefined;
}

/**
 * The external id as it goes into a URL path (`.../sobjects/Case/IoT_Alert_Id__c/{value}`):
 * jsforce puts it there as it is, so a "/", "#", "?" or space would change the request.
 */
export function externalIdForPath(value: unknown): string {
  return encodeURIComponent(String(value));
}

/** The value an upsert matches on: a non-empty string or a finite number, else undefined. */
export function externalIdValue(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function formatThreshold(threshold: unknown): string {
  if (threshold !== null && typeof threshold === 'object' && 'low' in threshold && 'high' in threshold) {
    const band = threshold as { low: unknown; high: unknown };
    return `${formatValue(band.low)} to ${formatValue(band.high)}`;
  }
  return formatValue(threshold);
}

function formatValue(value: unknown): string {
  if (value === undefined || value === null) return '?';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function formatTime(ms: number | undefined): string {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : '?';
}

function capitalise(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}
