/**
 * Web-to-Case and Web-to-Lead (the Anonymous pattern): a plain form post to Salesforce's
 * servlet with the org id and no credentials. Salesforce answers 200 whether or not a record
 * results (it queues the post, and validation or reCAPTCHA can drop it silently), so a post is
 * "submitted", never "created". Salesforce takes 5,000 cases and 500 leads a day per org.
 */
import type { WebToSettings } from '../shared/salesforce-client';

export type WebToKind = 'case' | 'lead';

export const DAILY_CAP: Readonly<Record<WebToKind, number>> = { case: 5000, lead: 500 };

const DAY_MS = 86_400_000;

/** Shaped like the errors of jsforce and fetch, for the error policy: an HTTP answer or a network code. */
export class WebToError extends Error {
  constructor(
    message: string,
    readonly errorCode: string | undefined,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Posts one form. Resolves when Salesforce took it (HTTP 200); throws a WebToError otherwise. */
export async function postWebTo(settings: WebToSettings, kind: WebToKind, form: Record<string, string>, timeoutMs: number): Promise<void> {
  const servlet = kind === 'case' ? 'WebToCase' : 'WebToLead';
  const body = new URLSearchParams({ [kind === 'case' ? 'orgid' : 'oid']: settings.orgId, ...form });
  let response: Response;
  try {
    response = await fetch(`${settings.url}/servlet/servlet.${servlet}?encoding=UTF-8`, { method: 'POST', body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const code = (err as Error).name === 'TimeoutError' ? 'ETIMEDOUT' : (cause?.code ?? 'ECONNRESET');
    throw new WebToError(`Web-to-${kind === 'case' ? 'Case' : 'Lead'} not reached: ${cause?.message ?? (err as Error).message}`, undefined, code);
  }
  await response.arrayBuffer();
  if (response.status !== 200) throw new WebToError(`Web-to-${kind === 'case' ? 'Case' : 'Lead'} answered HTTP ${response.status}`, `ERROR_HTTP_${response.status}`);
}

/** Posts counted over the last 24 hours, to say when Salesforce's daily cap is reached. */
export class DailyCount {
  private readonly times: number[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  add(): number {
    this.times.push(this.now());
    return this.value;
  }

  get value(): number {
    const since = this.now() - DAY_MS;
    let drop = 0;
    while (drop < this.times.length && this.times[drop] <= since) drop++;
    if (drop > 0) this.times.splice(0, drop);
    return this.times.length;
  }
}

/** Form values are text: numbers and booleans become text; anything else is refused. */
export function formValues(record: Record<string, unknown>): Record<string, string> | string {
  const form: Record<string, string> = {};
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined || value === null) continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') form[name] = String(value);
    else return `form field ${name} must be text, a number or a boolean`;
  }
  return form;
}
