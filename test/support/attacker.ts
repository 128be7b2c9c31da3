/**
 * What an attacker (and the device it attacks) does to a running npm start, from the outside:
 * HTTP requests and MQTT connections from a chosen source address (any of 127.0.0.0/8 reaches a
 * server on 127.0.0.1, so one machine plays many senders), raw MQTT packets where mqtt.js would
 * refuse to send them, and the evidence an attack must not leave: points in the store, records
 * in the Salesforce sandbox. Legitimate devices are the simulator's (simulator/credentials.ts).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import { DeviceKeys, masterSecret } from '../../simulator/credentials';
import { Simulation, type Report } from '../../simulator/run';
import type { PatternName } from '../../simulator/scenarios';
import type { NodeRedProcess } from './node-red-process';
import { eventually, sleep } from './wait';

/** A source address of its own for each attacker, so that one's lockout says nothing about another's. */
export function source(n: number): string {
  return `127.0.0.${n}`;
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Milliseconds from sending to the end of the answer. */
  ms: number;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The local address to send from (default 127.0.0.1). */
  from?: string;
  /** For https: the CA to trust, and the client certificate to present. */
  tls?: { ca?: Buffer; key?: Buffer; cert?: Buffer };
}

/** One HTTP request on a connection of its own, from `from`; JSON content type unless told otherwise. */
export function send(url: string, options: SendOptions = {}): Promise<HttpAnswer> {
  const target = new URL(url);
  const started = Date.now();
  const body = options.body ?? '';
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method ?? 'POST',
        localAddress: options.from ?? '127.0.0.1',
        agent: false,
        headers: { 'content-type': 'application/json', ...options.headers },
        ...(options.tls ?? {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: Date.now() - started }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${url} within 30 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The resident memory of a process, in MB. */
export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

const MB = 1024 * 1024;

/**
 * Sends only the head of a POST announcing a body of `length` bytes, and waits for the answer:
 * its status line, or undefined when none came within timeoutMs (the server waits for the body).
 */
export function announce(url: string, length: number, timeoutMs = 3_000, from = '127.0.0.1'): Promise<string | undefined> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve) => {
    const socket = netConnect({ port: Number(port), host: hostname, localAddress: from });
    let answer = '';
    const done = (line: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(line);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('connect', () => socket.write(`POST ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.split('\r\n')[0]);
    });
    socket.on('error', () => done(answer.split('\r\n')[0] || undefined));
  });
}

/** A POST whose body is `total` bytes sent in chunks (with a length announced, or chunked): the status, and how much was sent by the time it came. */
export function upload(url: string, total: number, announced: boolean, from = '127.0.0.1'): Promise<{ status?: number; sentMb: number; error?: string }> {
  const { hostname, port, pathname } = new URL(url);
  const piece = Buffer.alloc(MB, 0x78);
  return new Promise((resolve) => {
    let sent = 0;
    let status: number | undefined;
    const req = httpRequest({ host: hostname, port, path: pathname, method: 'POST', localAddress: from, headers: { 'content-type': 'application/json', ...(announced ? { 'content-length': String(total) } : {}) } });
    const finish = (error?: string) => resolve({ status, sentMb: sent / MB, ...(error ? { error } : {}) });
    req.on('response', (res) => {
      status = res.statusCode;
      res.resume();
      res.on('end', () => finish());
    });
    // The server closed the connection after its 413: the client may see that before the answer.
    req.on('error', (err: Error & { code?: string }) => finish(err.code));
    const pump = () => {
      while (sent < total && status === undefined) {
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

// MQTT --------------------------------------------------------------------------------------------

export interface MqttTarget {
  port: number;
  /** Connect over TLS with these options (server CA, client certificate). */
  tls?: ConnectionOptions;
}

export interface MqttAttempt {
  /** The CONNACK return code: 0 accepted, 2 identifier rejected, 4 bad username or password, 5 not authorized. */
  connack: number | 'closed' | 'timeout';
  /** The connected client when accepted (the caller ends it). */
  client?: MqttClient;
}

/**
 * One MQTT 3.1.1 connection attempt, from a chosen source address, giving up at the first
 * refusal. mqtt.js's connect() refuses to send some CONNECTs an attacker sends (no client id
 * with a persistent session), so the client is built on a socket of our own.
 */
export function mqttConnect(target: MqttTarget, options: IClientOptions & { from?: string } = {}): Promise<MqttAttempt> {
  const { from, ...rest } = options;
  const socket = (): Socket =>
    target.tls
      ? tlsConnect({ host: '127.0.0.1', port: target.port, ...target.tls, ...({ localAddress: from ?? '127.0.0.1' } as ConnectionOptions) })
      : netConnect({ host: '127.0.0.1', port: target.port, localAddress: from ?? '127.0.0.1' });
  const client = new MqttClient(socket as never, { protocolVersion: 4, protocolId: 'MQTT', keepalive: 60, reconnectPeriod: 0, connectTimeout: 10_000, clean: true, ...rest });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (attempt: MqttAttempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (attempt.connack !== 0) client.end(true);
      resolve(attempt);
    };
    const timer = setTimeout(() => settle({ connack: 'timeout' }), 15_000);
    client.once('connect', () => settle({ connack: 0, client }));
    client.once('error', (err: Error & { code?: number | string }) => settle({ connack: typeof err.code === 'number' ? err.code : 'closed' }));
    client.once('close', () => settle({ connack: 'closed' }));
  });
}

/** Resolves when the broker closes a connected client's connection (or after timeoutMs: 'open'). */
export function closedWithin(client: MqttClient, timeoutMs: number): Promise<'closed' | 'open'> {
  if (client.disconnected || !client.connected) return Promise.resolve('closed');
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), timeoutMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

// Evidence ------------------------------------------------------------------------------------------

/** The values victoria-metrics holds for one field of the `readings` measurement and one device tag. */
export async function storedValues(storeUrl: string, field: string, device: string): Promise<number[]> {
  await fetch(`${storeUrl}/internal/force_flush`);
  const selector = `readings_${field}{device=${JSON.stringify(device)}}`;
  const text = await fetch(`${storeUrl}/api/v1/export?match[]=${encodeURIComponent(selector)}`).then((r) => r.text());
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => (JSON.parse(line) as { values: number[] }).values);
}

/** Every series of the `readings` measurement victoria-metrics holds: its labels and values. */
export async function storedSeries(storeUrl: string, field: string): Promise<Array<{ metric: Record<string, string>; values: number[] }>> {
  await fetch(`${storeUrl}/internal/force_flush`);
  const text = await fetch(`${storeUrl}/api/v1/export?match[]=${encodeURIComponent(`{__name__="readings_${field}"}`)}`).then((r) => r.text());
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { metric: Record<string, string>; values: number[] });
}

export type SandboxRecord = Record<string, unknown> & { Id: string };

/** The sandbox's records of one sObject type. */
export async function sandboxRecords(salesforceUrl: string, type: string): Promise<SandboxRecord[]> {
  const response = await fetch(`${salesforceUrl}/_sandbox/records?type=${encodeURIComponent(type)}`);
  if (!response.ok) throw new Error(`sandbox records of ${type}: ${response.status}`);
  return (await response.json()) as SandboxRecord[];
}

/** Waits until `probe` finds something (the effect of a legitimate message sent after the attack), and returns it. */
export function sentinel<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  return eventually(what, probe, timeoutMs, 250);
}

// Legitimate devices ------------------------------------------------------------------------------

/** The simulator's keys for a running npm start (its master secret file), as its devices sign. */
export function deviceKeys(node: NodeRedProcess): DeviceKeys {
  return new DeviceKeys(masterSecret(node.dataDir));
}

/**
 * The simulator's devices of `patterns` reporting to `node` (two of each, a round a second) while
 * `attack` runs and for `afterMs` after it: the report says whether every honest message was
 * acknowledged (2xx, PUBACK) during and after the attack.
 */
export async function whileDevicesReport(node: NodeRedProcess, patterns: PatternName[], attack: () => Promise<void>, afterMs = 3_000): Promise<Report> {
  const simulation = new Simulation({
    patterns,
    devices: 2,
    rate: 1,
    duration: Infinity,
    bad: false,
    seed: 12,
    keys: deviceKeys(node),
    target: { http: node.editorUrl, brokerHost: '127.0.0.1', brokerPorts: { buffered: node.brokerPorts.buffered, gateway: node.brokerPorts.gateway } },
    settleMs: 30_000,
  });
  const running = simulation.run();
  try {
    await attack();
    await sleep(afterMs);
  } finally {
    simulation.stop();
  }
  return running;
}

/** What went wrong for honest devices in a report: messages not acknowledged, with why. */
export function honestFailures(report: Report): string[] {
  return report.sent.filter((s) => !s.bad && !s.accepted).map((s) => `${s.pattern} ${s.sender} ${s.kind}: ${s.status}${s.code ? ` ${s.code}` : ''}`);
}

/** Honest messages acknowledged per pattern (so that a test can see the devices did report). */
export function acknowledgedPerPattern(report: Report): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of report.sent) if (!s.bad && s.accepted) counts[s.pattern] = (counts[s.pattern] ?? 0) + 1;
  return counts;
}

/** A UTF-8 string as MQTT encodes it: two bytes of length, then the bytes. */
function mqttString(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * A CONNECT (MQTT 3.1.1) written byte by byte, for what mqtt.js will not send (an empty client id
 * with a persistent session): the CONNACK return code the broker answers, or 'closed'.
 */
export function rawConnect(port: number, fields: { clientId: string; clean: boolean; username?: string; password?: string; from?: string }): Promise<number | 'closed'> {
  const flags = (fields.username !== undefined ? 0x80 : 0) | (fields.password !== undefined ? 0x40 : 0) | (fields.clean ? 0x02 : 0);
  const body = Buffer.concat([
    mqttString('MQTT'),
    Buffer.from([4, flags, 0, 60]),
    mqttString(fields.clientId),
    ...(fields.username !== undefined ? [mqttString(fields.username)] : []),
    ...(fields.password !== undefined ? [mqttString(fields.password)] : []),
  ]);
  const length: number[] = [];
  let rest = body.length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    length.push(byte);
  } while (rest > 0);
  return new Promise((resolve) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress: fields.from ?? '127.0.0.1' });
    let received = Buffer.alloc(0);
    const done = (answer: number | 'closed') => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('closed'), 10_000);
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from([0x10, ...length]), body])));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // CONNACK: 0x20, remaining length 2, flags, return code.
      if (received.length >= 4 && received[0] === 0x20) done(received[3]);
    });
    socket.on('close', () => done('closed'));
    socket.on('error', () => done('closed'));
  });
}
