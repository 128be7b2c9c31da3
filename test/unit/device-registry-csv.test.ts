/**
 * The registry's strict RFC 4180 reader: what it accepts (quotes, doubled quotes, line breaks in
 * quoted fields, CRLF and LF, a BOM) and what it refuses, naming the line.
 */
import { describe, expect, it } from 'vitest';
import { parseCsv, parseCsvRecords } from '../../nodes/device-registry/csv';

describe('parseCsvRecords', () => {
  it.each([
    ['a,b\r\n1,2\r\n', [['a', 'b'], ['1', '2']]],
    ['a,b\n1,2', [['a', 'b'], ['1', '2']]],
    ['\uFEFFa,b\n1,2\n', [['a', 'b'], ['1', '2']]],
    ['a,b\n,\n', [['a', 'b'], ['', '']]],
    ['a\n"x, y"\n', [['a'], ['x, y']]],
    ['a\n"say ""hi"""\n', [['a'], ['say "hi"']]],
    ['a\n""\n', [['a'], ['']]],
    ['a,b\n"line 1\nline 2",z\n', [['a', 'b'], ['line 1\nline 2', 'z']]],
    ['a,b\r\n"x\r\ny",2\r\n', [['a', 'b'], ['x\r\ny', '2']]],
    ['a,b,c\n1,,3\n', [['a', 'b', 'c'], ['1', '', '3']]],
  ])('reads %j', (text, expected) => {
    expect(parseCsvRecords(text).map((r) => r.fields)).toEqual(expected);
  });

  it('tells the line each record starts on, counting line breaks inside quotes', () => {
    const records = parseCsvRecords('id,key\n"a\nb",1\nc,2\n');
    expect(records.map((r) => r.line)).toEqual([1, 2, 4]);
  });

  it.each([
    ['a\n"open\n', /line 2: a quoted field is never closed/],
    ['a\nx"y\n', /line 2: a quote inside an unquoted field/],
    ['a\n"x"y\n', /line 2: after a closing quote comes a comma/],
    ['a,b\n1\r2\n', /line 2: a carriage return/],
  ])('refuses %j', (text, error) => {
    expect(() => parseCsvRecords(text)).toThrow(error);
  });
});

describe('parseCsv', () => {
  it('gives the header and the rows', () => {
    expect(parseCsv('id, enabled\nd1,true\n')).toEqual({ header: ['id', 'enabled'], rows: [{ line: 2, fields: ['d1', 'true'] }] });
  });

  it.each([
    ['', /line 1: the file is empty/],
    ['id,id\n', /line 1: column id appears twice/],
    ['id,,x\n', /line 1: a column has no name/],
    ['id,x\nd1\n', /line 2: 1 field\(s\), the header has 2/],
    ['id,x\nd1,1\n\nd2,2\n', /line 3: 1 field/],
    ['id,x\nd1,1,extra\n', /line 2: 3 field/],
  ])('refuses %j', (text, error) => {
    expect(() => parseCsv(text)).toThrow(error);
  });

  it('keeps every line of a large file', () => {
    const text = ['id,enabled,meta.assetId', ...Array.from({ length: 10_000 }, (_, i) => `device-${i},true,"02i${i}"`)].join('\n');
    const table = parseCsv(text);
    expect(table.rows.length).toBe(10_000);
    expect(table.rows[9_999]).toEqual({ line: 10_001, fields: ['device-9999', 'true', '02i9999'] });
  });
});
