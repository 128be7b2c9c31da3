/**
 * From messages to line protocol (nodes/timeseries-out/mapping.ts, timestamps.ts): measurement,
 * tags, fields, the float-by-default rule, integer fields by name, text handling, timestamps in
 * every precision, gateway batches, ready points, and every kind of bad input.
 */
import { describe, expect, it } from 'vitest';
import { PointMapper, type MappingOptions, type MessageParts } from '../../nodes/timeseries-out/mapping';
import { fromMilliseconds, toPrecision } from '../../nodes/timeseries-out/timestamps';

const ARRIVAL = 1_795_300_000_123;

const options: MappingOptions = {
  precision: 'ms',
  timeUnit: 'ms',
  integerFields: new Set(['count', 'rssi']),
  text: 'skip',
  valueField: 'value',
  tagKeys: new Set(['sensor']),
  timeField: 'timestamp',
  arrivalTime: false,
};

/** `arrival` null: no arrival time may stand in for a missing time. */
function map(parts: Partial<MessageParts>, overrides: Partial<MappingOptions> = {}, arrival: number | null = ARRIVAL) {
  return new PointMapper({ ...options, ...overrides }).map({ measurement: 'pumps', readings: undefined, tags: [], time: undefined, ...parts }, arrival ?? undefined);
}

const codes = (parts: Partial<MessageParts>, overrides: Partial<MappingOptions> = {}) => map(parts, overrides).rejections.map((r) => r.code);

describe('timestamps', () => {
  it.each([
    // value, unit, precision, expected
    [1_795_300_000_123, 'ms', 'ms', '1795300000123'],
    [1_795_300_000_123, 'ms', 's', '1795300000'],
    [1_795_300_000_123, 'ms', 'us', '1795300000123000'],
    [1_795_300_000_123, 'ms', 'ns', '1795300000123000000'],
    [1_795_300_000_123.456, 'ms', 'us', '1795300000123456'],
    [1_795_300_000, 's', 'ms', '1795300000000'],
    [1_795_300_000.5, 's', 'ns', '1795300000500000000'],
    [1_795_300_000_123_456, 'us', 'ms', '1795300000123'],
    ['1795300000123456789', 'ns', 'ns', '1795300000123456789'],
    ['1795300000123456789', 'ns', 'us', '1795300000123456'],
    [1_795_300_000_123_456_789n, 'ns', 'ms', '1795300000123'],
    ['2026-11-22T08:26:40.123456789Z', 'ms', 'ns', '1795336000123456789'],
    ['2026-11-22T08:26:40.123456789Z', 'ms', 'us', '1795336000123456'],
    ['2026-11-22T10:26:40.1+02:00', 'ms', 'ms', '1795336000100'],
    ['2026-11-22T08:26:40Z', 'ms', 's', '1795336000'],
    [new Date(1_795_300_000_123), 'ms', 'ns', '1795300000123000000'],
    [-1500, 'ms', 's', '-2'],
  ] as const)('%s (%s) in %s is %s', (value, unit, precision, expected) => {
    expect(toPrecision(value, unit, precision)).toBe(expected);
  });

  it.each([[Number.NaN], [Infinity], ['soon'], ['12:00'], ['May 5'], [''], [{}], [true], [new Date('nope')], ['99999999999999999999']])('%s is no time', (value) => {
    expect(toPrecision(value, 'ns', 'ns')).toBeUndefined();
  });

  it('writes arrival times without losing digits', () => {
    expect(fromMilliseconds(ARRIVAL, 'ns')).toBe('1795300000123000000');
    expect(fromMilliseconds(ARRIVAL, 's')).toBe('1795300000');
  });

  it('writes every millisecond as the number itself, within a second, across seconds and back in time', () => {
    const times = [0, 7, 999, 1000, 1001, 59_999, ARRIVAL - 1001, ARRIVAL - 1, ARRIVAL, ARRIVAL + 877, ARRIVAL + 1000, ARRIVAL - 5000, 1e15 - 1, 1e15, -1, -1500, 2.5];
    for (let ms = ARRIVAL - 2100; ms < ARRIVAL + 2100; ms += 7) times.push(ms);
    for (const ms of times) {
      expect(fromMilliseconds(ms, 'ms')).toBe(String(ms));
      expect(fromMilliseconds(ms, 'us')).toBe(`${ms}000`);
    }
  });
});

describe('one reading', () => {
  it('writes every number as a float by default, integers only by name', () => {
    const { lines, rejections } = map({ readings: { temperature: 21, humidity: 40.5, count: 3, rssi: -70 } });
    expect(rejections).toEqual([]);
    expect(lines).toEqual(['pumps count=3i,humidity=40.5,rssi=-70i,temperature=21 1795300000123']);
  });

  it('keeps 21 followed by 21.5 the same type: both floats', () => {
    expect(map({ readings: { t: 21 } }).lines[0]).toMatch(/ t=21 /);
    expect(map({ readings: { t: 21.5 } }).lines[0]).toMatch(/ t=21\.5 /);
  });

  it('writes booleans, and text only as asked', () => {
    const readings = { on: true, state: 'running', level: ' 7.5 ', t: 1 };
    expect(map({ readings }).lines[0]).toBe('pumps on=T,t=1 1795300000123');
    expect(map({ readings }, { text: 'numeric' }).lines[0]).toBe('pumps level=7.5,on=T,t=1 1795300000123');
    expect(map({ readings }, { text: 'string' }).lines[0]).toBe('pumps level=" 7.5 ",on=T,state="running",t=1 1795300000123');
  });

  it('leaves out null and nested values', () => {
    expect(map({ readings: { t: 1, missing: null, location: { lat: 1 }, list: [1] } }).lines).toEqual(['pumps t=1 1795300000123']);
  });

  it('escapes names and values with the client library', () => {
    const { lines } = map({ measurement: 'pump room', readings: { 'temp c': 1, note: 'say "hi"' }, tags: ['site', 'a,b=c d'] }, { text: 'string' });
    expect(lines).toEqual(['pump\\ room,site=a\\,b\\=c\\ d note="say \\"hi\\"",temp\\ c=1 1795300000123']);
  });

  it('never lets a value start a line of its own: line breaks in text are escaped, in fields as in tags', () => {
    const crafted = 'x\nreadings,device=pump-02 temperature=99 1795300000000\r\nnext';
    const { lines, rejections } = map({ readings: { note: crafted, t: 1 }, tags: ['device', 'pump-01', 'site', 'a\nb'] }, { text: 'string' });
    expect(rejections).toEqual([]);
    // As the library writes a tag's line break (\n); in a quoted field it doubles the backslash.
    expect(lines).toEqual(['pumps,device=pump-01,site=a\\nb note="x\\\\nreadings,device=pump-02 temperature=99 1795300000000\\\\r\\\\nnext",t=1 1795300000123']);
    expect(lines[0]).not.toMatch(/[\n\r]/);
  });

  it('adds message tags, reading keys as tags, and leaves empty tags out', () => {
    const { lines } = map({
      readings: { sensor: 't-1', temperature: 20.5 },
      tags: ['device', 'gw-1', 'gateway', undefined, 'topic', '', 'floor', 3, 'ok', true],
    });
    expect(lines).toEqual(['pumps,device=gw-1,floor=3,ok=true,sensor=t-1 temperature=20.5 1795300000123']);
  });

  it('takes a bare value under the value field name', () => {
    expect(map({ readings: 42 }).lines).toEqual(['pumps value=42 1795300000123']);
    expect(map({ readings: false }).lines).toEqual(['pumps value=F 1795300000123']);
    expect(map({ readings: 'warm' }, { text: 'string' }).lines).toEqual(['pumps value="warm" 1795300000123']);
  });

  it("uses the reading's time, else the message's, else the arrival time, in the precision", () => {
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000_000 } }).lines[0]).toBe('pumps t=1 1795300000000');
    expect(map({ readings: { t: 1 }, time: '2026-11-22T08:26:40.5Z' }).lines[0]).toBe('pumps t=1 1795336000500');
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000 }, time: 5 }, { timeUnit: 's', precision: 'ns' }).lines[0]).toBe('pumps t=1 1795300000000000000');
    expect(map({ readings: { t: 1, timestamp: null }, time: 7 }).lines[0]).toBe('pumps t=1 7');
    // A device's own time in seconds, at the default unit (ms): told apart by size, as the edge does.
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000 } }).lines[0]).toBe('pumps t=1 1795300000000');
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000.5 } }).lines[0]).toBe('pumps t=1 1795300000500');
    // A unit chosen in the node is taken as it is.
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000 } }, { timeUnit: 's' }).lines[0]).toBe('pumps t=1 1795300000000');
    expect(map({ readings: { t: 1, timestamp: 9 } }, { timeField: '' }).lines[0]).toBe('pumps t=1,timestamp=9 1795300000123');
  });

  it("never writes the reading's time as a value, and with the arrival time leaves it out", () => {
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000_000 }, time: 7 }).lines).toEqual(['pumps t=1 1795300000000']);
    expect(map({ readings: { t: 1, timestamp: 1_795_300_000_000 }, time: 7 }, { arrivalTime: true }).lines).toEqual(['pumps t=1 1795300000123']);
    expect(map({ readings: [{ t: 1, timestamp: 5 }, { t: 2 }] }, { arrivalTime: true }).lines).toEqual(['pumps t=1 1795300000123', 'pumps t=2 1795300000123']);
  });

  it('refuses a reading without a time when there is no arrival time to stand in (a delivered message), and only that one', () => {
    const result = map({ readings: [{ t: 1, timestamp: 1_795_300_000_000 }, { t: 2 }] }, {}, null);
    expect(result.lines).toEqual(['pumps t=1 1795300000000']);
    expect(result.rejections).toEqual([{ code: 'no_timestamp', message: expect.stringMatching(/^reading 1: the reading has no time of its own \(timestamp\) and the message none/), reading: 1 }]);
    expect(map({ readings: { t: 2 }, time: 6 }, {}, null).lines).toEqual(['pumps t=2 6']);
    expect(map({ points: [{ fields: { v: 1 } }] }, {}, null).rejections.map((r) => r.code)).toEqual(['no_timestamp']);
  });
});

describe('mapping message after message', () => {
  it('empties and refills the result it is given, so that nothing of the last message stays', () => {
    const mapper = new PointMapper(options);
    const into = { lines: ['stale'], rejections: [{ code: 'old', message: 'old' }] };
    const first = mapper.map({ measurement: 'm', readings: [{ v: 1 }, { v: Number.NaN }], tags: [], time: 5 }, ARRIVAL, into);
    expect(first).toBe(into);
    expect(into.lines).toEqual(['m v=1 5']);
    expect(into.rejections.map((r) => r.code)).toEqual(['not_finite']);
    mapper.map({ measurement: 'm', readings: { v: 2 }, tags: [], time: 6 }, ARRIVAL, into);
    expect(into).toEqual({ lines: ['m v=2 6'], rejections: [] });
  });
});

describe('a gateway batch', () => {
  it('becomes one point per reading, and a bad reading leaves the others alone', () => {
    const { lines, rejections } = map({
      readings: [
        { sensor: 't-1', temperature: 20.1, timestamp: 1_795_300_000_000 },
        { sensor: 't-2', temperature: Number.NaN },
        { sensor: 't-3', temperature: 'n/a' },
        7,
        { sensor: 't-4', temperature: 19.9, timestamp: 1_795_300_000_001 },
      ],
      tags: ['gateway', 'gw-9'],
    });
    expect(lines).toEqual(['pumps,gateway=gw-9,sensor=t-1 temperature=20.1 1795300000000', 'pumps,gateway=gw-9,sensor=t-4 temperature=19.9 1795300000001']);
    expect(rejections).toEqual([
      { code: 'not_finite', message: 'reading 1: temperature is NaN: only finite numbers can be written', reading: 1 },
      { code: 'no_fields', message: 'reading 2: the reading has no value to write (numbers and booleans are written; text is left out)', reading: 2 },
      { code: 'wrong_type', message: 'reading 3: is 7, not an object of values', reading: 3 },
    ]);
  });
});

describe('ready points (msg.points)', () => {
  it('writes line protocol as it is and builds objects with the client library', () => {
    const { lines, rejections } = map({
      readings: { ignored: 1 },
      points: [
        'raw,a=b v=1 1795300000000',
        'two v=1 1\nthree v=2 2\n',
        { measurement: 'm', tags: { site: 'x' }, fields: { v: 2, note: 'text', count: 5 }, timestamp: 1_795_300_000_000 },
        { fields: { v: 3 } },
        { fields: 'v=4' },
        42,
      ],
    });
    expect(lines).toEqual([
      'raw,a=b v=1 1795300000000',
      'two v=1 1',
      'three v=2 2',
      'm,site=x count=5i,note="text",v=2 1795300000000',
      'pumps v=3 1795300000123',
    ]);
    expect(rejections.map((r) => [r.code, r.reading])).toEqual([
      ['bad_point', 4],
      ['bad_point', 5],
    ]);
  });

  it('refuses msg.points that is not an array', () => {
    expect(codes({ points: { v: 1 } })).toEqual(['bad_point']);
    expect(codes({ points: [] })).toEqual(['empty_reading']);
  });
});

describe('bad input', () => {
  it.each([
    ['no reading at all', { readings: undefined }, {}, 'missing_value'],
    ['null', { readings: null }, {}, 'missing_value'],
    ['an empty object', { readings: {} }, {}, 'empty_reading'],
    ['an empty batch', { readings: [] }, {}, 'empty_reading'],
    ['no writable field', { readings: { state: 'on', location: { lat: 1 } } }, {}, 'no_fields'],
    ['NaN', { readings: { t: Number.NaN } }, {}, 'not_finite'],
    ['Infinity', { readings: { t: -Infinity } }, {}, 'not_finite'],
    ['Infinity as numeric text', { readings: { t: 'Infinity' } }, { text: 'numeric' }, 'not_finite'],
    ['a fraction in an integer field', { readings: { count: 2.5 } }, {}, 'not_integer'],
    ['a bare number without a field name', { readings: 42 }, { valueField: '' }, 'wrong_type'],
    ['bare text when text is left out', { readings: 'warm' }, {}, 'no_fields'],
    ['a Buffer', { readings: Buffer.from('x') }, {}, 'wrong_type'],
    ['a timestamp that is no time', { readings: { t: 1 }, time: 'yesterday' }, {}, 'bad_timestamp'],
    ["a reading's timestamp that is no time", { readings: { t: 1, timestamp: 'later' } }, {}, 'bad_timestamp'],
    ['an empty measurement', { readings: { t: 1 }, measurement: '' }, {}, 'bad_measurement'],
    ['a measurement that is no text', { readings: { t: 1 }, measurement: 5 }, {}, 'bad_measurement'],
    ['an object as tag value', { readings: { t: 1 }, tags: ['site', { a: 1 }] }, {}, 'bad_tag'],
    ['a tag value ending in a backslash', { readings: { t: 1 }, tags: ['site', 'a\\'] }, {}, 'bad_name'],
    ['a field name ending in a backslash', { readings: { 't\\': 1 } }, {}, 'bad_name'],
    ['a point longer than a database takes', { readings: { t: 1, note: 'x'.repeat(1_100_000) } }, { text: 'string' }, 'too_large'],
    ['a line of ready text as long', { points: [`m v="${'x'.repeat(1_100_000)}" 1`] }, {}, 'too_large'],
  ] as Array<[string, Partial<MessageParts>, Partial<MappingOptions>, string]>)('%s: %s', (_what, parts, overrides, code) => {
    const result = map(parts, overrides);
    expect(result.lines).toEqual([]);
    expect(result.rejections.map((r) => r.code)).toEqual([code]);
    expect(result.rejections[0].message.length).toBeGreaterThan(10);
  });
});
