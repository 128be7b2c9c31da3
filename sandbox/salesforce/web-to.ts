/**
 * The Web-to-Case and Web-to-Lead servlets (`/servlet/servlet.WebToCase`, `.WebToLead`). As in
 * Salesforce, every post is answered 200 at once and processed later; a post for another org,
 * one that fails validation or one refused by reCAPTCHA makes nothing, silently; past the daily
 * cap (5,000 cases, 500 leads in 24 h) posts wait in a queue (50,000 at most) and are then
 * refused. What was dropped, and why, is kept for the CRM page (the debug e-mail of Salesforce).
 */
import type { SaveError, Schema } from './schema';
import type { SaveResult } from './rest';
import { RollingCount } from './rolling-count';
import type { Fields } from './store';

export type WebToKind = 'case' | 'lead';

export interface WebToOptions {
  orgId: string;
  schema: Schema;
  /** Creates the record with the REST API's checks. */
  insert(object: string, fields: Fields): SaveResult;
  /** How long after the post the record appears. */
  delayMs: number;
  caps: Record<WebToKind, number>;
  pendingCap: number;
  dayMs: number;
  /** The org requires reCAPTCHA: every headless post is refused. */
  requireCaptcha: boolean;
  now: () => number;
}

export interface DroppedPost {
  kind: WebToKind;
  at: number;
  reason: string;
  form: Record<string, string>;
}

const OBJECT: Record<WebToKind, string> = { case: 'Case', lead: 'Lead' };
/** Each servlet reads the org id from its own field. */
const ORG_FIELD: Record<WebToKind, string> = { case: 'orgid', lead: 'oid' };
/** Form fields that steer the servlet and are not record fields. */
const CONTROL_FIELDS = new Set(['orgid', 'oid', 'retURL', 'debug', 'debugEmail', 'encoding', 'g-recaptcha-response', 'captcha_settings', 'submit', 'external']);
const KEEP_DROPPED = 200;

export class WebToServlets {
  readonly submitted: Record<WebToKind, number> = { case: 0, lead: 0 };
  readonly created: Record<WebToKind, number> = { case: 0, lead: 0 };
  readonly dropped: DroppedPost[] = [];
  private readonly daily: Record<WebToKind, RollingCount>;
  private readonly pending: Array<{ kind: WebToKind; form: URLSearchParams }> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WebToOptions) {
    this.daily = { case: new RollingCount(options.dayMs, options.now), lead: new RollingCount(options.dayMs, options.now) };
  }

  get waiting(): number {
    return this.pending.length;
  }

  /** Takes a post and answers the HTML the servlet answers. */
  post(kind: WebToKind, form: URLSearchParams): string {
    this.submitted[kind]++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.accept(kind, form);
    }, this.options.delayMs);
    this.timers.add(timer);
    if (form.get('debug') === '1') {
      const rows = [...form.entries()].map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('');
      return `<html><body><h3>Debugging is on: the record is created as usual.</h3><table>${rows}</table></body></html>`;
    }
    const back = form.get('retURL');
    return back ? `<html><head><meta http-equiv="Refresh" content="0; URL=${escapeHtml(back)}"></head></html>` : '<html><body></body></html>';
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.drainTimer) clearInterval(this.drainTimer);
  }

  private accept(kind: WebToKind, form: URLSearchParams): void {
    const orgId = form.get(ORG_FIELD[kind]) ?? '';
    if (orgId.slice(0, 15) !== this.options.orgId.slice(0, 15)) return this.drop(kind, form, `no org ${orgId || '(none given)'} (the org id goes in "${ORG_FIELD[kind]}")`);
    if (this.options.requireCaptcha) return this.drop(kind, form, 'reCAPTCHA is required and the post has no valid response');
    if (this.daily[kind].value >= this.options.caps[kind]) {
      if (this.pending.length >= this.options.pendingCap) return this.drop(kind, form, 'daily limit reached and the pending queue is full');
      this.pending.push({ kind, form });
      this.drainTimer ??= setInterval(() => this.drain(), Math.max(50, this.options.dayMs / 1440)).unref();
      return;
    }
    this.create(kind, form);
  }

  private drain(): void {
    while (this.pending.length > 0 && this.daily[this.pending[0].kind].value < this.options.caps[this.pending[0].kind]) {
      const next = this.pending.shift() as { kind: WebToKind; form: URLSearchParams };
      this.create(next.kind, next.form);
    }
    if (this.pending.length === 0 && this.drainTimer) {
      clearInterval(this.drainTimer);
      this.drainTimer = undefined;
    }
  }

  private create(kind: WebToKind, form: URLSearchParams): void {
    this.daily[kind].add();
    const spec = this.options.schema.object(OBJECT[kind]);
    if (!spec) return this.drop(kind, form, `the org has no ${OBJECT[kind]} object`);
    const fields: Fields = kind === 'case' ? { Origin: 'Web' } : {};
    for (const [name, value] of form.entries()) {
      if (CONTROL_FIELDS.has(name)) continue;
      const field = Object.entries(spec.fields).find(([, f]) => f.webToName === name)?.[0];
      // Salesforce ignores form fields it does not know.
      if (field && value !== '') fields[field] = value;
    }
    const result = this.options.insert(spec.name, fields);
    if (result.success) this.created[kind]++;
    else this.drop(kind, form, result.errors.map((e: SaveError) => `${e.statusCode}: ${e.message}`).join('; '));
  }

  private drop(kind: WebToKind, form: URLSearchParams, reason: string): void {
    this.dropped.push({ kind, at: this.options.now(), reason, form: Object.fromEntries(form.entries()) });
    if (this.dropped.length > KEEP_DROPPED) this.dropped.splice(0, this.dropped.length - KEEP_DROPPED);
  }
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
