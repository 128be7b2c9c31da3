/**
 * The objects the sandbox org knows, their fields, and the checks Salesforce makes when a record
 * is saved, with the error codes and messages Salesforce uses for them. Field names are
 * case-insensitive on the API, as in Salesforce; records are kept under the canonical names.
 */
import { normaliseId } from './ids';

export type FieldType = 'id' | 'string' | 'textarea' | 'picklist' | 'reference' | 'email' | 'phone' | 'boolean' | 'double' | 'datetime' | 'url';

export interface FieldSpec {
  type: FieldType;
  /** How Salesforce names the field in messages ("Asset ID"). */
  label: string;
  length?: number;
  /** Must have a value on insert (not nillable and no default). */
  required?: boolean;
  defaultValue?: string | boolean;
  values?: string[];
  restricted?: boolean;
  referenceTo?: string[];
  externalId?: boolean;
  unique?: boolean;
  /** Set by Salesforce only (system fields, auto-numbers, formulas). */
  readOnly?: boolean;
  /** The name the field has on a Web-to-Case or Web-to-Lead form (a custom field's 15-character id). */
  webToName?: string;
}

export interface ObjectSpec {
  name: string;
  /** The first three characters of its record ids. */
  prefix: string;
  /** Platform events are published, not stored as records. */
  kind: 'record' | 'event';
  fields: Record<string, FieldSpec>;
  /** Object-level rules beyond single fields (an Asset needs an Account or a Contact). */
  rules?: Array<(record: Record<string, unknown>) => SaveError | undefined>;
}

/** One error of a save result, as Salesforce shapes it. */
export interface SaveError {
  statusCode: string;
  message: string;
  fields: string[];
}

/** A custom validation rule: a record whose field matches the pattern is refused with the message. */
export interface ValidationRule {
  object: string;
  field: string;
  pattern: string;
  message: string;
}

const SYSTEM_FIELDS: Record<string, FieldSpec> = {
  Id: { type: 'id', label: 'Record ID', readOnly: true },
  CreatedDate: { type: 'datetime', label: 'Created Date', readOnly: true },
  LastModifiedDate: { type: 'datetime', label: 'Last Modified Date', readOnly: true },
  SystemModstamp: { type: 'datetime', label: 'System Modstamp', readOnly: true },
  CreatedById: { type: 'reference', label: 'Created By ID', referenceTo: ['User'], readOnly: true },
  LastModifiedById: { type: 'reference', label: 'Last Modified By ID', referenceTo: ['User'], readOnly: true },
  IsDeleted: { type: 'boolean', label: 'Deleted', readOnly: true },
};

const text = (label: string, length = 255, extra: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'string', label, length, ...extra });
const lookup = (label: string, ...referenceTo: string[]): FieldSpec => ({ type: 'reference', label, referenceTo });
const alertIdField = (webToName: string): FieldSpec => text('IoT Alert ID', 255, { externalId: true, unique: true, webToName });
const deviceIdField = (webToName: string): FieldSpec => text('IoT Device ID', 255, { externalId: true, webToName });

function record(name: string, prefix: string, fields: Record<string, FieldSpec>, rules?: ObjectSpec['rules']): ObjectSpec {
  return { name, prefix, kind: 'record', fields: { ...SYSTEM_FIELDS, ...fields }, rules };
}

/** The standard objects the pack writes, with the custom fields its mappings use. */
export function defaultObjects(): ObjectSpec[] {
  return [
    record('Account', '001', {
      Name: text('Account Name', 255, { required: true }),
      Industry: { type: 'picklist', label: 'Industry', values: ['Energy', 'Manufacturing', 'Utilities', 'Transportation', 'Other'] },
      Phone: { type: 'phone', label: 'Account Phone', length: 40 },
    }),
    record('Contact', '003', {
      FirstName: text('First Name', 40),
      LastName: text('Last Name', 80, { required: true }),
      Email: { type: 'email', label: 'Email', length: 80 },
      Phone: { type: 'phone', label: 'Business Phone', length: 40 },
      AccountId: lookup('Account ID', 'Account'),
    }),
    record(
      'Asset',
      '02i',
      {
        Name: text('Asset Name', 255, { required: true }),
        SerialNumber: text('Serial Number', 80),
        Status: { type: 'picklist', label: 'Status', values: ['Purchased', 'Shipped', 'Installed', 'Registered', 'Obsolete'] },
        AccountId: lookup('Account ID', 'Account'),
        ContactId: lookup('Contact ID', 'Contact'),
        IoT_Device_Id__c: text('IoT Device ID', 255, { externalId: true, unique: true }),
        Last_Temperature__c: { type: 'double', label: 'Last Temperature' },
        Last_Battery__c: { type: 'double', label: 'Last Battery' },
        Last_Reported__c: { type: 'datetime', label: 'Last Reported' },
      },
      [(r) => (r.AccountId || r.ContactId ? undefined : { statusCode: 'FIELD_INTEGRITY_EXCEPTION', message: 'Every asset needs an account, a contact, or both.', fields: ['AccountId', 'ContactId'] })],
    ),
    record('Case', '500', {
      CaseNumber: text('Case Number', 30, { readOnly: true }),
      Subject: text('Subject', 255, { webToName: 'subject' }),
      Description: { type: 'textarea', label: 'Description', length: 32_000, webToName: 'description' },
      Status: { type: 'picklist', label: 'Status', values: ['New', 'Working', 'Escalated', 'Closed'], restricted: true, defaultValue: 'New', webToName: 'status' },
      Priority: { type: 'picklist', label: 'Priority', values: ['High', 'Medium', 'Low'], restricted: true, defaultValue: 'Medium', webToName: 'priority' },
      Origin: { type: 'picklist', label: 'Case Origin', values: ['Phone', 'Email', 'Web', 'IoT'] },
      Type: { type: 'picklist', label: 'Case Type', values: ['Problem', 'Question', 'Feature Request'], webToName: 'type' },
      Reason: { type: 'picklist', label: 'Case Reason', values: ['Equipment Complexity', 'Equipment Design', 'Performance', 'Breakdown', 'Installation', 'Other'], webToName: 'reason' },
      IsClosed: { type: 'boolean', label: 'Closed', readOnly: true },
      ClosedDate: { type: 'datetime', label: 'Closed Date', readOnly: true },
      AccountId: lookup('Account ID', 'Account'),
      AssetId: lookup('Asset ID', 'Asset'),
      ContactId: lookup('Contact ID', 'Contact'),
      SuppliedName: text('Web Name', 80, { webToName: 'name' }),
      SuppliedEmail: { type: 'email', label: 'Web Email', length: 80, webToName: 'email' },
      SuppliedPhone: text('Web Phone', 40, { webToName: 'phone' }),
      SuppliedCompany: text('Web Company', 80, { webToName: 'company' }),
      IoT_Alert_Id__c: alertIdField('00N8d00000IoTA1'),
      IoT_Device_Id__c: deviceIdField('00N8d00000IoTD1'),
      IoT_Analysis__c: { type: 'textarea', label: 'IoT Analysis', length: 32_000 },
    }),
    record('Lead', '00Q', {
      FirstName: text('First Name', 40, { webToName: 'first_name' }),
      LastName: text('Last Name', 80, { required: true, webToName: 'last_name' }),
      Company: text('Company', 255, { required: true, webToName: 'company' }),
      Title: text('Title', 128, { webToName: 'title' }),
      Email: { type: 'email', label: 'Email', length: 80, webToName: 'email' },
      Phone: { type: 'phone', label: 'Phone', length: 40, webToName: 'phone' },
      City: text('City', 40, { webToName: 'city' }),
      State: text('State/Province', 80, { webToName: 'state' }),
      Country: text('Country', 80, { webToName: 'country' }),
      Description: { type: 'textarea', label: 'Description', length: 32_000, webToName: 'description' },
      LeadSource: { type: 'picklist', label: 'Lead Source', values: ['Web', 'Phone Inquiry', 'Partner Referral', 'IoT', 'Other'], webToName: 'lead_source' },
      Status: { type: 'picklist', label: 'Lead Status', values: ['Open - Not Contacted', 'Working - Contacted', 'Closed - Converted', 'Closed - Not Converted'], restricted: true, defaultValue: 'Open - Not Contacted' },
      IoT_Alert_Id__c: alertIdField('00N8d00000IoTA2'),
      IoT_Device_Id__c: deviceIdField('00N8d00000IoTD2'),
    }),
    // A device's readings per window, as the Buffered pattern sends them instead of every reading.
    record('IoT_Device_Summary__c', 'a0S', {
      Name: text('Summary Name', 80, { required: true }),
      Summary_Id__c: text('Summary ID', 255, { externalId: true, unique: true }),
      Device_Id__c: text('Device ID'),
      Asset__c: lookup('Asset', 'Asset'),
      Window_Start__c: { type: 'datetime', label: 'Window Start' },
      Window_End__c: { type: 'datetime', label: 'Window End' },
      Readings__c: { type: 'double', label: 'Readings' },
      Temperature_Min__c: { type: 'double', label: 'Temperature Min' },
      Temperature_Max__c: { type: 'double', label: 'Temperature Max' },
      Temperature_Mean__c: { type: 'double', label: 'Temperature Mean' },
      Battery_Last__c: { type: 'double', label: 'Battery Last' },
    }),
    // A command for a device, made by an agent (or by the pack for an automatic action): the
    // pack carries it to the device and writes its life back to Status__c and Status_Time__c.
    record('IoT_Command__c', 'a0C', {
      Name: text('Command', 80, { required: true }),
      Command_Id__c: text('Command ID', 255, { externalId: true, unique: true }),
      Device__c: text('Device', 255, { required: true }),
      Arguments__c: { type: 'textarea', label: 'Arguments', length: 32_000 },
      Expires__c: { type: 'datetime', label: 'Expires' },
      Status__c: { type: 'picklist', label: 'Status', values: ['New', 'Queued', 'Sent', 'Delivered', 'Done', 'Failed', 'Expired'], restricted: true, defaultValue: 'New' },
      Status_Time__c: { type: 'datetime', label: 'Status Time' },
      Result__c: { type: 'textarea', label: 'Result', length: 32_000 },
      Case__c: lookup('Case', 'Case'),
    }),
    record('CaseComment', '00a', {
      ParentId: { type: 'reference', label: 'Parent ID', referenceTo: ['Case'], required: true },
      CommentBody: { type: 'textarea', label: 'Body', length: 4_000 },
      IsPublished: { type: 'boolean', label: 'Published', defaultValue: false },
    }),
    {
      name: 'IoT_Command__e',
      prefix: 'e01',
      kind: 'event',
      fields: {
        Command_Id__c: text('Command ID'),
        Device__c: text('Device'),
        Name__c: text('Command', 80),
        Arguments__c: { type: 'textarea', label: 'Arguments', length: 32_000 },
        Expires__c: { type: 'datetime', label: 'Expires' },
        Case__c: text('Case', 18),
        CreatedDate: SYSTEM_FIELDS.CreatedDate,
        ReplayId: { type: 'string', label: 'Replay ID', readOnly: true },
        EventUuid: { type: 'string', label: 'Event UUID', readOnly: true },
      },
    },
    {
      name: 'IoT_Alert__e',
      prefix: 'e00',
      kind: 'event',
      fields: {
        Alert_Id__c: text('Alert ID'),
        Device_Id__c: text('Device ID'),
        Reading__c: text('Reading'),
        Severity__c: text('Severity', 40),
        State__c: text('State', 40),
        Value__c: { type: 'double', label: 'Value' },
        Threshold__c: { type: 'double', label: 'Threshold' },
        Text__c: text('Text'),
        CreatedDate: SYSTEM_FIELDS.CreatedDate,
        ReplayId: { type: 'string', label: 'Replay ID', readOnly: true },
        EventUuid: { type: 'string', label: 'Event UUID', readOnly: true },
      },
    },
  ];
}

/** Objects by name, case-insensitive, with each object's fields likewise. */
export class Schema {
  private readonly objects = new Map<string, ObjectSpec>();
  private readonly fieldNames = new Map<string, Map<string, string>>();
  private readonly byPrefix = new Map<string, ObjectSpec>();

  constructor(
    objects: ObjectSpec[],
    private readonly rules: ValidationRule[] = [],
  ) {
    for (const spec of objects) {
      this.objects.set(spec.name.toLowerCase(), spec);
      this.byPrefix.set(spec.prefix, spec);
      this.fieldNames.set(spec.name, new Map(Object.keys(spec.fields).map((f) => [f.toLowerCase(), f])));
    }
  }

  object(name: string): ObjectSpec | undefined {
    return this.objects.get(name.toLowerCase());
  }

  objectOfId(id: string): ObjectSpec | undefined {
    return this.byPrefix.get(id.slice(0, 3));
  }

  /** The canonical name of a field, or undefined when the object has no such field. */
  field(spec: ObjectSpec, name: string): string | undefined {
    return this.fieldNames.get(spec.name)?.get(name.toLowerCase());
  }

  /** Fields that identify a record for upserts and lookups. */
  externalIdFields(spec: ObjectSpec): string[] {
    return Object.entries(spec.fields)
      .filter(([, f]) => f.externalId)
      .map(([name]) => name);
  }

  customRules(spec: ObjectSpec): ValidationRule[] {
    return this.rules.filter((r) => r.object.toLowerCase() === spec.name.toLowerCase());
  }
}

/**
 * The field names of a JSON body mapped to canonical ones. An unknown field fails the whole
 * request when Salesforce reads the body, before any record is looked at.
 */
export function canonicalFields(schema: Schema, spec: ObjectSpec, body: Record<string, unknown>): { fields: Record<string, unknown> } | { error: ApiError } {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) {
    if (name === 'attributes') continue;
    const canonical = schema.field(spec, name);
    if (!canonical) return { error: { errorCode: 'INVALID_FIELD', message: `No such column '${name}' on sobject of type ${spec.name}`, fields: [] } };
    fields[canonical] = value;
  }
  return { fields };
}

/** An error of a whole request, as the REST API answers it (in a JSON array). */
export interface ApiError {
  errorCode: string;
  message: string;
  fields?: string[];
}

export interface SaveContext {
  insert: boolean;
  /** Whether a record of these ids exists (for lookups). */
  exists(id: string): boolean;
  /** The id of another record holding this value in a unique field, if any. */
  holderOf(field: string, value: string): string | undefined;
}

/**
 * Checks the fields being written (and, on insert, the required ones), in the order Salesforce
 * reports them. `record` is the record as it would be saved; `written` the fields the caller set.
 */
export function validate(schema: Schema, spec: ObjectSpec, written: Record<string, unknown>, record: Record<string, unknown>, context: SaveContext): SaveError[] {
  const errors: SaveError[] = [];
  const readOnly = Object.keys(written).filter((f) => spec.fields[f]?.readOnly && f !== 'Id');
  if (readOnly.length > 0) {
    errors.push({
      statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
      message: `Unable to create/update fields: ${readOnly.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
      fields: readOnly,
    });
    return errors;
  }
  if (context.insert) {
    const missing = Object.entries(spec.fields)
      .filter(([name, f]) => f.required && (record[name] === undefined || record[name] === null || record[name] === ''))
      .map(([name]) => name);
    if (missing.length > 0) errors.push({ statusCode: 'REQUIRED_FIELD_MISSING', message: `Required fields are missing: [${missing.join(', ')}]`, fields: missing });
  }
  for (const [name, value] of Object.entries(written)) {
    const error = checkValue(schema, spec.fields[name], name, value, context);
    if (error) errors.push(error);
  }
  if (errors.length > 0) return errors;
  for (const rule of spec.rules ?? []) {
    const error = rule(record);
    if (error) return [error];
  }
  for (const rule of schema.customRules(spec)) {
    const value = record[rule.field];
    if (value !== undefined && value !== null && new RegExp(rule.pattern).test(String(value))) {
      return [{ statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: rule.message, fields: [rule.field] }];
    }
  }
  for (const [name, f] of Object.entries(spec.fields)) {
    const value = record[name];
    if (!f.unique || value === undefined || value === null || value === '') continue;
    const holder = context.holderOf(name, String(value));
    if (holder && holder !== record.Id) {
      return [{ statusCode: 'DUPLICATE_VALUE', message: `duplicate value found: ${name} duplicates value on record with id: ${holder}`, fields: [] }];
    }
  }
  return errors;
}

function checkValue(schema: Schema, field: FieldSpec, name: string, value: unknown, context: SaveContext): SaveError | undefined {
  if (value === null || value === undefined) return undefined;
  const wrongType = (): SaveError => ({ statusCode: 'INVALID_TYPE_ON_FIELD_IN_RECORD', message: `${field.label}: value not of required type: ${String(value)}`, fields: [name] });
  switch (field.type) {
    case 'boolean':
      return typeof value === 'boolean' ? undefined : wrongType();
    case 'double':
      return typeof value === 'number' || (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) ? undefined : wrongType();
    case 'datetime':
      return typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? undefined : wrongType();
    case 'reference': {
      const id = typeof value === 'string' ? normaliseId(value) : undefined;
      if (!id || !field.referenceTo?.some((target) => schema.object(target)?.prefix === id.slice(0, 3))) {
        return { statusCode: 'MALFORMED_ID', message: `${field.label}: id value of incorrect type: ${String(value)}`, fields: [name] };
      }
      return context.exists(id) ? undefined : { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: `${field.label}: invalid cross reference id`, fields: [name] };
    }
    default: {
      if (typeof value === 'object') return wrongType();
      const text = String(value);
      if (field.length !== undefined && text.length > field.length) {
        return { statusCode: 'STRING_TOO_LONG', message: `${field.label}: data value too large: ${text.slice(0, 40)}${text.length > 40 ? '...' : ''} (max length=${field.length})`, fields: [name] };
      }
      if (field.type === 'picklist' && field.restricted && !field.values?.includes(text)) {
        return { statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', message: `${field.label}: bad value for restricted picklist field: ${text}`, fields: [name] };
      }
      if (field.type === 'email' && text !== '' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(text)) {
        return { statusCode: 'INVALID_EMAIL_ADDRESS', message: `${field.label}: invalid email address: ${text}`, fields: [name] };
      }
      return undefined;
    }
  }
}
