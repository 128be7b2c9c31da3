/**
 * A small, strict RFC 4180 reader for registry files. Written here rather than taken from a CSV
 * package because the pack may have no more production dependencies (the flow library scorecard
 * allows six, and the pack uses six), and a registry needs only the RFC's plain rules.
 *
 * Strict means: a quote may only open a field or, doubled, stand inside a quoted one; after a
 * closing quote comes a comma or the end of the line; a quoted field must be closed; every
 * record has as many fields as the header. Lines end in CRLF or LF (files edited on Unix); a
 * byte-order mark and one final line break are allowed. Errors name the line.
 */

export class CsvError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export interface CsvTable {
  header: string[];
  /** Each record with the line it starts on. */
  rows: Array<{ line: number; fields: string[] }>;
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

/** Splits text into records of fields. */
export function parseCsvRecords(text: string): Array<{ line: number; fields: string[] }> {
  const records: Array<{ line: number; fields: string[] }> = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const end = text.length;
  while (i < end) {
    const startLine = line;
    const fields: string[] = [];
    for (;;) {
      let field: string;
      if (text.charCodeAt(i) === QUOTE) {
        // Quoted: runs to the next quote not followed by another quote.
        let value = '';
        let from = i + 1;
        for (;;) {
          const q = text.indexOf('"', from);
          if (q < 0) throw new CsvError('a quoted field is never closed', startLine);
          value += text.slice(from, q);
          if (text.charCodeAt(q + 1) === QUOTE) {
            value += '"';
            from = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
        for (let k = 0; k < value.length; k++) if (value.charCodeAt(k) === LF) line++;
        field = value;
        const next = text.charCodeAt(i);
        if (i < end && next !== COMMA && next !== LF && next !== CR) throw new CsvError('after a closing quote comes a comma or the end of the line', line);
      } else {
        let j = i;
        while (j < end) {
          const c = text.charCodeAt(j);
          if (c === COMMA || c === LF || c === CR) break;
          if (c === QUOTE) throw new CsvError('a quote inside an unquoted field (quote the whole field and double the quote)', line);
          j++;
        }
        field = text.slice(i, j);
        i = j;
      }
      fields.push(field);
      if (i >= end) break;
      const c = text.charCodeAt(i);
      if (c === COMMA) {
        i++;
        continue;
      }
      if (c === CR) {
        if (text.charCodeAt(i + 1) !== LF) throw new CsvError('a carriage return that is not part of a line break', line);
        i += 2;
      } else {
        i++;
      }
      line++;
      break;
    }
    records.push({ line: startLine, fields });
  }
  return records;
}

/** A header line and records with exactly as many fields each (so a blank line is an error). */
export function parseCsv(text: string): CsvTable {
  const records = parseCsvRecords(text);
  if (records.length === 0) throw new CsvError('the file is empty: a header line is needed', 1);
  const header = records[0].fields.map((h) => h.trim());
  const seen = new Set<string>();
  for (const name of header) {
    if (name === '') throw new CsvError('a column has no name', 1);
    if (seen.has(name)) throw new CsvError(`column ${name} appears twice`, 1);
    seen.add(name);
  }
  const rows = records.slice(1);
  for (const row of rows) {
    if (row.fields.length !== header.length) {
      throw new CsvError(`${row.fields.length} field(s), the header has ${header.length}`, row.line);
    }
  }
  return { header, rows };
}

/** Records as RFC 4180 text that parseCsv reads back: a field is quoted only when it holds a comma, a quote or a line break; lines end in CRLF. */
export function formatCsv(records: readonly (readonly string[])[]): string {
  const field = (value: string) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  return records.map((fields) => `${fields.map(field).join(',')}\r\n`).join('');
}
