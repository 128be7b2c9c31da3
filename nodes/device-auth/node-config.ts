/**
 * The editor's properties of an iot-device-auth node, turned into the core's settings, with a
 * clear error for anything that cannot work.
 */
import { AUTH_METHODS, TOKEN_SKEW_SECONDS, type AuthMethod } from '../shared/device-registry-api';
import { DEFAULT_PARSE_LIMITS } from '../shared/json-limits';
import { choiceSetting, listSetting, numberSetting, SettingsError } from '../shared/settings';
import type { AuthMode, AuthSettings } from './auth-core';

export interface DeviceAuthProperties {
  registry?: string;
  /** An iot-redis config node: replays and rate limits shared with the other instances. */
  redis?: string;
  method?: string;
  accepted?: string[];
  deviceIdProperty?: string;
  deviceIdPropertyType?: string;
  apiKeyProperty?: string;
  apiKeyPropertyType?: string;
  timestampProperty?: string;
  timestampPropertyType?: string;
  nonceProperty?: string;
  noncePropertyType?: string;
  signatureProperty?: string;
  signaturePropertyType?: string;
  tokenProperty?: string;
  tokenPropertyType?: string;
  skew?: string | number;
  tokenSkew?: string | number;
  maxLifetime?: string | number;
  audience?: string;
  algorithms?: string;
  requireJti?: boolean;
  sasResource?: string;
  webhookHash?: string;
  webhookEncoding?: string;
  webhookPrefix?: string;
  webhookContent?: string;
  maxBytes?: string | number;
  maxDepth?: string | number;
  maxKeys?: string | number;
  timeField?: string;
  parse?: string;
  allowedFields?: string;
  rate?: string | number;
  burst?: string | number;
  anonymousSource?: string;
  sourceProperty?: string;
  sourcePropertyType?: string;
  gateway?: boolean;
  batchPath?: string;
  sensorField?: string;
  gatewayOutput?: string;
  gatewayScoped?: boolean;
  scopedFields?: string;
  replayCapacity?: string | number;
  answer?: string;
  answerStatus?: string | number;
  answerWithin?: string | number;
  catchErrors?: boolean;
  [property: string]: unknown;
}

/** Where each credential is read when a flow does not say (the editor's defaults): HTTP headers. */
export const CREDENTIAL_DEFAULTS = {
  deviceId: 'req.headers["x-device-id"]',
  apiKey: 'req.headers["x-api-key"]',
  timestamp: 'req.headers["x-timestamp"]',
  nonce: 'req.headers["x-nonce"]',
  signature: 'req.headers["x-signature"]',
  token: 'req.headers.authorization',
} as const;

const MODES: readonly AuthMode[] = ['auto', 'anonymous', 'apikey', 'hmac', 'sas', 'jwt', 'webhook', 'x509', 'broker'];

export function settingsFromProperties(p: DeviceAuthProperties): AuthSettings {
  const mode = choiceSetting(p.method, MODES, 'auto', 'the method');
  const webhookContent = p.webhookContent || '{body}';
  if (webhookContent.split('{body}').length !== 2) throw new SettingsError('the webhook signed content must hold {body} exactly once');
  const rate = numberSetting(p.rate, 0, 'the rate limit', { min: 0 });
  // Missing from a current node: the editor's default, every method (older nodes have theirs from migrations.ts).
  const accepted = p.accepted ?? AUTH_METHODS;
  const unknown = accepted.filter((m) => !(AUTH_METHODS as readonly string[]).includes(m));
  if (unknown.length > 0) throw new SettingsError(`unknown accepted method(s) ${unknown.join(', ')}`);
  if (mode === 'auto' && accepted.length === 0) throw new SettingsError('accept at least one method');
  const settings: AuthSettings = {
    mode,
    accepted: new Set(accepted as AuthMethod[]),
    policy: {
      skewMs: numberSetting(p.skew, 300, 'the clock skew', { min: 0 }) * 1000,
      tokenSkewMs: numberSetting(p.tokenSkew, TOKEN_SKEW_SECONDS, 'the token clock tolerance', { min: 0 }) * 1000,
      maxLifetimeMs: numberSetting(p.maxLifetime, 3600, 'the maximum token lifetime', { min: 1 }) * 1000,
      audiences: listSetting(p.audience),
      algorithms: listSetting(p.algorithms),
      ...(p.sasResource ? { sasResource: p.sasResource } : {}),
      webhook: {
        hash: choiceSetting(p.webhookHash, ['sha256', 'sha1', 'sha512'] as const, 'sha256', 'the webhook hash'),
        encoding: choiceSetting(p.webhookEncoding, ['hex', 'base64'] as const, 'hex', 'the webhook encoding'),
        prefix: p.webhookPrefix ?? '',
      },
    },
    requireJti: p.requireJti === true,
    maxBytes: numberSetting(p.maxBytes, 65_536, 'the size limit', { min: 0 }),
    limits: {
      maxDepth: numberSetting(p.maxDepth, DEFAULT_PARSE_LIMITS.maxDepth, 'the depth limit', { min: 1 }),
      maxKeys: numberSetting(p.maxKeys, DEFAULT_PARSE_LIMITS.maxKeys, 'the key limit', { min: 1 }),
    },
    // Property missing (an older flow): the reading's own `timestamp`, as for new nodes.
    timeField: (p.timeField ?? 'timestamp').trim(),
    parse: choiceSetting(p.parse, ['auto', 'json', 'raw'] as const, 'auto', 'the body parsing'),
    allowedFields: listSetting(p.allowedFields),
    scopedFields: listSetting(p.scopedFields),
    webhookContent,
    replayCapacity: numberSetting(p.replayCapacity, 100_000, 'the replay cache size', { min: 1 }),
  };
  if (rate > 0) settings.rate = { perSecond: rate, burst: numberSetting(p.burst, Math.max(1, Math.ceil(rate)), 'the burst', { min: 1 }) };
  if (p.gateway) {
    if (mode === 'anonymous') throw new SettingsError('an anonymous source cannot be a gateway');
    settings.gateway = { batchPath: (p.batchPath ?? 'readings').trim(), sensorField: (p.sensorField || 'sensor').trim(), split: p.gatewayOutput !== 'batch', scoped: p.gatewayScoped === true };
  }
  return settings;
}

/**
 * Who answers an HTTP sender: the flow (an http response node, as before), or this node itself
 * once what it handed on is settled ("stored": 2xx once a buffer stored it).
 */
export interface AnswerSettings {
  mode: 'flow' | 'stored';
  /** The status of a stored answer: 200, 202 or 204. */
  status: number;
  /** How long a receipt waits for its settlement before the sender is told to send again. */
  withinMs: number;
}

export const ANSWER_STATUSES = [200, 202, 204] as const;

export function answerFromProperties(p: DeviceAuthProperties): AnswerSettings {
  const mode = choiceSetting(p.answer, ['flow', 'stored'] as const, 'flow', 'who answers HTTP senders');
  const status = numberSetting(p.answerStatus, 202, 'the answer status', { min: 0 });
  if (!(ANSWER_STATUSES as readonly number[]).includes(status)) throw new SettingsError(`the answer status must be one of ${ANSWER_STATUSES.join(', ')}`);
  const within = numberSetting(p.answerWithin, 30, 'the answer time', { min: 0.001 });
  return { mode, status, withinMs: within * 1000 };
}
