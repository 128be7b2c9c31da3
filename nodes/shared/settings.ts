/**
 * Reading a node's settings from its editor properties, one way for the whole pack: one number
 * parser, one list parser, one table of units, and one way to fail, a SettingsError whose message
 * names the field and the value it holds, so that the user knows what to change.
 *
 * The editor saves what was typed (strings, mostly); an empty field means the default.
 */

/** A setting that cannot work, said in words a user can act on. */
export class SettingsError extends Error {}

/** Milliseconds per unit, for every duration a setting may be given in. */
export const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** Bytes per unit, for every size a setting may be given in. */
export const SIZE_UNITS_BYTES: Readonly<Record<string, number>> = { B: 1, KB: 1024, MB: 1024 * 1024, GB: 1024 * 1024 * 1024 };

export interface NumberRange {
  min?: number;
  max?: number;
  /** Whole numbers only. */
  integer?: boolean;
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
}

/** What a field must hold, as the user reads it: "a whole number from 1 to 100000". */
function expected({ min = -Infinity, max = Infinity, integer = false }: NumberRange): string {
  const kind = integer ? 'a whole number' : 'a number';
  if (min === -Infinity && max === Infinity) return kind;
  if (max === Infinity) return `${kind} of at least ${min}`;
  if (min === -Infinity) return `${kind} of at most ${max}`;
  return `${kind} from ${min} to ${max}`;
}

/** The number a field holds, or undefined when it is empty; a SettingsError when it is not one in range. */
export function optionalNumberSetting(value: unknown, field: string, range: NumberRange = {}): number | undefined {
  if (isEmpty(value)) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : NaN;
  const { min = -Infinity, max = Infinity, integer = false } = range;
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new SettingsError(`${field} must be ${expected(range)} (got ${JSON.stringify(value)})`);
  }
  return n;
}

/** The number a field holds, `fallback` when it is empty; a SettingsError when it is not one in range. */
export function numberSetting(value: unknown, fallback: number, field: string, range: NumberRange = {}): number {
  return optionalNumberSetting(value, field, range) ?? fallback;
}

/** One of the allowed words, `fallback` when empty; a SettingsError otherwise. */
export function choiceSetting<T extends string>(value: string | undefined, allowed: readonly T[], fallback: T, field: string): T {
  if (value === undefined || value === '') return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new SettingsError(`${field} must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`);
}

/** A list typed as "a, b c" or one per line: the names in it, without blanks. */
export function listSetting(text: string | undefined): string[] {
  return (text ?? '').split(/[\s,]+/).filter((item) => item !== '');
}

/** An amount in a unit of DURATION_UNITS_MS, in ms; a SettingsError for an unknown unit. */
export function durationSetting(amount: number, unit: string, field: string): number {
  const perUnit = DURATION_UNITS_MS[unit];
  if (perUnit === undefined) throw new SettingsError(`${field} must be in one of ${Object.keys(DURATION_UNITS_MS).join(', ')} (got ${JSON.stringify(unit)})`);
  return amount * perUnit;
}

/**
 * Reads settings so that every problem is found at once: a value that fails is noted and its
 * fallback used, and `check()` throws one SettingsError listing them all.
 */
export class SettingsReader {
  private readonly problems: string[] = [];

  /** Runs one read; a SettingsError in it is noted and `fallback` returned. */
  read<T>(reading: () => T, fallback: T): T {
    try {
      return reading();
    } catch (err) {
      if (!(err instanceof SettingsError)) throw err;
      this.problems.push(err.message);
      return fallback;
    }
  }

  number(value: unknown, fallback: number, field: string, range: NumberRange = {}): number {
    return this.read(() => numberSetting(value, fallback, field, range), fallback);
  }

  choice<T extends string>(value: string | undefined, allowed: readonly T[], field: string): T {
    return this.read(() => choiceSetting(value, allowed, allowed[0], field), allowed[0]);
  }

  problem(text: string): void {
    this.problems.push(text);
  }

  /** Throws a SettingsError naming every problem noted. */
  check(): void {
    if (this.problems.length > 0) throw new SettingsError(this.problems.join('; '));
  }
}

/**
 * For nodes whose adapter weighs a settings problem with others of its own (a connection not
 * usable): the settings, or the SettingsError's message as `{ problem }`.
 */
export function settingsOrProblem<T>(reading: () => T): T | { problem: string } {
  try {
    return reading();
  } catch (err) {
    if (err instanceof SettingsError) return { problem: err.message };
    throw err;
  }
}
