/**
 * How a command travels, by transport (pure parts):
 * - MQTT: published at QoS 1 to the owner's command topic (`devices/{owner}/commands`): the
 *   device's own, or its gateway's, which relays it to the sensor it names. The JSON carries the
 *   command id; for MQTT 5 brokers the message also carries correlation data, a response topic
 *   and a message expiry (Node-RED's mqtt out node sends them; iot-mqtt-broker, MQTT 3.1.1, ignores
 *   them).
 * - HTTP: handed to the device in the answer to its next signed report or poll.
 * - Downlink: an HTTP call to the vendor's (or partner's) downlink API, signed as its own callbacks
 *   are: an HMAC of `{timestamp}.{body}` with the shared secret the registry holds for it.
 */
import type { Command } from './command-life';

/** What a device receives: enough to execute it once, in order, and not after it expires. */
export interface WireCommand {
  id: string;
  device: string;
  name: string;
  args: unknown;
  /** ISO 8601: a device does not execute a command after this. */
  expiresAt: string;
  /** Increases with every command: devices apply them in this order. */
  seq: number;
}

export function wireCommand(command: Command): WireCommand {
  return { id: command.id, device: command.device, name: command.name, args: command.args, expiresAt: new Date(command.expires).toISOString(), seq: command.seq };
}

/** A topic template with {owner} and {device}. */
export function topicFor(template: string, command: Pick<Command, 'owner' | 'device'>): string {
  return template.replace(/\{owner\}/g, command.owner).replace(/\{device\}/g, command.device);
}

/** What a topic template may not be: empty, or with MQTT wildcards outside its placeholders. */
export function topicTemplateProblem(template: string): string | undefined {
  if (template.trim() === '') return 'the topic is empty';
  if (/[#+\u0000]/.test(template)) return 'a topic to publish to has no wildcards (+ or #)';
  return undefined;
}

export interface MqttCommandMessage {
  topic: string;
  payload: WireCommand;
  qos: 1;
  retain: false;
  /** MQTT 5 properties, for brokers that speak it. */
  correlationData: Buffer;
  responseTopic: string;
  messageExpiryInterval: number;
}

export function mqttMessage(command: Command, topics: { command: string; reply: string }, now: number): MqttCommandMessage {
  return {
    topic: topicFor(topics.command, command),
    payload: wireCommand(command),
    qos: 1,
    retain: false,
    correlationData: Buffer.from(command.id),
    responseTopic: topicFor(topics.reply, command),
    messageExpiryInterval: Math.max(1, Math.ceil((command.expires - now) / 1000)),
  };
}

export interface DownlinkSettings {
  url: string;
  signatureHeader: string;
  timestampHeader: string;
  /** Put before the hex signature (`sha256=`). */
  signaturePrefix: string;
}

export interface DownlinkRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * The downlink call for a command: `{ owner, device, command }` as JSON, signed with the owner's
 * shared secret (`sign` is the registry's). Undefined when the registry has no secret for the owner.
 */
export function downlinkRequest(command: Command, settings: DownlinkSettings, sign: (content: Buffer) => string | undefined, now: number, bearer?: string): DownlinkRequest | undefined {
  const body = JSON.stringify({ owner: command.owner, device: command.device, command: wireCommand(command) });
  const timestamp = String(Math.floor(now / 1000));
  const headers: Record<string, string> = { 'content-type': 'application/json', [settings.timestampHeader]: timestamp };
  if (bearer) {
    headers.authorization = `Bearer ${bearer}`;
  } else {
    const signature = sign(Buffer.from(`${timestamp}.${body}`));
    if (!signature) return undefined;
    headers[settings.signatureHeader] = `${settings.signaturePrefix}${signature}`;
  }
  return { url: settings.url, headers, body };
}

/** Answers of a downlink API that say "not now" (try again), rather than "never". */
export function downlinkRetriable(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}
