/**
 * iot-command: commands from the CRM (or from the flow, or automatic from alerts) carried to
 * devices and tracked to their end: queued -> sent -> delivered -> done | failed | expired. One
 * node per transport: MQTT (published to the owner's command topic through iot-mqtt-broker, whose
 * persistent sessions keep it for a device that is away), HTTP (handed over in the answer to the
 * device's next report or poll) or a vendor's or partner's downlink API (an HTTP call out, signed
 * with the shared secret the registry holds for it).
 *
 * Only the device's owner carries its commands and may answer for it (the registry names the
 * owner: a gateway, a vendor cloud, a partner; else the device itself). Per device, commands go
 * one at a time, in order. Every change is journalled before anything is sent or settled, so
 * Node-RED killed -9 at any point loses no command and sends none twice that was done: a command
 * sent and not answered is sent again after a restart, and devices remember the ids they executed.
 * Each change leaves on the first output, and is written back to Salesforce through the third
 * (the command record's status) and fourth (a comment on the Case) outputs, each write kept until
 * a sink settled it.
 */
import { randomBytes } from 'node:crypto';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { backoffMs } from '../shared/backoff';
import { refuseEveryInput, reject } from '../shared/coded-error';
import { DeadlineTimer } from '../shared/deadline-timer';
import { DELIVERY_PROPERTY, settleDelivery, settleIfReturned, type DeliverySource, type Outcome } from '../shared/delivery';
import { deviceOf } from '../shared/device';
import { registryService, type DeviceRegistryService } from '../shared/device-registry-api';
import { HeldReceipts } from '../shared/held-receipts';
import { NodeState } from '../shared/node-state';
import { throttled } from '../shared/throttle';
import { AutoAction } from './auto-action';
import { CommandLife, isFinal, type Change, type Command } from './command-life';
import { readCommand, readReplies, readSalesforceEvent, type CommandRequest, type InputProblem } from './command-input';
import { readCommandConfig, type CommandProperties, type CommandSettings } from './node-config';
import { downlinkRequest, downlinkRetriable, mqttMessage, wireCommand } from './transports';
import { caseComment, lateCaseComment, Outbox, recordUpdate, type OutboxItem } from './write-back';

type CommandDef = NodeDef & CommandProperties & { registry?: string; catchErrors?: boolean };
interface CommandCredentials {
  downlinkToken?: string;
}
type CommandNode = Node<CommandCredentials> & DeliverySource;
type Send = (msg: Array<NodeMessage | null>) => void;
type Done = (err?: Error) => void;

/** Outputs: changes, to devices, command records, Case comments, rejected. */
const OUTPUTS = 5;
const TO_DEVICES = 1;
const RECORDS = 2;
const COMMENTS = 3;
/** Finished commands are remembered a week: longer than Salesforce replays events (72 h). */
const REMEMBER_MS = 7 * 86_400_000;
/** A write Salesforce has not taken for a day is given up (and said so). */
const GIVE_UP_WRITE_MS = 86_400_000;
const DOWNLINK_TIMEOUT_MS = 10_000;
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 60_000;

interface Saved {
  commands: Command[];
  outbox: OutboxItem[];
  auto: Array<[string, number]>;
}

type Entry = { c: Command } | { o: OutboxItem } | { x: string } | { a: [string, number] };

export = function register(RED: NodeAPI): void {
  function IotCommandNode(this: CommandNode, def: CommandDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const t = (key: string, values?: Record<string, string | number>) => RED._(`iot-command.${key}`, values);
    const rejection = { outputs: OUTPUTS, catchErrors: def.catchErrors === true, RED };
    node.settleDelivery = () => undefined;
    const config = readCommandConfig(def);
    const registry = registryService(RED, def.registry);
    const bearer = node.credentials?.downlinkToken;
    const problem = 'problem' in config ? config.problem : !registry ? t('errors.no-registry') : config.downlink?.auth === 'bearer' && !bearer ? t('errors.no-token') : undefined;
    if (problem !== undefined) {
      refuseEveryInput(node, 'iot-command', problem, rejection);
      return;
    }
    const settings = config as CommandSettings;
    const devices = registry as DeviceRegistryService;
    const life = new CommandLife({ rememberMs: REMEMBER_MS, maxPerDevice: settings.maxPerDevice });
    const auto = new AutoAction(settings.autoRules, settings.autoIntervalMs);
    const outbox = new Outbox(`${randomBytes(4).toString('hex')}.`);
    const defaults = { expiresInMs: settings.expiresInMs, maxExpiresInMs: settings.maxExpiresInMs };
    let closed = false;
    const timers = new Set<NodeJS.Timeout>();
    /** Runs fn after ms, unless the node closes first. */
    function later(fn: () => void, ms: number): void {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!closed) fn();
      }, ms);
      timers.add(timer);
    }

    // --- state across restarts ---------------------------------------------------------------
    let state: NodeState<Saved, Entry> | undefined;
    const userDir = RED.settings.userDir as string | undefined;
    if (settings.persist) {
      if (!userDir) node.warn(t('errors.no-user-dir'));
      else {
        try {
          const opened = NodeState.open<Saved, Entry>(userDir, {
            name: `command-${node.id}`,
            current: () => {
              life.forget(Date.now());
              auto.forget(Date.now());
              return { commands: life.all(), outbox: outbox.all(), auto: auto.snapshot() };
            },
            onFailure: (message) => node.warn(t('errors.not-saved', { message })),
          });
          state = opened.state;
          for (const note of opened.saved.problems) node.warn(note);
          const saved = opened.saved.snapshot;
          for (const command of saved?.commands ?? []) life.restore(command);
          for (const item of saved?.outbox ?? []) outbox.restore(item);
          auto.restore(saved?.auto ?? []);
          for (const entry of opened.saved.entries) {
            if ('c' in entry) life.restore(entry.c);
            else if ('o' in entry) outbox.restore(entry.o);
            else if ('x' in entry) outbox.done(entry.x);
            else if ('a' in entry) auto.restore([entry.a]);
          }
        } catch (err) {
          node.warn(t('errors.not-saved', { message: (err as Error).message }));
        }
      }
    }

    // --- writes to Salesforce, kept until settled ----------------------------------------------
    const receipts = new HeldReceipts(`${randomBytes(4).toString('hex')}.`, settings.answerWithinMs);
    const receiptTimer = new DeadlineTimer(expireReceipts);
    const writeAttempts = new Map<string, number>();
    let writesFailed = 0;
    let lastWriteTrouble = 0;
    node.settleDelivery = (id: string, outcome: Outcome) => {
      receipts.settle(id, outcome);
    };

    function expireReceipts(): void {
      receipts.expire(Date.now());
      const next = receipts.nextDeadline();
      if (next !== undefined) receiptTimer.arm(next);
    }

    function write(kind: OutboxItem['kind'], command: Command, payload: Record<string, unknown> | undefined): void {
      if (!payload) return;
      const { item, replaced } = outbox.add(kind, command.id, payload, Date.now());
      state?.journal({ o: item }, ...replaced.map((x) => ({ x })));
      emitWrite(item);
    }

    function emitWrite(item: OutboxItem): void {
      if (closed || !outbox.get(item.id)) return;
      const command = life.get(item.commandId);
      const msg: NodeMessage = { _msgid: RED.util.generateId(), topic: command?.device ?? item.commandId, payload: RED.util.cloneMessage({ payload: item.payload } as NodeMessage).payload };
      if (command) msg.command = { ...command };
      if (settings.writeBack === 'tracked') {
        const [id] = receipts.hold(1, (outcome) => writeSettled(item.id, outcome), Date.now());
        msg[DELIVERY_PROPERTY] = { source: node.id, id };
        receiptTimer.arm(receipts.nextDeadline() as number);
      }
      const out: Array<NodeMessage | null> = new Array(OUTPUTS).fill(null);
      out[item.kind === 'record' ? RECORDS : COMMENTS] = msg;
      node.send(out);
      if (settings.writeBack === 'once') finishWrite(item.id);
    }

    function finishWrite(id: string): void {
      writeAttempts.delete(id);
      if (outbox.done(id)) state?.journal({ x: id });
    }

    function writeSettled(id: string, outcome: Outcome): void {
      if (!outbox.get(id)) return;
      if (outcome.ok || !outcome.retry) {
        if (!outcome.ok) {
          writesFailed++;
          lastWriteTrouble = Date.now();
          node.warn(t('errors.write-refused', { reason: outcome.reason }));
        }
        finishWrite(id);
        status.schedule();
        return;
      }
      lastWriteTrouble = Date.now();
      const attempts = (writeAttempts.get(id) ?? 0) + 1;
      writeAttempts.set(id, attempts);
      const item = outbox.get(id) as OutboxItem;
      if (Date.now() - item.created > GIVE_UP_WRITE_MS) {
        writesFailed++;
        node.warn(t('errors.write-given-up', { reason: outcome.reason }));
        finishWrite(id);
        return;
      }
      later(() => emitWrite(item), outcome.retryAfterMs ?? backoffMs(attempts, RETRY_BASE_MS, RETRY_MAX_MS));
      status.schedule();
    }

    // --- changes -------------------------------------------------------------------------------
    /** Journals changes, sends them out and writes them back; then sends what may go next. */
    function apply(changes: Array<Change | undefined>): void {
      const real = changes.filter((c): c is Change => c !== undefined);
      if (real.length === 0) return;
      state?.journal(...real.map((change) => ({ c: change.command })));
      for (const change of real) {
        const { command, from } = change;
        const payload: Record<string, unknown> = { id: command.id, device: command.device, name: command.name, state: command.state, at: command.at };
        if (from) payload.from = from;
        if (command.reason) payload.reason = command.reason;
        if (command.result !== undefined) payload.result = command.result;
        const out: Array<NodeMessage | null> = new Array(OUTPUTS).fill(null);
        out[0] = { _msgid: RED.util.generateId(), topic: command.device, payload, command: { ...command } };
        node.send(out);
        write('record', command, recordUpdate(command));
        write('comment', command, caseComment(change));
      }
      status.schedule();
    }

    /** Sends every device's head that has not been sent (MQTT and downlink; HTTP devices take theirs). */
    function dispatch(): void {
      if (closed) return;
      const now = Date.now();
      for (const head of life.heads()) {
        if (head.state !== 'queued') continue;
        if (settings.transport === 'mqtt') publish(head, now);
        else if (settings.transport === 'downlink') callDownlink(head);
      }
      expiry.arm(life.nextExpiry());
    }

    /** Publishes a command to its owner's topic (journalled as sent first: after a crash it goes again, never lost). */
    function publish(command: Command, now: number): void {
      apply([life.sent(command.id, now)]);
      const out: Array<NodeMessage | null> = new Array(OUTPUTS).fill(null);
      out[TO_DEVICES] = { _msgid: RED.util.generateId(), ...mqttMessage(command, settings.topics, now), command: wireCommand(command) };
      node.send(out);
    }

    // --- downlink --------------------------------------------------------------------------------
    const calling = new Set<string>();
    const downlinkAttempts = new Map<string, number>();
    let downlinkTrouble: string | undefined;

    function callDownlink(command: Command): void {
      const downlink = settings.downlink;
      if (!downlink || calling.has(command.id)) return;
      const request = downlinkRequest(command, downlink, (content) => devices.sign(command.owner, content, 'sha256'), Date.now(), downlink.auth === 'bearer' ? bearer : undefined);
      if (!request) {
        apply([life.fail(command.id, t('errors.no-owner-key', { owner: command.owner }), Date.now())]);
        dispatch();
        return;
      }
      calling.add(command.id);
      fetch(request.url, { method: 'POST', headers: request.headers, body: request.body, signal: AbortSignal.timeout(DOWNLINK_TIMEOUT_MS) })
        .then(async (response) => {
          const text = (await response.text()).slice(0, 300);
          if (response.ok) return { ok: true as const };
          return { ok: false as const, retry: downlinkRetriable(response.status), reason: `${response.status} ${text}`.trim(), retryAfter: Number(response.headers.get('retry-after')) };
        })
        .catch((err: Error) => ({ ok: false as const, retry: true, reason: err.message, retryAfter: NaN }))
        .then((result) => {
          calling.delete(command.id);
          if (closed) return;
          const current = life.get(command.id);
          if (!current || isFinal(current.state)) return;
          if (result.ok) {
            downlinkTrouble = undefined;
            downlinkAttempts.delete(command.id);
            apply([life.sent(command.id, Date.now())]);
            return;
          }
          if (!result.retry) {
            apply([life.fail(command.id, t('errors.downlink-refused', { reason: result.reason }), Date.now())]);
            dispatch();
            return;
          }
          downlinkTrouble = result.reason;
          const attempts = (downlinkAttempts.get(command.id) ?? 0) + 1;
          downlinkAttempts.set(command.id, attempts);
          const wait = Number.isFinite(result.retryAfter) && result.retryAfter > 0 ? result.retryAfter * 1000 : backoffMs(attempts, RETRY_BASE_MS, RETRY_MAX_MS);
          later(dispatch, wait);
          status.schedule();
        })
        .catch((err: Error) => node.warn(err.message));
    }

    // --- expiry ------------------------------------------------------------------------------------
    const expiry = new DeadlineTimer(() => {
      apply(life.expire(Date.now()));
      dispatch();
    });

    // --- commands in -----------------------------------------------------------------------------
    /** Takes a command: who carries it, whether it may; journalled, then sent when it is the device's turn. */
    function accept(request: CommandRequest, msg: NodeMessage, send: Send, done: Done, consumed: boolean): void {
      const now = Date.now();
      const view = devices.device(request.device);
      let refusal: InputProblem | undefined;
      let owner = request.device;
      if (!view) refusal = { code: 'unknown_device', message: t('errors.unknown-device', { device: request.device }) };
      else if (!view.enabled) refusal = { code: 'device_disabled', message: t('errors.device-disabled', { device: request.device }) };
      else owner = view.gateway ?? request.device;
      if (!refusal && settings.names.length > 0 && !settings.names.includes(request.name)) refusal = { code: 'not_allowed', message: t('errors.not-allowed', { name: request.name, names: settings.names.join(', ') }) };
      if (!refusal && settings.transport === 'downlink') {
        const owners = settings.downlink?.owners ?? [];
        if (owner === request.device) refusal = { code: 'no_owner', message: t('errors.no-owner', { device: request.device }) };
        else if (owners.length > 0 && !owners.includes(owner)) refusal = { code: 'not_owner', message: t('errors.not-this-owner', { device: request.device, owner }) };
      }
      const input = { ...request, owner };
      const taken = refusal ? life.refuse(input, refusal.message, now) : life.add(input, now);
      if ('duplicate' in taken) {
        // The same command again (an event delivered twice): already taken, nothing changes.
        if (consumed) settleDelivery(RED, msg, { ok: true });
        done();
        return;
      }
      apply([taken.change]);
      if (consumed) settleDelivery(RED, msg, { ok: true });
      dispatch();
      if (refusal) reject(node, msg, refusal.code, refusal.message, send, done, rejection);
      else done();
    }

    /** A command that could not even be read: refused, and its record (if any) written back as failed. */
    function refuseInput(problem: InputProblem, msg: NodeMessage, send: Send, done: Done): void {
      if (problem.recordId) {
        const now = Date.now();
        const taken = life.refuse({ id: problem.recordId, device: '?', owner: '?', name: '?', args: {}, expires: now, origin: { kind: 'record', recordId: problem.recordId, caseId: problem.caseId } }, problem.message, now);
        if ('change' in taken) apply([taken.change]);
      }
      reject(node, msg, problem.code, problem.message, send, done, rejection);
    }

    /** An alert: its Case learned (wired after the Case writer), and an automatic command when a rule says so. */
    function onAlert(msg: NodeMessage, send: Send, done: Done): void {
      const alert = msg.alert as Record<string, unknown>;
      const device = deviceOf(msg)?.id ?? (typeof alert.key === 'string' ? alert.key : undefined);
      const written = msg.salesforce as { object?: unknown; id?: unknown; success?: unknown } | undefined;
      const caseId = written?.object === 'Case' && written.success === true && typeof written.id === 'string' ? written.id : undefined;
      if (caseId && typeof alert.id === 'string') {
        const linked = life.linkCase(alert.id, caseId);
        if (linked.length > 0) state?.journal(...linked.map((c) => ({ c })));
        for (const command of linked) write('comment', command, lateCaseComment(command));
      }
      if (!auto.enabled || !device) {
        done();
        return;
      }
      const now = Date.now();
      const decision = auto.decide(alert, device, now, (id) => life.get(id) !== undefined);
      if (!decision.act) {
        // The alert belongs to the flow's other path (its Case): it is reported, never settled here.
        if (decision.code === 'auto_limited') report(msg, decision.code, decision.reason, send);
        done();
        return;
      }
      state?.journal({ a: [device, now] });
      const origin = { kind: 'automatic' as const, alertId: String(alert.id), because: decision.because, ...(caseId ? { caseId } : {}) };
      accept({ id: decision.id, device, name: decision.rule.command, args: decision.rule.args, expires: now + decision.rule.expiresInMs, origin }, msg, send, done, false);
    }

    /** Reports a problem on the error output without settling the message's delivery (it is not this node's to settle). */
    function report(msg: NodeMessage, code: string, message: string, send: Send): void {
      const copy = RED.util.cloneMessage(msg);
      delete copy[DELIVERY_PROPERTY];
      copy.error = { code, message, node: node.id };
      const out: Array<NodeMessage | null> = new Array(OUTPUTS).fill(null);
      out[OUTPUTS - 1] = copy;
      send(out);
    }

    /** What a device (or its owner) sent: replies, coming online, an HTTP report or poll. */
    function fromDevice(msg: NodeMessage, send: Send, done: Done): void {
      const device = deviceOf(msg)?.id as string;
      const payload = msg.payload as Record<string, unknown> | undefined;
      const http = msg.res !== undefined || msg.req !== undefined;
      if (!http && (payload?.event === 'online' || msg.topic === 'online')) {
        resendTo(device);
        done();
        return;
      }
      if (!http && isConnectionEvent(msg)) {
        // The broker's other connection events (offline, refused, ...) are for other nodes.
        done();
        return;
      }
      const replies = readReplies(msg.payload, msg.correlationData);
      if ('code' in replies) {
        if (http) report(msg, replies.code, replies.message, send);
        else {
          reject(node, msg, replies.code, replies.message, send, done, rejection);
          return;
        }
      }
      const now = Date.now();
      const problems: InputProblem[] = [];
      for (const reply of Array.isArray(replies) ? replies : []) {
        const outcome = life.reply(reply.id, device, reply.status, now, { result: reply.result, reason: reply.reason });
        if (!outcome.ok) problems.push({ code: outcome.code, message: outcome.message });
        else if ('change' in outcome) apply([outcome.change]);
      }
      dispatch();
      if (http) {
        // The report goes on (to the store, the CRM): its delivery is for them to settle.
        handOver(msg, device, now);
        for (const p of problems) report(msg, p.code, p.message, send);
        send([null, msg, null, null, null]);
        done();
        return;
      }
      if (problems.length > 0) {
        for (const p of problems.slice(1)) report(msg, p.code, p.message, send);
        // Not a reply this node can take: refused for good (a device answering for another one).
        reject(node, msg, problems[0].code, problems[0].message, send, done, rejection);
        return;
      }
      settleDelivery(RED, msg, { ok: true });
      done();
    }

    /** An HTTP device asks: its head commands (its own, and those it carries for others) go in the answer. */
    function handOver(msg: NodeMessage, device: string, now: number): void {
      const heads = life.heads().filter((c) => c.owner === device && (c.state === 'queued' || c.state === 'sent'));
      apply(heads.map((c) => life.sent(c.id, now)));
      msg.commands = heads.map((c) => wireCommand(life.get(c.id) as Command));
    }

    /** A device (or a gateway) came online: what was sent to it and not yet delivered goes again. */
    function resendTo(device: string): void {
      if (settings.transport !== 'mqtt') return;
      const now = Date.now();
      for (const head of life.heads()) if (head.state === 'sent' && (head.owner === device || head.device === device)) publish(head, now);
    }

    node.on('input', (msg: NodeMessage, send: Send, done: Done) => {
      try {
        if (settleIfReturned(node, msg)) {
          done();
          return;
        }
        if (devices.state !== 'ready' && (msg.command !== undefined || msg.event !== undefined || msg.alert !== undefined)) {
          reject(node, msg, 'registry_unavailable', t('errors.registry-unavailable'), send, done, rejection);
          return;
        }
        const now = Date.now();
        if (msg.command !== undefined) {
          const request = readCommand(msg.command, now, defaults);
          if ('code' in request) refuseInput(request, msg, send, done);
          else accept(request, msg, send, done, true);
          return;
        }
        const event = msg.event as Record<string, unknown> | undefined;
        if (event !== null && typeof event === 'object' && typeof event.channel === 'string') {
          const read = readSalesforceEvent(event, msg.payload, now, defaults);
          if ('ignore' in read) {
            settleDelivery(RED, msg, { ok: true });
            done();
          } else if ('code' in read) refuseInput(read, msg, send, done);
          else accept(read, msg, send, done, true);
          return;
        }
        if (msg.alert !== null && typeof msg.alert === 'object') {
          onAlert(msg, send, done);
          return;
        }
        if (deviceOf(msg)) {
          fromDevice(msg, send, done);
          return;
        }
        if (isConnectionEvent(msg)) {
          // A connection refused before any device was known (a wrong key): not for this node.
          done();
          return;
        }
        reject(node, msg, 'unknown_input', t('errors.unknown-input'), send, done, rejection);
      } catch (err) {
        reject(node, msg, 'internal', (err as Error).message, send, done, rejection);
      }
    });

    // --- status ------------------------------------------------------------------------------------
    const status = throttled(updateStatus, 500);
    const unsubscribe = devices.onChange(() => status.schedule());

    function updateStatus(): void {
      if (devices.state !== 'ready') {
        node.status({ fill: devices.state === 'failed' ? 'red' : 'yellow', shape: 'ring', text: t(`status.registry-${devices.state}`) });
        return;
      }
      const counts = life.counts();
      const parts = [`${counts.queued} ${t('status.queued')}`, `${counts.sent + counts.delivered} ${t('status.underway')}`, `${counts.done} ${t('status.done')}`];
      if (counts.failed > 0) parts.push(`${counts.failed} ${t('status.failed')}`);
      if (counts.expired > 0) parts.push(`${counts.expired} ${t('status.expired')}`);
      const troubled = Date.now() - lastWriteTrouble < 30_000;
      if (outbox.size > 0) parts.push(t('status.writes', { count: outbox.size }));
      if (writesFailed > 0) parts.push(t('status.writes-failed', { count: writesFailed }));
      if (downlinkTrouble) parts.push(t('status.downlink-retrying', { reason: downlinkTrouble.slice(0, 60) }));
      if (state?.problem) parts.push(t('status.not-saved'));
      const yellow = troubled || downlinkTrouble !== undefined || state?.problem !== undefined;
      node.status({ fill: yellow ? 'yellow' : 'green', shape: counts.queued + counts.sent + counts.delivered > 0 ? 'dot' : 'ring', text: parts.join(' · ') });
      if (troubled) status.schedule();
    }

    // --- start and stop ----------------------------------------------------------------------------
    // Once the flow runs: writes not settled before the restart go again, commands sent and not
    // answered are published again (devices execute an id once), the rest is sent in turn.
    const startup = setImmediate(() => {
      for (const item of outbox.all()) emitWrite(item);
      const now = Date.now();
      apply(life.expire(now));
      if (settings.transport === 'mqtt') for (const head of life.heads()) if (head.state === 'sent') publish(head, now);
      dispatch();
      status.now();
    });

    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      clearImmediate(startup);
      for (const timer of timers) clearTimeout(timer);
      expiry.cancel();
      receiptTimer.cancel();
      status.cancel();
      unsubscribe();
      (state?.close(removed) ?? Promise.resolve()).catch((err: Error) => node.warn(err.message)).finally(done);
    });
  }

  /** An event of iot-mqtt-broker's second output: `{ topic: kind, payload: { event: kind, clientId } }`. */
  function isConnectionEvent(msg: NodeMessage): boolean {
    const payload = msg.payload as { event?: unknown; clientId?: unknown } | undefined;
    return payload !== null && typeof payload === 'object' && typeof payload.event === 'string' && payload.event === msg.topic && 'clientId' in payload;
  }

  RED.nodes.registerType<CommandNode, CommandDef, Record<string, never>, CommandCredentials>('iot-command', IotCommandNode, { credentials: { downlinkToken: { type: 'password' } } });
};
