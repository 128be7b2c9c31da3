/**
 * iot-salesforce-out: the Node-RED side of writing to Salesforce. It builds each message's
 * record (a ready-made Case or Lead from msg.alert and msg.device, msg.payload, and the field
 * table), hands it to the record sink (batching, retries, limit holds) or posts a Web-to form,
 * and turns each record's outcome into the message's output, its buffer settlement and done().
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { CapacityAnnouncer } from '../shared/capacity';
import { reject } from '../shared/coded-error';
import { DELIVERY_PROPERTY, deliveryOf, settleDelivery, type DeliveryToken } from '../shared/delivery';
import { deviceOf } from '../shared/device';
import { takeOutTooDeep } from '../shared/json-limits';
import { LogSummary } from '../shared/log-summary';
import { failing, StatusLine } from '../shared/node-status';
import type { SalesforceClient, SalesforceConnection } from '../shared/salesforce-client';
import { propertyReader, type PropertyReader } from '../shared/typed-property';
import { backoffMs } from '../shared/backoff';
import { classifyCallError, type Verdict } from './error-policy';
import { readOutConfig, type OutProperties, type OutSettings } from './out-config';
import { caseFromAlert, externalIdValue, leadFromAlert, readAlert, recordProblem, webToCaseFromAlert, webToLeadFromAlert } from './record-mapping';
import { RecordSink, type Written } from './record-sink';
import { apiStatus, webToStatus, type Trouble } from './status';
import { DAILY_CAP, DailyCount, formValues, postWebTo, type WebToKind } from './web-to-form';
import type { Operation } from './writer';

type OutDef = NodeDef & OutProperties & { connection?: string; catchErrors?: boolean };
type Send = (msg: Array<NodeMessage | null>) => void;
type Done = (err?: Error) => void;

interface Item {
  msg: NodeMessage;
  send: Send;
  done: Done;
}

const OUTPUTS = 2;
const STATUS_EVERY_MS = 250;
const MAX_WAITING = 50_000;
const CLOSE_GRACE_MS = 5_000;
const MAX_BACKOFF_MS = 600_000;
const ID = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;

export = function register(RED: NodeAPI): void {
  function IotSalesforceOutNode(this: Node, def: OutDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true, RED };
    const connection = def.connection ? (RED.nodes.getNode(def.connection) as (Node & SalesforceConnection) | null) : null;
    const config = readOutConfig(def);
    const client = connection?.client;
    const webTo = 'problem' in config ? false : config.operation === 'webToCase' || config.operation === 'webToLead';
    if ('problem' in config || !client || (!webTo && !client.apiAccess)) {
      const message =
        'problem' in config
          ? config.problem
          : connection?.problem
            ? `the connection is not usable: ${connection.problem}`
            : client
              ? 'the connection is set for Web-to forms only (no login): choose how it logs in to write records'
              : 'no Salesforce connection is selected';
      // A connection that is not usable has said why itself (an error, or a warning for unset variables).
      if ('problem' in config || !connection?.problem) node.error(RED._('iot-salesforce-out.errors.invalid-config', { message }));
      else node.warn(RED._('iot-salesforce-out.errors.invalid-config', { message }));
      node.status(failing(RED._('iot-salesforce-out.status.invalid-config')));
      node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
        settleDelivery(RED, msg, { ok: false, retry: false, reason: message });
        reject(node, msg, 'invalid_config', message, send, done, rejection);
      });
      return;
    }
    const t = (key: string, values?: Record<string, string | number>) => RED._(`iot-salesforce-out.${key}`, values);
    const problems = new LogSummary(60_000);
    const capacity = new CapacityAnnouncer(RED, node.id);
    const settings: OutSettings = config;
    const session: SalesforceClient = client;
    const webToKind: WebToKind | undefined = settings.operation === 'webToCase' ? 'case' : settings.operation === 'webToLead' ? 'lead' : undefined;
    const fieldReaders: Array<[string, PropertyReader]> = settings.fields.map((row) => [row.field, propertyReader(RED, node, row.value, row.valueType || 'str')]);
    const mapping = { externalIdField: settings.externalIdField, origin: settings.origin, closeOnClear: settings.closeOnClear, leadSource: settings.leadSource };
    const what = { operation: settings.operation, object: settings.object };
    const backoffCeiling = Math.min(MAX_BACKOFF_MS, settings.retryDelayMs * 60);
    const submitted = new DailyCount();
    let capWarned = false;
    let webToPending = 0;
    /** Web-to posts retrying, or failing past their retries, until one goes through. */
    let webToTrouble: Trouble | undefined;
    let closing = false;
    const status = new StatusLine(node, currentStatus, STATUS_EVERY_MS);

    const sink = webToKind
      ? undefined
      : new RecordSink<Item>(
          session,
          {
            spec: { operation: settings.operation as Operation, object: settings.object, externalIdField: settings.externalIdField },
            batchSize: settings.batchSize,
            batchDelayMs: settings.batchDelayMs,
            parallel: settings.parallel,
            retries: settings.retries,
            timeoutMs: settings.timeoutMs,
            backoffBaseMs: settings.retryDelayMs,
            backoffMaxMs: backoffCeiling,
            maxWaiting: MAX_WAITING,
            buffered: (item) => deliveryOf(item.msg) !== undefined,
          },
          {
            written: (item, outcome) => succeed(item, outcome),
            failed: (item, verdict, gaveUp) => fail(item, verdict, gaveUp),
            // Settled as "again once the hold is over", so that a long hold costs its buffer one
            // attempt rather than one per redelivery timeout.
            released: (item, hold) =>
              guarded(() => {
                settleDelivery(RED, item.msg, { ok: false, reason: `${hold.reason === 'exceeded' ? 'REQUEST_LIMIT_EXCEEDED' : 'API guard'}: holding`, retry: true, retryAfterMs: Math.max(0, hold.until - Date.now()) });
                item.done();
              }),
            changed: () => status.changed(),
          },
        );

    // --- messages in -----------------------------------------------------------------------
    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      const item: Item = { msg, send, done };
      // A message too deep for Node-RED to copy would end the process where it is passed on.
      const tooDeep = takeOutTooDeep(msg);
      if (tooDeep !== undefined) {
        refuse(item, 'too_deep', tooDeep);
        return;
      }
      recordOf(msg)
        .then((record) => (typeof record === 'string' ? refuse(item, 'invalid_input', record) : take(item, record)))
        .catch((err: Error) => refuse(item, 'invalid_input', err.message));
    });

    /** The record a message describes, or a sentence saying why there is none. */
    async function recordOf(msg: NodeMessage): Promise<Record<string, unknown> | string> {
      let record: Record<string, unknown>;
      if (settings.recordFrom === 'alert') {
        const alert = readAlert(msg.alert);
        if (typeof alert === 'string') return alert;
        const device = deviceOf(msg);
        if (webToKind) record = webToKind === 'case' ? webToCaseFromAlert(alert, device) : webToLeadFromAlert(alert, device, mapping);
        else record = settings.object === 'Case' ? caseFromAlert(alert, device, mapping) : leadFromAlert(alert, device, mapping);
      } else if (settings.recordFrom === 'payload') {
        const payload = msg.payload;
        if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || Buffer.isBuffer(payload)) return 'msg.payload must be an object of field values';
        record = { ...(payload as Record<string, unknown>) };
      } else {
        record = {};
      }
      for (const [field, reader] of fieldReaders) {
        const value = reader.async ? await reader.read(msg) : reader.read(msg);
        if (value !== undefined) record[field] = value;
      }
      return Object.keys(record).length > 0 ? record : 'nothing to write: the record has no fields';
    }

    async function take(item: Item, record: Record<string, unknown>): Promise<void> {
      const problem = recordProblem(record);
      if (problem) return refuse(item, problem.code, problem.message);
      if (webToKind) return submit(item, webToKind, record);
      let key: string | undefined;
      if (settings.operation === 'upsert') {
        const field = settings.externalIdField as string;
        const value = externalIdValue(record[field]);
        if (value === undefined) return refuse(item, 'invalid_input', `${field} is empty: an upsert needs the external id value`);
        record[field] = value;
        // Salesforce matches external ids regardless of case.
        key = value.toLowerCase();
      } else if (settings.operation === 'update') {
        const id = record.Id;
        if (typeof id !== 'string' || !ID.test(id)) return refuse(item, 'invalid_input', "an update needs the record's Id (15 or 18 characters) in the field Id");
        key = id.slice(0, 15);
      }
      const records = sink as RecordSink<Item>;
      capacity.tell(item.msg, settings.batchSize * settings.parallel);
      if (!records.add(key, record, item)) {
        refuse(item, 'backlog_full', `${MAX_WAITING} records are waiting already: refusing more`);
        return;
      }
      // The source had nothing more right after this one: each call counts against the org's
      // allowance, so the node otherwise waits its batch delay for more.
      if ((item.msg[DELIVERY_PROPERTY] as DeliveryToken | undefined)?.last === true) records.expedite();
    }

    // --- Web-to ----------------------------------------------------------------------------
    async function submit(item: Item, kind: WebToKind, record: Record<string, unknown>): Promise<void> {
      const form = formValues(record);
      if (typeof form === 'string') return refuse(item, 'invalid_input', form);
      // No org id set: the org the connection logs in to.
      if (!session.webTo.orgId && session.apiAccess) await session.connect().catch(() => undefined);
      if (!session.webTo.orgId) return refuse(item, 'invalid_config', 'Web-to forms need the org id: set it on the connection');
      webToPending++;
      status.changed();
      for (let attempt = 0; ; attempt++) {
        try {
          await postWebTo(session.webTo, kind, form, settings.timeoutMs);
          break;
        } catch (err) {
          const verdict = classifyCallError(err);
          if (verdict.kind === 'invalid' || attempt >= settings.retries || closing) {
            webToPending--;
            if (verdict.kind !== 'invalid') webToTrouble = { kind: 'failing', errorCode: verdict.errorCode };
            return fail(item, verdict, verdict.kind !== 'invalid');
          }
          const delayMs = backoffMs(attempt + 1, settings.retryDelayMs, backoffCeiling);
          webToTrouble = { kind: 'retrying', errorCode: verdict.errorCode, at: Date.now() + delayMs };
          status.changed();
          // Not holding Node-RED open at stop: the loop ends after the wait (closing).
          await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
        }
      }
      webToPending--;
      webToTrouble = undefined;
      if (submitted.add() > DAILY_CAP[kind] && !capWarned) {
        capWarned = true;
        node.warn(RED._('iot-salesforce-out.warnings.web-to-cap', { count: DAILY_CAP[kind] }));
      }
      item.msg.salesforce = { success: true, submitted: true, ...what };
      finish(item, [item.msg, null]);
    }

    // --- outcomes --------------------------------------------------------------------------
    function succeed(item: Item, outcome: Written): void {
      item.msg.salesforce = { success: true, id: outcome.id ?? null, created: outcome.created, ...what, ...(outcome.enqueued ? { eventUuid: outcome.enqueued } : {}) };
      finish(item, [item.msg, null]);
    }

    function finish(item: Item, out: Array<NodeMessage | null>): void {
      guarded(() => {
        settleDelivery(RED, item.msg, { ok: true });
        item.send(out);
        item.done();
      });
      status.changed();
    }

    function fail(item: Item, verdict: Verdict, gaveUp: boolean): void {
      const { msg } = item;
      const fields = verdict.kind === 'invalid' ? verdict.fields : [];
      msg.salesforce = { success: false, ...what, errors: [{ statusCode: verdict.errorCode, message: verdict.message, fields }] };
      const code = !gaveUp ? 'rejected' : verdict.kind === 'auth' ? 'login_failed' : 'unavailable';
      const message = gaveUp ? `gave up after ${settings.retries} retries: ${verdict.message}` : verdict.message;
      guarded(() => {
        settleDelivery(RED, msg, { ok: false, retry: gaveUp, reason: `${verdict.errorCode}: ${verdict.message}` });
        reject(node, msg, code, message, item.send, item.done, rejection, { errorCode: verdict.errorCode, fields });
      });
      status.changed();
    }

    function refuse(item: Item, code: string, message: string): void {
      guarded(() => {
        settleDelivery(RED, item.msg, { ok: false, retry: false, reason: message });
        reject(node, item.msg, code, message, item.send, item.done, rejection);
      });
    }

    /**
     * Passing a message on runs from Salesforce's answers and from promise callbacks: nothing
     * it throws (Node-RED copying a message for Complete and Catch nodes, say) may escape as an
     * unhandled rejection, which would end the process.
     */
    function guarded(passOn: () => void): void {
      try {
        passOn();
      } catch (err) {
        problems.report('not_passed_on', t('errors.not-passed-on', { message: (err as Error).message }), (text) => node.error(text));
      }
    }

    // --- status ----------------------------------------------------------------------------
    const unsubscribe = session.subscribe(() => status.changed());

    function currentStatus() {
      if (webToKind) {
        return webToStatus({ submitted: submitted.value, capped: submitted.value >= DAILY_CAP[webToKind], pending: webToPending, trouble: webToTrouble }, t);
      }
      return apiStatus(session.state(), sink as RecordSink<Item>, t);
    }

    // Log in at deploy, so that wrong credentials show at once, not at the first alert.
    if (!webToKind && session.apiAccess) session.connect().catch(() => status.changed());
    status.now();

    node.on('close', (done: () => void) => {
      closing = true;
      capacity.close();
      unsubscribe();
      status.stop();
      if (!sink) {
        done();
        return;
      }
      sink.close(CLOSE_GRACE_MS).then((left) => {
        if (left.length > 0) node.warn(RED._('iot-salesforce-out.warnings.not-written', { count: left.length }));
        for (const item of left) guarded(() => item.done());
        done();
      });
    });
  }

  RED.nodes.registerType('iot-salesforce-out', IotSalesforceOutNode);
};
