/**
 * A small SOQL: enough for tests and the CRM page to find records.
 *
 *   SELECT Id, Subject FROM Case WHERE Priority = 'High' AND IsClosed = false
 *     ORDER BY CreatedDate DESC LIMIT 10
 *   SELECT COUNT() FROM Case WHERE IoT_Alert_Id__c IN ('a', 'b')
 *
 * Conditions are joined with AND; operators =, !=, <>, <, <=, >, >=, LIKE and IN. Text
 * comparisons ignore case, as SOQL's do.
 */

export type Literal = string | number | boolean | null;

export interface Condition {
  field: string;
  op: '=' | '!=' | '<' | '<=' | '>' | '>=' | 'LIKE' | 'IN';
  value: Literal | Literal[];
}

export interface SoqlQuery {
  /** Empty for SELECT COUNT(). */
  fields: string[];
  count: boolean;
  object: string;
  where: Condition[];
  orderBy?: { field: string; descending: boolean };
  limit?: number;
}

export class SoqlError extends Error {}

const TOKEN = /\s*(?:('(?:[^'\\]|\\.)*')|(\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2}))|(-?\d+(?:\.\d+)?)|(<=|>=|!=|<>|[=<>(),])|([A-Za-z_][\w.]*))/y;

interface Token {
  kind: 'string' | 'number' | 'symbol' | 'word';
  text: string;
  value?: Literal;
}

function tokenise(soql: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  let at = 0;
  while (at < soql.length) {
    if (soql.slice(at).trim() === '') break;
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(soql);
    if (!m) throw new SoqlError(`unexpected token: '${soql.slice(at).trim().split(/\s/)[0]}'`);
    at = TOKEN.lastIndex;
    if (m[1] !== undefined) tokens.push({ kind: 'string', text: m[1], value: m[1].slice(1, -1).replace(/\\(.)/g, '$1') });
    else if (m[2] !== undefined) tokens.push({ kind: 'string', text: m[2], value: new Date(m[2]).toISOString() });
    else if (m[3] !== undefined) tokens.push({ kind: 'number', text: m[3], value: Number(m[3]) });
    else if (m[4] !== undefined) tokens.push({ kind: 'symbol', text: m[4] });
    else tokens.push({ kind: 'word', text: m[5] });
  }
  return tokens;
}

export function parseSoql(soql: string): SoqlQuery {
  const tokens = tokenise(soql);
  let i = 0;
  const peek = (): Token | undefined => tokens[i];
  const isWord = (word: string): boolean => peek()?.kind === 'word' && peek()?.text.toUpperCase() === word;
  const expect = (text: string): void => {
    const token = tokens[i++];
    if (!token || token.text.toUpperCase() !== text) throw new SoqlError(`expecting '${text}', found '${token?.text ?? 'end of query'}'`);
  };
  const word = (): string => {
    const token = tokens[i++];
    if (token?.kind !== 'word') throw new SoqlError(`expecting a name, found '${token?.text ?? 'end of query'}'`);
    return token.text;
  };
  const literal = (): Literal => {
    const token = tokens[i++];
    if (!token) throw new SoqlError('expecting a value, found end of query');
    if (token.kind === 'string' || token.kind === 'number') return token.value as Literal;
    const upper = token.text.toUpperCase();
    if (upper === 'TRUE') return true;
    if (upper === 'FALSE') return false;
    if (upper === 'NULL') return null;
    throw new SoqlError(`expecting a value, found '${token.text}'`);
  };

  expect('SELECT');
  const query: SoqlQuery = { fields: [], count: false, object: '', where: [] };
  if (isWord('COUNT') && tokens[i + 1]?.text === '(') {
    i += 2;
    expect(')');
    query.count = true;
  } else {
    query.fields.push(word());
    while (peek()?.text === ',') {
      i++;
      query.fields.push(word());
    }
  }
  expect('FROM');
  query.object = word();
  if (isWord('WHERE')) {
    i++;
    for (;;) {
      const field = word();
      const opToken = tokens[i++];
      const op = opToken?.text.toUpperCase();
      if (op === 'IN') {
        expect('(');
        const values = [literal()];
        while (peek()?.text === ',') {
          i++;
          values.push(literal());
        }
        expect(')');
        query.where.push({ field, op: 'IN', value: values });
      } else if (op && ['=', '!=', '<>', '<', '<=', '>', '>=', 'LIKE'].includes(op)) {
        query.where.push({ field, op: op === '<>' ? '!=' : (op as Condition['op']), value: literal() });
      } else {
        throw new SoqlError(`unexpected token: '${opToken?.text ?? 'end of query'}'`);
      }
      if (!isWord('AND')) break;
      i++;
    }
  }
  if (isWord('ORDER')) {
    i++;
    expect('BY');
    const field = word();
    let descending = false;
    if (isWord('ASC') || isWord('DESC')) descending = tokens[i++].text.toUpperCase() === 'DESC';
    query.orderBy = { field, descending };
  }
  if (isWord('LIMIT')) {
    i++;
    const limit = literal();
    if (typeof limit !== 'number' || limit < 0) throw new SoqlError('LIMIT needs a number');
    query.limit = limit;
  }
  if (i < tokens.length) throw new SoqlError(`unexpected token: '${tokens[i].text}'`);
  return query;
}

function compare(a: unknown, b: Literal): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a ?? '').toLowerCase().localeCompare(String(b ?? '').toLowerCase());
}

function like(value: unknown, pattern: Literal): boolean {
  const source = String(pattern ?? '')
    .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    .replace(/%/g, '.*')
    .replace(/_/g, '.');
  return new RegExp(`^${source}$`, 'is').test(String(value ?? ''));
}

export function matches(record: Record<string, unknown>, condition: Condition): boolean {
  const value = record[condition.field];
  const { op } = condition;
  if (op === 'IN') return (condition.value as Literal[]).some((v) => value !== undefined && value !== null && compare(value, v) === 0);
  const target = condition.value as Literal;
  if (target === null) {
    const empty = value === undefined || value === null;
    return op === '=' ? empty : op === '!=' ? !empty : false;
  }
  if (value === undefined || value === null) return op === '!=';
  switch (op) {
    case '=':
      return compare(value, target) === 0;
    case '!=':
      return compare(value, target) !== 0;
    case '<':
      return compare(value, target) < 0;
    case '<=':
      return compare(value, target) <= 0;
    case '>':
      return compare(value, target) > 0;
    case '>=':
      return compare(value, target) >= 0;
    default:
      return like(value, target);
  }
}

export function sortRecords(records: Array<Record<string, unknown>>, orderBy: SoqlQuery['orderBy']): void {
  if (!orderBy) return;
  const { field, descending } = orderBy;
  records.sort((a, b) => {
    const order = a[field] === b[field] ? 0 : a[field] === undefined || a[field] === null ? -1 : b[field] === undefined || b[field] === null ? 1 : compare(a[field], b[field] as Literal);
    return descending ? -order : order;
  });
}
