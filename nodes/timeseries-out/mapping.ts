/**
 * From a message to points in line protocol. The client library's Point does the escaping; this
 * decides what becomes the measurement, the tags, the fields and the time, and rejects what
 * cannot be written, reading by reading, so that one bad reading of a gateway batch does not
 * stop the others.
 *
 * Numbers are written as floats unless their field is named as an integer field: a reading of 21
 * followed by 21.5 then never conflicts in the database.
 */
import { Point } from '@influxdata/influxdb-client';
import { readingTime } from '../shared/timestamp';
import { fromMilliseconds, toPrecision, type Precision } from './timestamps';

/** What to do with text values of a reading. */
export type TextValues = 'skip' | 'numeric' | 'string';

export interface MappingOptions {
  /** Precision of the timestamps written (the database connection's). */
  precision: Precision;
  /** What a numeric timestamp in a message counts. */
  timeUnit: Precision;
  /** Fields written as integers; every other number is a float. */
  integerFields: ReadonlySet<string>;
  /** skip: left out; numeric: numeric text becomes a number, other text is left out; string: string fields. */
  text: TextValues;
  /** Field name for a bare value (a number as payload); '' when bare values are refused. */
  valueField: string;
  /** Keys of a reading written as tags rather than fields. */
  tagKeys: ReadonlySet<string>;
  /** Key of a reading that holds its own time, never written as a field; '' for none. */
  timeField: string;
  /** Every point at the time the node received it, whatever the reading says. */
  arrivalTime: boolean;
}

/** The parts of one message, read from it by the node. */
export interface MessageParts {
  measurement: unknown;
  /** An object of values, an array of them (a gateway batch), or a bare value. */
  readings: unknown;
  /** Tags for every point of the message, as name, value, name, value… in order (later ones win). */
  tags: unknown[];
  /** The message's time (msg.timestamp, or a typed input), used when a reading has none; undefined for none. */
  time: unknown;
  /** Ready points (msg.points): line protocol text or { measurement, tags, fields, timestamp }. */
  points?: unknown;
}

export interface Rejection {
  /** Stable and machine-readable: not_finite, no_fields, bad_timestamp, ... */
  code: string;
  message: string;
  /** Which reading of a batch (0-based), when the message held several. */
  reading?: number;
  /** The line the database refused, for points it rejected. */
  line?: string;
}

export interface Mapped {
  lines: string[];
  rejections: Rejection[];
}

type Values = Record<string, unknown>;

class ReadingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class PointMapper {
  /** Ready points (msg.points) are built with their text as string fields, and no tag keys or time field. */
  private readonly readyOptions: MappingOptions;

  constructor(private readonly options: MappingOptions) {
    this.readyOptions = { ...options, text: 'string', tagKeys: new Set(), timeField: '' };
  }

  /**
   * Lines to write and readings refused for one message. `arrivalMs` stands in for missing times,
   * or is undefined when a reading without a time must be refused (a message that may be
   * delivered again would otherwise become a second point at another time). A caller that maps
   * message after message passes the same `into` each time (it is emptied first), which saves the
   * garbage collector work at high rates.
   */
  map(parts: MessageParts, arrivalMs: number | undefined, into?: Mapped): Mapped {
    const mapped: Mapped = into ?? { lines: [], rejections: [] };
    // pop() is a fast builtin; setting length to 0 is a runtime call, noticeable per message.
    while (mapped.lines.length > 0) mapped.lines.pop();
    while (mapped.rejections.length > 0) mapped.rejections.pop();
    if (parts.points !== undefined && parts.points !== null) {
      this.mapReadyPoints(parts, arrivalMs, mapped);
      return mapped;
    }
    let measurement: string;
    let messageTime: string | undefined;
    try {
      measurement = checkedMeasurement(parts.measurement);
      messageTime = this.messageTime(parts.time);
    } catch (err) {
      mapped.rejections.push(rejection(err));
      return mapped;
    }
    const readings = parts.readings;
    if (Array.isArray(readings)) {
      if (readings.length === 0) {
        mapped.rejections.push({ code: 'empty_reading', message: 'the batch of readings is empty' });
      }
      for (let i = 0; i < readings.length; i++) {
        const reading = readings[i] as unknown;
        try {
          if (!isValues(reading)) throw new ReadingError('wrong_type', `is ${describe(reading)}, not an object of values`);
          mapped.lines.push(this.line(this.options, measurement, parts.tags, reading, messageTime, arrivalMs));
        } catch (err) {
          mapped.rejections.push({ ...rejection(err, `reading ${i}: `), reading: i });
        }
      }
      return mapped;
    }
    try {
      mapped.lines.push(this.line(this.options, measurement, parts.tags, this.valuesOf(readings), messageTime, arrivalMs));
    } catch (err) {
      mapped.rejections.push(rejection(err));
    }
    return mapped;
  }

  private valuesOf(readings: unknown): Values {
    if (readings === undefined || readings === null) throw new ReadingError('missing_value', 'there is no reading (the value is empty)');
    if (isValues(readings)) return readings;
    if (typeof readings === 'number' || typeof readings === 'boolean' || typeof readings === 'string') {
      if (!this.options.valueField) throw new ReadingError('wrong_type', `the reading is ${describe(readings)} and no field name is set for a bare value`);
      return { [this.options.valueField]: readings };
    }
    throw new ReadingError('wrong_type', `the reading is ${describe(readings)}, not an object of values`);
  }

  /** A time in the configured precision; undefined when there is none. */
  private messageTime(time: unknown, what = 'the timestamp'): string | undefined {
    if (time === undefined || time === null) return undefined;
    const text = toPrecision(time, this.options.timeUnit, this.options.precision);
    if (text === undefined) throw new ReadingError('bad_timestamp', `${what} ${describe(time)} is not a time (${this.options.timeUnit} since the epoch, ISO 8601 or Date)`);
    return text;
  }

  /**
   * A reading's own time as the edge reads it: in milliseconds (the default unit) a number below
   * 10^11 is seconds, as iot-device-auth tells them apart, rather than a time in 1970.
   */
  private ownTime(value: unknown): unknown {
    if (typeof value !== 'number' || this.options.timeUnit !== 'ms' || !Number.isFinite(value) || value < 0) return value;
    return readingTime(value);
  }

  private line(options: MappingOptions, measurement: string, tags: readonly unknown[], values: Values, messageTime: string | undefined, arrivalMs: number | undefined): string {
    const { integerFields, tagKeys, timeField, text } = options;
    const point = new Point(measurement);
    for (let i = 0; i < tags.length; i += 2) addTag(point, tags[i] as string, tags[i + 1]);
    let fields = 0;
    let keys = 0;
    let time = messageTime;
    for (const key in values) {
      keys++;
      if (key === '') continue;
      const value = values[key];
      if (key === timeField) {
        // The reading's time is never a value of it.
        if (!options.arrivalTime) time = this.messageTime(this.ownTime(value), timeField) ?? time;
        continue;
      }
      if (tagKeys.has(key)) {
        addTag(point, key, value);
        continue;
      }
      switch (typeof value) {
        case 'number':
          addNumber(point, key, value, integerFields.has(key));
          fields++;
          break;
        case 'boolean':
          checkName(key, 'field name');
          point.booleanField(key, value);
          fields++;
          break;
        case 'bigint':
          checkName(key, 'field name');
          point.intField(key, value);
          fields++;
          break;
        case 'string':
          if (text === 'string') {
            checkName(key, 'field name');
            point.stringField(key, withoutLineBreaks(value));
            fields++;
          } else if (text === 'numeric') {
            const number = numericText(value);
            if (number !== undefined) {
              addNumber(point, key, number, integerFields.has(key));
              fields++;
            }
          }
          break;
        default:
        // null, undefined, nested objects and arrays are not values of this reading.
      }
    }
    if (fields === 0) {
      if (keys === 0) throw new ReadingError('empty_reading', 'the reading is an empty object');
      throw new ReadingError('no_fields', `the reading has no value to write (${describeText(text)})`);
    }
    if (options.arrivalTime || time === undefined) {
      if (arrivalMs === undefined) throw new ReadingError('no_timestamp', `the reading has no time of its own (${timeField || 'none is named'}) and the message none (msg.timestamp): a message that may be delivered again is never stamped with the time it is written; set msg.timestamp where the reading is accepted, or write the arrival time`);
      time = fromMilliseconds(arrivalMs, options.precision);
    }
    point.timestamp(time);
    return checkedLine(point.toLineProtocol() as string);
  }

  /** msg.points: lines are taken as they are; objects are built like readings, text as string fields. */
  private mapReadyPoints(parts: MessageParts, arrivalMs: number | undefined, mapped: Mapped): void {
    const points = parts.points;
    if (!Array.isArray(points)) {
      mapped.rejections.push({ code: 'bad_point', message: `msg.points is ${describe(points)}, not an array of points` });
      return;
    }
    if (points.length === 0) mapped.rejections.push({ code: 'empty_reading', message: 'msg.points is empty' });
    for (let i = 0; i < points.length; i++) {
      const point = points[i] as unknown;
      try {
        if (typeof point === 'string') {
          for (const line of point.split('\n')) if (line.trim() !== '') mapped.lines.push(checkedLine(line.trim()));
        } else if (isValues(point)) {
          mapped.lines.push(this.readyPoint(point, parts.measurement, arrivalMs));
        } else {
          throw new ReadingError('bad_point', `is ${describe(point)}, not line protocol text or { measurement, tags, fields, timestamp }`);
        }
      } catch (err) {
        mapped.rejections.push({ ...rejection(err, `point ${i}: `), reading: i });
      }
    }
  }

  private readyPoint(spec: Values, defaultMeasurement: unknown, arrivalMs: number | undefined): string {
    const measurement = checkedMeasurement(spec.measurement ?? defaultMeasurement);
    const fields = spec.fields;
    if (!isValues(fields)) throw new ReadingError('bad_point', `fields is ${describe(fields)}, not an object of values`);
    const tags = spec.tags;
    if (tags !== undefined && tags !== null && !isValues(tags)) throw new ReadingError('bad_point', `tags is ${describe(tags)}, not an object`);
    const time = this.messageTime(spec.timestamp);
    return this.line(this.readyOptions, measurement, tags ? Object.entries(tags).flat() : [], fields, time, arrivalMs);
  }
}

/**
 * The longest point written, in characters. No database takes more (InfluxDB keeps 64 KB of text
 * in a field, and refuses bodies over 25 MB by default); and points wait in memory for their batch.
 */
export const MAX_LINE_LENGTH = 1_048_576;

/**
 * A line as it waits for its batch: refused when too long, and flat. The line is built by
 * concatenation, which V8 keeps as a tree of the pieces (about 400 bytes for a 50-character line)
 * until something reads it; reading one character makes it one flat string (about 75 bytes).
 * Lines wait in memory for their batch, so this matters at high rates.
 */
function checkedLine(line: string): string {
  if (line.length > MAX_LINE_LENGTH) throw new ReadingError('too_large', `the point is ${line.length} characters of line protocol, more than the ${MAX_LINE_LENGTH} a database takes`);
  line.charCodeAt(0);
  return line;
}

function describeText(text: TextValues): string {
  if (text === 'skip') return 'numbers and booleans are written; text is left out';
  if (text === 'numeric') return 'numbers, numeric text and booleans are written';
  return 'numbers, booleans and text are written';
}

function isValues(value: unknown): value is Values {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date) && !Buffer.isBuffer(value);
}

function checkedMeasurement(value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new ReadingError('bad_measurement', `the measurement is ${describe(value)}: it must be non-empty text`);
  checkName(value, 'measurement');
  return value;
}

const LINE_BREAK = /[\r\n]/;
const LINE_BREAKS = /[\r\n]/g;

/**
 * Line protocol cannot carry a line break in a value: the client library escapes them in names
 * and tag values (as \n and \r) but leaves them raw in string fields, where a server that splits
 * the body at line breaks before it reads quotes (victoria-metrics) takes what follows for a
 * point of its own: a crafted text could write a point for another device. They are written as
 * the library writes them in tags, and the library then escapes the rest.
 */
function withoutLineBreaks(value: string): string {
  if (!LINE_BREAK.test(value)) return value;
  return value.replace(LINE_BREAKS, (c) => (c === '\n' ? '\\n' : '\\r'));
}

/** Line protocol cannot carry a name or tag value that ends in a backslash: it would escape what follows. */
function checkName(value: string, what: string): void {
  if (value.charCodeAt(value.length - 1) === 92) throw new ReadingError('bad_name', `${what} ${JSON.stringify(value)} ends with a backslash`);
}

function addTag(point: Point, name: string, value: unknown): void {
  if (value === undefined || value === null || value === '' || name === '') return;
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') text = String(value);
  else throw new ReadingError('bad_tag', `tag ${name} is ${describe(value)}: a tag value must be text, a number or a boolean`);
  checkName(name, 'tag name');
  checkName(text, `tag ${name}`);
  point.tag(name, text);
}

function addNumber(point: Point, key: string, value: number, integer: boolean): void {
  if (!Number.isFinite(value)) throw new ReadingError('not_finite', `${key} is ${value}: only finite numbers can be written`);
  checkName(key, 'field name');
  if (!integer) {
    point.floatField(key, value);
    return;
  }
  if (!Number.isSafeInteger(value)) throw new ReadingError('not_integer', `${key} is ${value}, but it is written as an integer field`);
  point.intField(key, value);
}

function numericText(value: string): number | undefined {
  const text = value.trim();
  if (text === '') return undefined;
  const number = Number(text);
  return Number.isNaN(number) ? undefined : number;
}

function rejection(err: unknown, prefix = ''): Rejection {
  if (err instanceof ReadingError) return { code: err.code, message: prefix + err.message };
  return { code: 'bad_point', message: prefix + (err as Error).message };
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return 'a Buffer';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return Number.isFinite(value.getTime()) ? 'a Date' : 'an invalid Date';
  return `a ${typeof value}`;
}
