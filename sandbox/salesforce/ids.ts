/**
 * Salesforce record ids: a 3-character key prefix naming the object, 12 more case-sensitive
 * characters, and (in the 18-character form the API returns) a 3-character suffix that encodes
 * which of the first 15 characters are upper case, so the id survives case-insensitive systems.
 */

const SUFFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ID_SHAPE = /^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$/;

/** The 18-character form of a 15-character id. */
export function toId18(id15: string): string {
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let flags = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) flags |= 1 << i;
    }
    suffix += SUFFIX_ALPHABET[flags];
  }
  return id15 + suffix;
}

/** The 18-character id for a 15- or 18-character one, or undefined when it is not an id. */
export function normaliseId(id: string): string | undefined {
  if (!ID_SHAPE.test(id)) return undefined;
  const full = toId18(id.slice(0, 15));
  return id.length === 18 && id.toUpperCase() !== full.toUpperCase() ? undefined : full;
}

/** Makes new ids for one org: prefix, a 2-character pod, a reserved 0, and a base-62 counter. */
export class IdFactory {
  private next = 1;

  /** Ids already in use (from the records file) are never handed out again. */
  reserve(id: string): void {
    const counter = fromBase62(id.slice(6, 15));
    if (counter >= this.next) this.next = counter + 1;
  }

  create(prefix: string): string {
    return toId18(`${prefix}8d0${toBase62(this.next++, 9)}`);
  }
}

function toBase62(n: number, width: number): string {
  let text = '';
  for (let rest = n; rest > 0; rest = Math.floor(rest / 62)) text = BASE62[rest % 62] + text;
  return text.padStart(width, '0');
}

function fromBase62(text: string): number {
  let n = 0;
  for (const c of text) {
    const digit = BASE62.indexOf(c);
    if (digit < 0) return 0;
    n = n * 62 + digit;
  }
  return n;
}
