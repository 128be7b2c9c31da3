/**
 * The contract between iot-device-registry (who the devices are, and the only holder of their
 * keys) and the nodes that authenticate devices against it (iot-device-auth, iot-mqtt-broker).
 *
 * Key material never leaves the registry node: a consumer hands it what a device presented (an
 * API key, a signature and what it covers, a token) and gets back a verdict with the device's
 * identity, or a rejection code. Consumers own what is about the endpoint (where the credential
 * is found, audiences, size caps, replay caches, rate limits).
 */
import type { NodeAPI } from 'node-red';
import type { DeviceIdentity } from './device';

/** Methods whose proof is made with a key the registry holds or derives (a shared secret). */
export type SecretMethod = 'apikey' | 'hmac' | 'sas' | 'jwt' | 'webhook';
export const SECRET_METHODS: readonly SecretMethod[] = ['apikey', 'hmac', 'sas', 'jwt', 'webhook'];
/** x509: a client certificate, its private key proven by the TLS handshake. */
export type AuthMethod = SecretMethod | 'x509';
export const AUTH_METHODS: readonly AuthMethod[] = [...SECRET_METHODS, 'x509'];

/** Why a message or a connection was refused. Stable: flows switch on them. */
export type RejectCode =
  | 'missing_credentials'
  | 'malformed'
  | 'too_large'
  | 'unknown_device'
  | 'revoked'
  | 'bad_key'
  | 'method_not_allowed'
  | 'bad_signature'
  | 'bad_algorithm'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_audience'
  | 'wrong_subject'
  | 'too_long_lived'
  | 'replayed'
  | 'unbound_token'
  | 'wrong_body'
  | 'untrusted_certificate'
  | 'locked_out'
  | 'rate_limited'
  | 'not_under_gateway'
  | 'not_authenticated'
  | 'registry_unavailable';

/** What a device presented, by method. Nothing here is a stored secret. */
export type Presented =
  /** An API key, with the device id it claims when the transport gives one. */
  | { method: 'apikey'; id?: string; key: string }
  /**
   * An HMAC signature over the canonical string of id, timestamp, nonce, scope (`POST /path?q` for
   * HTTP, the topic for MQTT) and the SHA-256 (hex) of the exact body bytes.
   */
  | { method: 'hmac'; id: string; timestamp: string; nonce: string; signature: string; scope: string; bodyDigest: string }
  /** An Azure IoT Hub style shared access signature: `SharedAccessSignature sr=…&sig=…&se=…`. */
  | { method: 'sas'; id?: string; token: string }
  /** A compact JWT; the device is its `sub` (or `iss`). */
  | { method: 'jwt'; id?: string; token: string }
  /** A vendor webhook: the signature header as sent, and the exact bytes it signs. */
  | { method: 'webhook'; id: string; signature: string; content: Buffer; timestamp?: string }
  /**
   * A client certificate from a TLS connection that asked for one: the DER certificates the
   * client sent, its own first. The handshake proved the client holds the certificate's key; the
   * registry decides whether a fleet CA issued it, which device it names, and whether it is revoked.
   */
  | { method: 'x509'; id?: string; chain: readonly Buffer[] };

/**
 * The default clock tolerance for token times, in seconds. Flows from before it was a setting of
 * its own get it too: their tolerance was the whole timestamp window (300 s), which accepted
 * tokens minutes after they expired.
 */
export const TOKEN_SKEW_SECONDS = 30;

/** What an endpoint accepts. Times in milliseconds. */
export interface VerifyPolicy {
  /** How far a signed timestamp (HMAC, webhooks) may lie from now: the window a signed message is good for. */
  skewMs: number;
  /** Tolerated clock difference for token times (JWT `exp`, `nbf`, `iat`; SAS expiry): tokens carry their own lifetime. */
  tokenSkewMs: number;
  /** The longest lifetime a JWT (exp − iat) or a SAS token (se − now) may have. */
  maxLifetimeMs: number;
  /** JWT `aud` must name one of these; empty: `aud` is not checked. */
  audiences?: readonly string[];
  /** JWT algorithms this endpoint accepts; a device's own allow-list narrows it further. */
  algorithms?: readonly string[];
  /** SAS `sr` must start with this (e.g. `myhub.example.com/devices/`); empty: any resource naming the device. */
  sasResource?: string;
  /** How webhook signatures are made. */
  webhook?: { hash: 'sha256' | 'sha1' | 'sha512'; encoding: 'hex' | 'base64'; prefix: string };
}

export type Verdict =
  | {
      ok: true;
      device: DeviceIdentity & { method: string };
      /**
       * What the consumer's replay cache must remember, and until when (ms): a nonce, a `jti`, a
       * webhook signature. Absent when the credential is reusable by design (API keys, SAS).
       */
      replay?: { key: string; until: number };
    }
  | {
      ok: false;
      code: RejectCode;
      message: string;
      id?: string;
      /** When the same request may be tried again (locked_out): a 429 says it in Retry-After. */
      retryAfterMs?: number;
    };

/** A registered device as other nodes may see it: no key material. */
export interface DeviceView {
  id: string;
  enabled: boolean;
  gateway?: string;
  /** Topic filters this device may publish to and subscribe to (`{id}` stands for its id). */
  topics?: { publish?: readonly string[]; subscribe?: readonly string[] };
  meta?: Record<string, unknown>;
}

export interface DeviceRegistryService {
  /** `loading` until a registry file was read; `failed` when there is nothing usable. */
  readonly state: 'ready' | 'loading' | 'failed';
  /**
   * `source` is where the credential came from (an IP address, a broker client's address): failed
   * attempts lock out that device id from that source only, so nobody can lock a device out of
   * its own network by failing on purpose elsewhere.
   */
  verify(presented: Presented, policy: VerifyPolicy, now: number, source?: string): Verdict | Promise<Verdict>;
  /** A registered device, or undefined. Revoked devices are returned with enabled: false. */
  device(id: string): DeviceView | undefined;
  /**
   * Whether `sensorId` may report through `gatewayId`: an enabled device registered under it.
   * Its identity carries `gateway` and the sensor's own meta.
   */
  sensor(gatewayId: string, sensorId: string, method: string): Verdict;
  /**
   * A signature for a message the pack sends to an integration that speaks for devices (a vendor
   * cloud's or a partner's downlink API): the HMAC of `content` with the shared secret its own
   * webhooks are signed with, in hex. Undefined when the id is not registered, is revoked, or has
   * no webhook secret. The key never leaves the registry.
   */
  sign(id: string, content: Buffer, hash: 'sha256' | 'sha1' | 'sha512'): string | undefined;
  /** Called after every reload or revocation change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

/** The registry service a config node id names, or undefined when there is none (yet). */
export function registryService(RED: NodeAPI, id: string | undefined): DeviceRegistryService | undefined {
  if (!id) return undefined;
  const node = RED.nodes.getNode(id) as (Partial<{ registry: DeviceRegistryService }> & object) | null;
  return node?.registry;
}
