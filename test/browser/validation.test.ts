/**
 * Editor validation as a person meets it, in Chromium: for every validated field of every node of
 * the pack, an invalid entry marks the node invalid (its `valid` flag, the red triangle on the
 * canvas or in the Configuration nodes sidebar, and a reason that names the field) and a valid one
 * does not. The fields are found in the editor's own type definitions, so a field given a check
 * later without cases here fails the first test.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNodeMaker, openEditor, packTypes as loadedPackTypes, type EditorNodeDef, type NodeMaker } from '../support/browser';
import { NodeRedProcess } from '../support/node-red-process';

type Props = Record<string, unknown>;
/** Entries of one field: each is merged over the node's defaults (and its type's base below). */
interface FieldCases {
  invalid: Props[];
  valid: Props[];
}

/** Config nodes the cases refer to, imported first (valid, and one invalid of each kind). */
const REGISTRY = 'v.registry';
const STORE = 'v.store';
const SALESFORCE = 'v.salesforce';
const TLS = 'v.tls';
const BAD_REGISTRY = 'v.registry.bad';
const BAD_STORE = 'v.store.bad';
const BAD_SALESFORCE = 'v.salesforce.bad';
const REDIS = 'v.redis';
const BAD_REDIS = 'v.redis.bad';
const configs = [
  { id: REGISTRY, type: 'iot-device-registry', name: 'registry', source: 'list', devices: [{ id: 'pump-1', enabled: true }] },
  { id: BAD_REGISTRY, type: 'iot-device-registry', name: 'bad registry', source: 'file', file: '' },
  { id: STORE, type: 'iot-influxdb', name: 'store', url: 'http://127.0.0.1:8086', version: 'v2', bucket: 'iot' },
  { id: BAD_STORE, type: 'iot-influxdb', name: 'bad store', url: 'not a url', version: 'v2', bucket: 'iot' },
  { id: SALESFORCE, type: 'iot-salesforce-connection', name: 'salesforce', authMethod: 'jwt', consumerKey: 'key', username: 'user@example.com' },
  { id: BAD_SALESFORCE, type: 'iot-salesforce-connection', name: 'bad salesforce', authMethod: 'jwt', consumerKey: '', username: 'user@example.com' },
  { id: TLS, type: 'tls-config', name: 'tls' },
  { id: REDIS, type: 'iot-redis', name: 'redis', url: 'redis://127.0.0.1:6379' },
  { id: BAD_REDIS, type: 'iot-redis', name: 'bad redis', url: 'http://127.0.0.1:6379' },
];

/** What each type needs to be valid apart from the field under test. */
const base: Record<string, Props> = {
  'iot-device-auth': { registry: REGISTRY },
  'iot-influxdb': { bucket: 'iot' },
  'iot-salesforce-connection': { consumerKey: 'key', username: 'user@example.com' },
  'iot-mqtt-broker': { registry: REGISTRY },
  'iot-salesforce-out': { connection: SALESFORCE },
  'iot-timeseries-out': { store: STORE },
  'iot-salesforce-in': { connection: SALESFORCE },
  'iot-command': { registry: REGISTRY },
};

const whole = (field: string, bad: string[], good: string[], context: Props = {}): FieldCases => ({
  invalid: bad.map((v) => ({ ...context, [field]: v })),
  valid: good.map((v) => ({ ...context, [field]: v })),
});

const cases: Record<string, Record<string, FieldCases>> = {
  'iot-buffer': {
    fsyncWindow: { invalid: [{ fsyncWindow: 'abc' }, { fsyncWindow: '1001' }, { fsyncWindow: '-1' }, { fsyncWindow: '' }], valid: [{ fsyncWindow: '0' }, { fsyncWindow: '5' }, { backend: 'redis', fsyncWindow: 'abc' }] },
    redisUrl: {
      invalid: [{ backend: 'redis', redisUrl: 'http://127.0.0.1:6379' }, { backend: 'redis', redisUrl: '' }],
      valid: [{ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379' }, { backend: 'redis', redisUrl: 'rediss://cache.example.com:6380/2' }, { backend: 'redis', redisUrl: '${REDIS_URL}' }, { backend: 'local', redisUrl: '' }],
    },
    claimIdle: { invalid: [{ backend: 'redis', claimIdle: '0' }, { backend: 'redis', claimIdle: 'soon' }], valid: [{ backend: 'redis', claimIdle: '60' }, { backend: 'local', claimIdle: 'soon' }] },
    maxInFlight: whole('maxInFlight', ['0', '1.5', 'abc', '', 'automatic'], ['1', '10', 'auto']),
    rate: whole('rate', ['-1', 'fast', ''], ['0', '2.5']),
    batchSize: whole('batchSize', ['0', '100001', 'x'], ['1', '500']),
    batchWait: whole('batchWait', ['-1', '0.5'], ['0', '1000']),
    ackTimeout: whole('ackTimeout', ['0', 'x'], ['0.5', '30']),
    maxAttempts: whole('maxAttempts', ['-1', '1.5'], ['0', '5']),
    retryDelay: whole('retryDelay', ['-1', '86401'], ['0', '1']),
    retryDelayMax: whole('retryDelayMax', ['x', '-2'], ['60']),
    maxMessages: whole('maxMessages', ['-5', 'many'], ['0', '1000000']),
    maxSize: { invalid: [{ maxSize: '-1' }, { maxSize: 'big' }], valid: [{ maxSize: '1024' }, { backend: 'redis', maxSize: 'big' }] },
    // Missing in a flow saved before they existed: the default.
    maxDepth: whole('maxDepth', ['0', '1001', 'deep'], ['1', '32', '']),
    maxKeys: whole('maxKeys', ['0', 'many', '1.5'], ['10000', '']),
    crashLimit: whole('crashLimit', ['-1', '1.5', 'x'], ['0', '3', '']),
  },
  'iot-device-auth': {
    // Empty (and missing in older flows): the node's own state.
    redis: { invalid: [{ redis: BAD_REDIS }, { redis: 'v.nowhere' }], valid: [{ redis: '' }, { redis: REDIS }] },
    registry: {
      invalid: [{ method: 'apikey', registry: '' }, { method: 'auto', registry: '' }, { method: 'broker', gateway: true, registry: '' }, { method: 'hmac', registry: BAD_REGISTRY }, { method: 'jwt', registry: 'v.nowhere' }],
      valid: [{ method: 'anonymous', registry: '' }, { method: 'broker', registry: '' }, { method: 'apikey', registry: REGISTRY }],
    },
    skew: whole('skew', ['-1', 'abc'], ['300', '0']),
    maxLifetime: whole('maxLifetime', ['0', 'long'], ['3600']),
    webhookContent: {
      invalid: [{ method: 'webhook', webhookContent: '{body}{body}' }, { method: 'webhook', webhookContent: 'no body' }],
      valid: [{ method: 'webhook', webhookContent: '{body}' }, { method: 'webhook', webhookContent: '{timestamp}.{body}' }, { method: 'webhook', webhookContent: '' }],
    },
    maxBytes: whole('maxBytes', ['-1', 'x'], ['65536', '0']),
    rate: whole('rate', ['-1', 'x'], ['', '5']),
    burst: whole('burst', ['0', 'x'], ['', '10']),
    sensorField: { invalid: [{ gateway: true, sensorField: '' }, { gateway: true, sensorField: '  ' }], valid: [{ gateway: true, sensorField: 'sensor' }, { gateway: false, sensorField: '' }] },
    replayCapacity: whole('replayCapacity', ['0', 'x'], ['100000']),
    maxDepth: whole('maxDepth', ['0', '1.5', 'deep'], ['32', '']),
    maxKeys: whole('maxKeys', ['0', 'many'], ['10000']),
    answerStatus: whole('answerStatus', ['201', '500', 'ok'], ['200', '202', '204']),
    answerWithin: whole('answerWithin', ['0', 'soon'], ['30', '0.5']),
    accepted: { invalid: [{ method: 'auto', accepted: [] }], valid: [{ method: 'auto', accepted: ['apikey', 'hmac'] }, { method: 'hmac', accepted: [] }] },
    tokenSkew: whole('tokenSkew', ['-1', 'x'], ['30', '']),
    scopedFields: whole('scopedFields', ['temperature.value', 'a;b'], ['', 'temperature, battery']),
    deviceIdProperty: {
      invalid: [{ method: 'apikey', deviceIdProperty: 'req.headers[', deviceIdPropertyType: 'msg' }, { method: 'jwt', deviceIdProperty: '$$(', deviceIdPropertyType: 'jsonata' }],
      valid: [{ method: 'apikey', deviceIdProperty: 'req.headers["x-device-id"]', deviceIdPropertyType: 'msg' }, { method: 'broker', deviceIdProperty: 'req.headers[', deviceIdPropertyType: 'msg' }, { method: 'hmac', deviceIdProperty: '', deviceIdPropertyType: 'msg' }],
    },
    apiKeyProperty: {
      invalid: [{ method: 'apikey', apiKeyProperty: 'req.headers[', apiKeyPropertyType: 'msg' }],
      valid: [{ method: 'apikey', apiKeyProperty: 'req.headers["x-api-key"]', apiKeyPropertyType: 'msg' }, { method: 'hmac', apiKeyProperty: 'req.headers[', apiKeyPropertyType: 'msg' }, { method: 'apikey', apiKeyProperty: 'KEY', apiKeyPropertyType: 'env' }],
    },
    timestampProperty: {
      invalid: [{ method: 'hmac', timestampProperty: 'req..headers', timestampPropertyType: 'msg' }],
      valid: [{ method: 'hmac', timestampProperty: 'req.headers["x-timestamp"]', timestampPropertyType: 'msg' }, { method: 'apikey', timestampProperty: '', timestampPropertyType: 'msg' }],
    },
    nonceProperty: {
      invalid: [{ method: 'hmac', nonceProperty: 'req.headers[', noncePropertyType: 'msg' }],
      valid: [{ method: 'hmac', nonceProperty: 'req.headers["x-nonce"]', noncePropertyType: 'msg' }],
    },
    signatureProperty: {
      invalid: [{ method: 'webhook', signatureProperty: 'req.headers[', signaturePropertyType: 'msg' }],
      valid: [{ method: 'webhook', signatureProperty: 'req.headers["x-signature"]', signaturePropertyType: 'msg' }],
    },
    tokenProperty: {
      invalid: [{ method: 'jwt', tokenProperty: 'req.headers[', tokenPropertyType: 'msg' }],
      valid: [{ method: 'jwt', tokenProperty: 'req.headers.authorization', tokenPropertyType: 'msg' }, { method: 'apikey', tokenProperty: '', tokenPropertyType: 'msg' }],
    },
    sourceProperty: {
      invalid: [{ method: 'anonymous', anonymousSource: 'property', sourceProperty: '', sourcePropertyType: 'msg' }, { method: 'anonymous', anonymousSource: 'property', sourceProperty: 'req.ip[', sourcePropertyType: 'msg' }],
      valid: [{ method: 'anonymous', anonymousSource: 'ip', sourceProperty: '' }, { method: 'anonymous', anonymousSource: 'property', sourceProperty: 'req.ip', sourcePropertyType: 'msg' }, { method: 'apikey', anonymousSource: 'property', sourceProperty: '' }],
    },
  },
  'iot-device-registry': {
    devices: {
      invalid: [
        { source: 'list', devices: [{ id: 'pump 1 !' }] },
        { source: 'list', devices: [{ id: 'pump-1' }, { id: 'pump-1' }] },
        { source: 'list', devices: [{ id: 'pump-1', meta: '{not json' }] },
        { source: 'list', devices: [{ id: 'pump-1', meta: '[1, 2]' }] },
        { source: 'list', devices: [{ id: '' }] },
        { source: 'list', devices: [{ id: 'cam-1', certificates: 'not a fingerprint' }] },
        { source: 'list', devices: [{ id: 'pump-1', methods: 'apikey password' }] },
        { source: 'list', devices: [{ id: 'pump-1', gateway: 'gw 1' }] },
        { source: 'list', devices: [{ id: 'pump-1', gateway: 'pump-1' }] },
      ],
      valid: [{ source: 'list', devices: [] }, { source: 'list', devices: [{ id: 'pump-1', meta: '{"site":"north"}', methods: 'apikey x509', gateway: 'gw-2:s1' }, { id: 'gw-2:s1' }] }, { source: 'file', file: '/data/devices.csv', devices: [{ id: 'pump 1 !' }] }],
    },
    file: { invalid: [{ source: 'file', file: '' }, { source: 'file', file: '   ' }], valid: [{ source: 'file', file: 'devices.csv' }, { source: 'list', file: '' }] },
    masterEnv: {
      invalid: [{ source: 'derived', masterSource: 'env', masterEnv: '1BAD' }, { source: 'derived', masterSource: 'env', masterEnv: '' }],
      valid: [{ source: 'derived', masterSource: 'env', masterEnv: 'IOT_DEVICE_MASTER_SECRET' }, { source: 'derived', masterSource: 'credential', masterEnv: '' }],
    },
    idPattern: { invalid: [{ source: 'derived', idPattern: '(' }, { source: 'derived', idPattern: '[a-' }], valid: [{ source: 'derived', idPattern: '' }, { source: 'derived', idPattern: '^pump-\\d+$' }] },
    derivedMeta: { invalid: [{ source: 'derived', derivedMeta: '{not json' }, { source: 'derived', derivedMeta: '[1]' }], valid: [{ source: 'derived', derivedMeta: '' }, { source: 'derived', derivedMeta: '{"fleet":"a"}' }] },
    keyDerivation: { invalid: [{ source: 'derived', keyDerivation: 'v3' }], valid: [{ source: 'derived', keyDerivation: 'v1' }, { source: 'derived', keyDerivation: 'v2' }, { source: 'list', keyDerivation: 'v3' }] },
    fleets: {
      invalid: [
        { fleets: [{ name: 'plant', ca: '' }] },
        { fleets: [{ name: 'plant', ca: 'PEM' }, { name: 'plant', ca: 'PEM' }] },
        { fleets: [{ name: 'plant', ca: 'PEM', idFrom: 'serial' }] },
        { fleets: [{ name: 'plant', ca: 'PEM', ids: '(' }] },
      ],
      valid: [{ fleets: [] }, { fleets: [{ name: 'plant', ca: 'PEM', idFrom: 'cn', ids: '^cam-\\d+$' }] }],
    },
    lockFailures: whole('lockFailures', ['-1', 'ten', '1.5'], ['0', '10']),
    lockWindow: whole('lockWindow', ['-1', 'x'], ['60']),
    lockDuration: whole('lockDuration', ['-1', 'x'], ['300']),
  },
  'iot-influxdb': {
    url: { invalid: [{ url: '' }, { url: 'ftp://store' }, { url: 'not a url' }], valid: [{ url: 'http://127.0.0.1:8086' }, { url: 'https://eu-central-1.aws.cloud2.influxdata.com' }, { url: '${INFLUX_URL}' }] },
    bucket: { invalid: [{ version: 'v2', bucket: '' }], valid: [{ version: 'v2', bucket: 'iot' }, { version: 'v1', bucket: '', database: 'iot' }] },
    database: { invalid: [{ version: 'v1', database: '' }], valid: [{ version: 'v1', database: 'iot' }, { version: 'v2', database: '', bucket: 'iot' }] },
    timeout: whole('timeout', ['0', 'x', '-3'], ['', '10', '2.5']),
  },
  'iot-mqtt-broker': {
    registry: { invalid: [{ registry: '' }, { registry: BAD_REGISTRY }, { registry: 'v.nowhere' }], valid: [{ registry: REGISTRY }] },
    port: {
      invalid: [{ port: '70000' }, { port: 'abc' }, { port: '', wsPort: '' }, { port: '1.5' }],
      valid: [{ port: '1883' }, { port: '0' }, { port: '', wsPort: '8080' }, { port: '${IOT_DEVICES_MQTT_PORT}' }],
    },
    wsPort: whole('wsPort', ['70000', 'x'], ['', '8080']),
    tls: { invalid: [{ usetls: true, tls: '' }], valid: [{ usetls: false, tls: '' }, { usetls: true, tls: TLS }] },
    methods: { invalid: [{ methods: [] }, { methods: ['x509'], usetls: false }], valid: [{ methods: ['apikey'] }, { methods: ['apikey', 'jwt', 'sas'] }, { methods: ['x509'], usetls: true, tls: TLS, requestCert: true }] },
    maxPacket: whole('maxPacket', ['-1', '1.5', 'x'], ['0', '131072']),
    retainedPerDevice: whole('retainedPerDevice', ['-1', 'x'], ['0', '10']),
    retainedBytesPerDevice: whole('retainedBytesPerDevice', ['-1', 'x'], ['65536']),
    queuedPerDevice: whole('queuedPerDevice', ['-1', 'x'], ['1000']),
    queuedBytesPerDevice: whole('queuedBytesPerDevice', ['-1', 'x'], ['1048576']),
    skew: whole('skew', ['-1', 'x'], ['300']),
    maxLifetime: whole('maxLifetime', ['0', 'x'], ['86400']),
    maxBytes: whole('maxBytes', ['0', '1.5', 'big'], ['1048576']),
    maxDepth: whole('maxDepth', ['0', 'deep'], ['32']),
    maxKeys: whole('maxKeys', ['0', 'many'], ['10000']),
    answerWithin: whole('answerWithin', ['0', 'soon'], ['30']),
    publishTopics: whole('publishTopics', ['devices/#/x', '', 'a/b+/c'], ['devices/{id}/#', 'devices/{id}/up, alerts/+']),
    subscribeTopics: whole('subscribeTopics', ['devices/#/x', ''], ['devices/{id}/#', '#']),
  },
  'iot-redis': {
    url: {
      invalid: [{ url: 'http://127.0.0.1:6379' }, { url: '' }, { url: 'redis://app:secret@cache:6379' }],
      valid: [{ url: 'redis://127.0.0.1:6379' }, { url: 'rediss://cache.example.com:6380/2' }, { url: '${REDIS_URL}' }, { topology: 'cluster', nodes: '10.0.0.1:7000', url: '' }],
    },
    nodes: { invalid: [{ topology: 'cluster', nodes: '' }, { topology: 'cluster', nodes: 'a:b:c' }], valid: [{ topology: 'cluster', nodes: '10.0.0.1:7000, 10.0.0.2:7001' }, { topology: 'single', nodes: '' }] },
    sentinels: { invalid: [{ topology: 'sentinel', masterName: 'mymaster', sentinels: '' }], valid: [{ topology: 'sentinel', masterName: 'mymaster', sentinels: 's1:26379 s2' }, { topology: 'single', sentinels: '' }] },
    masterName: { invalid: [{ topology: 'sentinel', sentinels: 's1', masterName: '' }], valid: [{ topology: 'sentinel', sentinels: 's1', masterName: 'mymaster' }, { topology: 'single', masterName: '' }] },
    prefix: whole('prefix', ['{iot}', 'a b'], ['', 'plant-7:']),
    timeout: whole('timeout', ['0', 'soon', '601'], ['', '5', '0.5']),
  },
  'iot-salesforce-connection': {
    loginUrl: {
      invalid: [{ authMethod: 'jwt', loginUrl: 'login.salesforce.com' }, { authMethod: 'clientCredentials', loginUrl: '' }],
      valid: [{ authMethod: 'jwt', loginUrl: 'https://login.salesforce.com' }, { authMethod: 'accessToken', instanceUrl: 'https://x.my.salesforce.com', loginUrl: '' }, { authMethod: 'jwt', loginUrl: '${SF_LOGIN_URL}' }],
    },
    consumerKey: { invalid: [{ authMethod: 'jwt', consumerKey: '' }, { authMethod: 'clientCredentials', consumerKey: ' ' }], valid: [{ authMethod: 'jwt', consumerKey: 'key' }, { authMethod: 'accessToken', instanceUrl: 'https://x.my.salesforce.com', consumerKey: '' }] },
    username: { invalid: [{ authMethod: 'jwt', username: '' }], valid: [{ authMethod: 'clientCredentials', username: '' }, { authMethod: 'jwt', username: 'a@b.c' }] },
    instanceUrl: {
      invalid: [{ authMethod: 'accessToken', instanceUrl: '' }, { authMethod: 'accessToken', instanceUrl: 'x.my.salesforce.com' }],
      valid: [{ authMethod: 'accessToken', instanceUrl: 'https://x.my.salesforce.com' }, { authMethod: 'jwt', instanceUrl: '' }],
    },
    apiVersion: whole('apiVersion', ['45.0', 'v62', ''], ['62.0', '46.0']),
    orgId: {
      invalid: [{ orgId: '123' }, { authMethod: 'none', orgId: '' }],
      valid: [{ orgId: '' }, { orgId: '00D000000000001' }, { orgId: '00D000000000001AAA' }, { authMethod: 'none', orgId: '00D000000000001' }],
    },
    guardPercent: whole('guardPercent', ['0', '101', 'x'], ['90', '']),
    holdMinutes: whole('holdMinutes', ['0', 'x'], ['5', '0.5']),
  },
  'iot-salesforce-out': {
    connection: { invalid: [{ connection: '' }, { connection: BAD_SALESFORCE }], valid: [{ connection: SALESFORCE }] },
    object: {
      invalid: [{ operation: 'upsert', object: 'Bad Name' }, { operation: 'create', object: '' }, { operation: 'event', object: 'Case' }],
      valid: [{ operation: 'upsert', object: 'Case' }, { operation: 'event', object: 'Alert__e', recordFrom: 'payload' }, { operation: 'webToCase', object: '' }],
    },
    recordFrom: { invalid: [{ recordFrom: 'alert', object: 'Account' }], valid: [{ recordFrom: 'payload', object: 'Account' }, { recordFrom: 'alert', object: 'Lead' }] },
    externalIdField: {
      invalid: [{ operation: 'upsert', externalIdField: '' }, { operation: 'upsert', externalIdField: 'bad field' }],
      valid: [{ operation: 'upsert', externalIdField: 'IoT_Alert_Id__c' }, { operation: 'create', externalIdField: '' }],
    },
    fields: {
      invalid: [
        { fields: [{ field: 'bad name', value: 'x', valueType: 'str' }] },
        { operation: 'webToCase', fields: [{ field: 'a b', value: 'x', valueType: 'str' }] },
        { fields: [{ field: 'Subject', value: 'payload[', valueType: 'msg' }] },
        { fields: [{ field: 'Priority', value: 'high', valueType: 'num' }] },
      ],
      valid: [{ fields: [] }, { fields: [{ field: 'Subject', value: 'payload.text', valueType: 'msg' }, { field: 'Priority', value: 'High', valueType: 'str' }] }, { operation: 'webToCase', fields: [{ field: '00N000000000001', value: 'x', valueType: 'str' }] }],
    },
    batchDelay: whole('batchDelay', ['-1', '60001', 'x'], ['100', '']),
    batchSize: whole('batchSize', ['0', '201'], ['200']),
    parallel: whole('parallel', ['0', '11'], ['2']),
    retries: whole('retries', ['-1', '51'], ['5', '0']),
    retryDelay: whole('retryDelay', ['0', '601'], ['1']),
    timeout: whole('timeout', ['0', '601'], ['60']),
  },
  'iot-salesforce-in': {
    connection: { invalid: [{ connection: '' }, { connection: BAD_SALESFORCE }], valid: [{ connection: SALESFORCE }] },
    channel: whole('channel', ['', 'IoT_Command__e', '/event/Alert', '/topic/x'], ['/data/IoT_Command__ChangeEvent', '/event/IoT_Command__e', '/data/ChangeEvents', '${IOT_CHANNEL}']),
    replay: whole('replay', ['0', '42'], ['-1', '-2']),
    onInvalid: whole('onInvalid', ['skip'], ['stop', 'all']),
    processed: whole('processed', ['never'], ['settled', 'sent']),
    answerWithin: whole('answerWithin', ['0', 'soon', '86401'], ['', '60']),
  },
  'iot-command': {
    registry: { invalid: [{ registry: '' }, { registry: BAD_REGISTRY }, { registry: 'v.nowhere' }], valid: [{ registry: REGISTRY }] },
    transport: whole('transport', ['smoke'], ['mqtt', 'http', 'downlink'], { downlinkUrl: 'https://vendor.example.com/downlink' }),
    commandTopic: whole('commandTopic', ['devices/+/commands', 'devices/#'], ['devices/{owner}/commands', '']),
    replyTopic: whole('replyTopic', ['devices/+/replies'], ['devices/{owner}/replies']),
    downlinkUrl: {
      invalid: [{ transport: 'downlink', downlinkUrl: '' }, { transport: 'downlink', downlinkUrl: 'vendor.example.com' }],
      valid: [{ transport: 'downlink', downlinkUrl: 'https://vendor.example.com/downlink' }, { transport: 'downlink', downlinkUrl: '${VENDOR_DOWNLINK_URL}' }, { transport: 'mqtt', downlinkUrl: '' }],
    },
    downlinkAuth: whole('downlinkAuth', ['basic'], ['hmac', 'bearer']),
    signatureHeader: {
      invalid: [{ transport: 'downlink', downlinkUrl: 'https://v.example.com', signatureHeader: 'x signature' }],
      valid: [{ transport: 'downlink', downlinkUrl: 'https://v.example.com', signatureHeader: 'x-signature' }, { transport: 'mqtt', signatureHeader: 'x signature' }],
    },
    timestampHeader: {
      invalid: [{ transport: 'downlink', downlinkUrl: 'https://v.example.com', timestampHeader: 'x:ts' }],
      valid: [{ transport: 'downlink', downlinkUrl: 'https://v.example.com', timestampHeader: 'x-timestamp' }],
    },
    expiresIn: whole('expiresIn', ['0', 'soon', '2592001'], ['', '3600']),
    names: whole('names', ['reboot 9lives', 'a;b'], ['', 'reboot set_interval, light']),
    maxPerDevice: whole('maxPerDevice', ['0', '1.5', '10001'], ['', '100']),
    autoRules: {
      invalid: [
        { autoRules: [{ severity: 'loud', command: 'reduce_power' }] },
        { autoRules: [{ severity: 'critical', command: '' }] },
        { autoRules: [{ severity: 'critical', command: 'reduce_power', args: '{oops' }] },
        { autoRules: [{ severity: 'critical', command: 'reduce_power', expiresIn: '0' }] },
      ],
      valid: [{ autoRules: [] }, { autoRules: [{ severity: 'critical', reading: 'temperature', command: 'reduce_power', args: '{"percent":50}', expiresIn: '300' }] }],
    },
    autoInterval: whole('autoInterval', ['-1', 'x'], ['0', '600']),
    writeBack: whole('writeBack', ['never'], ['tracked', 'once']),
    answerWithin: whole('answerWithin', ['0', 'x'], ['', '60']),
  },
  'iot-summary': {
    property: { invalid: [{ property: 'payload[', propertyType: 'msg' }, { property: '', propertyType: 'msg' }], valid: [{ property: 'payload', propertyType: 'msg' }, { property: 'payload.temperature', propertyType: 'msg' }] },
    windowValue: { invalid: [{ mode: 'time', windowValue: '0' }, { mode: 'time', windowValue: 'abc' }, { mode: 'time', windowValue: '' }], valid: [{ mode: 'time', windowValue: '15' }, { mode: 'count', windowValue: '' }] },
    count: { invalid: [{ mode: 'count', count: '1.5' }, { mode: 'count', count: '0' }], valid: [{ mode: 'count', count: '10' }, { mode: 'time', count: '' }] },
    graceValue: { invalid: [{ timeSource: 'message', graceValue: '-1' }, { timeSource: 'message', graceValue: 'x' }], valid: [{ timeSource: 'message', graceValue: '0' }, { timeSource: 'arrival', graceValue: 'x' }] },
  },
  'iot-threshold': {
    property: { invalid: [{ property: 'payload[', propertyType: 'msg' }], valid: [{ property: 'payload', propertyType: 'msg' }] },
    redis: { invalid: [{ redis: BAD_REDIS }, { redis: 'v.nowhere' }], valid: [{ redis: '' }, { redis: REDIS }] },
    levels: {
      invalid: [
        { levels: [{ severity: 'warning', value: 'abc' }] },
        { levels: [{ severity: 'warning', value: '' }] },
        { levels: [] },
        { levels: [{ severity: 'warning', value: '80' }, { severity: 'warning', value: '90' }] },
        { levels: [{ severity: 'loud', value: '80' }] },
        { rule: 'outside', levels: [{ severity: 'major', low: '10', high: '5' }] },
        { rule: 'above', hysteresis: 'explicit', levels: [{ severity: 'major', value: '90', clear: '' }] },
        { rule: 'silence', levels: [{ severity: 'major', value: 'soon' }] },
        { rule: 'equals', levels: [{ severity: 'major', value: '' }] },
      ],
      valid: [
        { levels: [{ severity: 'warning', value: '80' }, { severity: 'critical', value: '95' }] },
        { rule: 'outside', levels: [{ severity: 'major', low: '5', high: '10' }] },
        { rule: 'above', hysteresis: 'explicit', levels: [{ severity: 'major', value: '90', clear: '85' }] },
        { rule: 'silence', levels: [{ severity: 'major', value: '5min' }] },
        { rule: 'equals', levels: [{ severity: 'major', value: 'open' }] },
        { levels: [{ severity: 'warning', value: '${LIMIT}' }] },
      ],
    },
    deadband: { invalid: [{ hysteresis: 'deadband', deadband: '-1' }, { hysteresis: 'deadband', deadband: '' }], valid: [{ hysteresis: 'deadband', deadband: '2' }, { hysteresis: 'none', deadband: '' }] },
    raiseValue: {
      invalid: [{ raiseMode: 'count', raiseValue: '1.5' }, { raiseMode: 'count', raiseValue: '0' }, { raiseMode: 'duration', raiseValue: '0' }, { raiseMode: 'duration', raiseValue: '' }],
      valid: [{ raiseMode: 'count', raiseValue: '3' }, { raiseMode: 'duration', raiseValue: '30' }, { raiseMode: 'immediate', raiseValue: '' }],
    },
    forecastTarget: { invalid: [{ rule: 'forecast', forecastTarget: 'x' }, { rule: 'forecast', forecastTarget: '' }], valid: [{ rule: 'forecast', forecastTarget: '90' }, { rule: 'above', forecastTarget: '' }] },
    forecastWindow: whole('forecastWindow', ['soon'], ['48h', '30min'], { rule: 'forecast', forecastTarget: '90' }),
    forecastMinReadings: whole('forecastMinReadings', ['2', '3.5'], ['10'], { rule: 'forecast', forecastTarget: '90' }),
    forecastMinConfidence: whole('forecastMinConfidence', ['1.5', 'x'], ['0.9'], { rule: 'forecast', forecastTarget: '90' }),
    forecastClearMargin: whole('forecastClearMargin', ['-1'], ['100'], { rule: 'forecast', forecastTarget: '90' }),
    anomalyHistory: whole('anomalyHistory', ['1', 'x'], ['100'], { rule: 'anomaly' }),
    anomalyWarmup: whole('anomalyWarmup', ['1'], ['30'], { rule: 'anomaly' }),
    anomalyMinDeviation: whole('anomalyMinDeviation', ['-1'], ['', '0.5'], { rule: 'anomaly' }),
    clearValue: {
      invalid: [{ clearMode: 'count', clearValue: 'x' }, { clearMode: 'duration', clearValue: '-5' }],
      valid: [{ clearMode: 'count', clearValue: '2' }, { clearMode: 'immediate', clearValue: 'x' }],
    },
  },
  'iot-timeseries-out': {
    store: { invalid: [{ store: '' }, { store: BAD_STORE }, { store: 'v.nowhere' }], valid: [{ store: STORE }] },
    measurement: {
      invalid: [{ measurement: '', measurementType: 'str' }, { measurement: 'topic[', measurementType: 'msg' }],
      valid: [{ measurement: 'readings', measurementType: 'str' }, { measurement: 'topic', measurementType: 'msg' }],
    },
    readings: { invalid: [{ readings: 'payload[', readingsType: 'msg' }, { readings: '', readingsType: 'msg' }], valid: [{ readings: 'payload', readingsType: 'msg' }] },
    tags: {
      invalid: [{ tags: [{ name: '', value: 'x', type: 'str' }] }, { tags: [{ name: 'site', value: 'where[', type: 'msg' }] }, { tags: [{ name: 'site', value: 'a', type: 'str' }, { name: 'site', value: 'b', type: 'str' }] }],
      valid: [{ tags: [] }, { tags: [{ name: 'site', value: 'north', type: 'str' }, { name: 'line', value: 'device.meta.line', type: 'msg' }] }],
    },
    batchSize: whole('batchSize', ['0', '1.5', 'x'], ['5000', '']),
    flushInterval: whole('flushInterval', ['0', 'x'], ['1000']),
    linger: whole('linger', ['-1', '1.5', 'x'], ['0', '5']),
    maxInFlight: whole('maxInFlight', ['0', 'x'], ['4']),
    maxPending: whole('maxPending', ['0', 'x'], ['100000']),
    retryMaxDelay: whole('retryMaxDelay', ['0', 'x'], ['30']),
    giveUpAfter: whole('giveUpAfter', ['-1', 'x'], ['0', '300']),
  },
};

type Editor = {
  RED: {
    nodes: {
      getType(type: string): EditorNodeDef;
      import(nodes: unknown[]): unknown;
      node(id: string): { valid?: boolean; validationErrors?: string[] } | undefined;
      remove(id: string): unknown;
      filterNodes(filter: object): Array<{ id: string; type: string }>;
      removeWorkspace(id: string): unknown;
      dirty(d: boolean): void;
    };
    workspaces: { active(): string; show(id: string): void };
    view: { redraw(full?: boolean): void };
    sidebar: { show(id: string): void; config: { refresh(): void } };
    actions: { invoke(action: string): void };
  };
};

let node: NodeRedProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];
let packTypes: string[];

beforeAll(async () => {
  node = await NodeRedProcess.start({ flows: [{ id: 'v.tab', type: 'tab', label: 'validation' }] });
  ({ browser, page, pageErrors } = await openEditor(node.editorUrl, { width: 1600, height: 1000 }, 'iot-threshold'));
  await addNodeMaker(page);
  packTypes = await loadedPackTypes(node.editorUrl);
  await page.evaluate(() => (window as unknown as Editor).RED.workspaces.show('v.tab'));
});

/** Imports the config nodes the cases refer to; the invalid ones are what their names say. */
async function importConfigs(which: typeof configs): Promise<void> {
  const made = await page.evaluate((all) => {
    const { RED } = window as unknown as Editor;
    const { newNodeProps } = window as unknown as NodeMaker;
    RED.nodes.import(all.map((c) => newNodeProps(c.type, c)));
    return all.map((c) => `${c.name} ${String(RED.nodes.node(c.id)?.valid)}`);
  }, which);
  expect(made).toEqual(which.map((c) => `${c.name} ${String(!c.name.startsWith('bad'))}`));
}

afterAll(async () => {
  await browser?.close();
  await node?.dispose();
});

/** The pack's fields that are checked: a validate function, or a reference to a config node. */
async function checkedFields(): Promise<Array<{ type: string; field: string; arity: number | null }>> {
  return page.evaluate((types) => {
    const { RED } = window as unknown as Editor;
    return types.flatMap((type) => {
      const def = RED.nodes.getType(type);
      return Object.entries(def.defaults)
        .filter(([, d]) => typeof d.validate === 'function' || (typeof d.type === 'string' && RED.nodes.getType(d.type)?.category === 'config'))
        .map(([field, d]) => ({ type, field, arity: typeof d.validate === 'function' ? d.validate.length : null }));
    });
  }, packTypes);
}

interface Outcome {
  label: string;
  expectValid: boolean;
  valid: boolean | undefined;
  errors: string[];
  triangle: boolean;
}

/** Imports one node per entry, shows them, and reads back what a person would see. */
async function tryEntries(entries: Array<{ type: string; props: Props; expectValid: boolean; label: string }>): Promise<Outcome[]> {
  const ids = await page.evaluate(
    ({ entries, base }) => {
      const { RED } = window as unknown as Editor;
      const made = entries.map((entry, i) => {
        const def = RED.nodes.getType(entry.type);
        const props = (window as unknown as NodeMaker).newNodeProps(entry.type, { ...(base[entry.type] ?? {}), ...entry.props });
        const id = `v.case.${i}`;
        const outputs = Number(props.outputs ?? def.outputs ?? 0);
        const place = def.category === 'config' ? { name: `case ${i}` } : { z: 'v.tab', x: 120 + (i % 8) * 190, y: 60 + Math.floor(i / 8) * 50, wires: Array.from({ length: outputs }, () => []) };
        return { ...props, id, ...place };
      });
      RED.nodes.import(made);
      RED.view.redraw(true);
      RED.sidebar.config.refresh();
      return made.map((m) => m.id);
    },
    { entries, base },
  );
  // The sidebar lists config nodes by label (their name here); the canvas draws flow nodes.
  await page.evaluate(() => (window as unknown as Editor).RED.sidebar.show('config'));
  await page.waitForTimeout(300);
  const seen = await page.evaluate((ids) => {
    const { RED } = window as unknown as Editor;
    return ids.map((id, i) => {
      const n = RED.nodes.node(id) as { valid?: boolean; validationErrors?: string[]; _def: { category: string } };
      let triangle = false;
      if (n._def.category === 'config') {
        const entry = Array.from(document.querySelectorAll('#red-ui-sidebar-node-config .red-ui-palette-node-config')).find((el) => el.querySelector('.red-ui-palette-label')?.textContent === `case ${i}`);
        triangle = entry?.querySelector('.red-ui-flow-node-error') !== null && entry?.querySelector('.red-ui-flow-node-error') !== undefined;
      } else {
        const badge = document.getElementById(id)?.querySelector('.red-ui-flow-node-error');
        triangle = badge !== null && badge !== undefined && !badge.classList.contains('hide');
      }
      return { valid: n.valid, errors: n.validationErrors ?? [], triangle };
    });
  }, ids);
  await page.evaluate((ids) => {
    const { RED } = window as unknown as Editor;
    for (const id of ids) RED.nodes.remove(id);
    RED.view.redraw(true);
    RED.sidebar.config.refresh();
  }, ids);
  return entries.map((entry, i) => ({ label: entry.label, expectValid: entry.expectValid, ...seen[i] }));
}

/** Drops a node of the type from the palette onto the canvas; resolves with its id. */
async function dropFromPalette(type: string, at: { x: number; y: number }): Promise<string> {
  const before = await page.evaluate(() => (window as unknown as Editor).RED.nodes.filterNodes({}).map((n) => n.id));
  await page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`).first().dragTo(page.locator('#red-ui-workspace-chart'), { targetPosition: at });
  const added = await page.evaluate((known) => (window as unknown as Editor).RED.nodes.filterNodes({}).map((n) => n.id).find((id) => !known.includes(id)), before);
  expect(added, `${type} dropped onto the canvas`).toBeDefined();
  return added as string;
}

/** What a person sees of a flow node: its valid flag, its reasons and the red triangle. */
async function flowNodeState(id: string): Promise<{ valid: boolean | undefined; errors: string[]; triangle: boolean }> {
  return page.evaluate((nodeId) => {
    const { RED } = window as unknown as Editor;
    RED.view.redraw(true);
    const n = RED.nodes.node(nodeId);
    const badge = document.getElementById(nodeId)?.querySelector('.red-ui-flow-node-error');
    return { valid: n?.valid, errors: n?.validationErrors ?? [], triangle: badge !== null && badge !== undefined && !badge.classList.contains('hide') };
  }, id);
}

async function openAndDone(id: string, change?: () => Promise<void>): Promise<void> {
  await page.locator(`[id="${id}"]`).dblclick();
  await page.waitForSelector('#node-dialog-ok', { state: 'visible' });
  await page.waitForTimeout(200);
  if (change) await change();
  await page.click('#node-dialog-ok');
  await page.waitForSelector('#node-dialog-ok', { state: 'detached' });
}

describe('a fresh iot-device-auth', () => {
  it('asks for a registry, and for nothing else, when none exists', async () => {
    const id = await dropFromPalette('iot-device-auth', { x: 200, y: 200 });
    await openAndDone(id);
    const state = await flowNodeState(id);
    expect(state.errors).toEqual(['Registry: no device registry is selected']);
    expect(state).toMatchObject({ valid: false, triangle: true });
    // A method that needs no registry: nothing to flag.
    await openAndDone(id, () => page.selectOption('#node-input-method', 'anonymous').then(() => undefined));
    expect(await flowNodeState(id)).toEqual({ valid: true, errors: [], triangle: false });
    // Anonymous senders told apart by a property that is not given: flagged.
    await openAndDone(id, () => page.selectOption('#node-input-anonymousSource', 'property').then(() => undefined));
    expect(await flowNodeState(id)).toMatchObject({ valid: false, triangle: true, errors: ['Source: needed by this setting'] });
    await page.evaluate((nodeId) => (window as unknown as Editor).RED.nodes.remove(nodeId), id);
  });

  it('takes the one registry there is, and is valid once opened and closed with Done', async () => {
    await importConfigs(configs.filter((c) => c.id === REGISTRY));
    const id = await dropFromPalette('iot-device-auth', { x: 200, y: 300 });
    await openAndDone(id);
    expect(await flowNodeState(id)).toEqual({ valid: true, errors: [], triangle: false });
    expect(await page.evaluate((nodeId) => (window as unknown as { RED: { nodes: { node(id: string): { registry: string } } } }).RED.nodes.node(nodeId).registry, id)).toBe(REGISTRY);
    await page.evaluate((nodeId) => (window as unknown as Editor).RED.nodes.remove(nodeId), id);
  });
});

describe('editor validation of every checked field', () => {
  beforeAll(async () => {
    await importConfigs(configs.filter((c) => c.id !== REGISTRY));
  });

  it('has cases for every checked field of the pack, and no case for a field that is not checked', async () => {
    const fields = await checkedFields();
    expect(fields.length).toBeGreaterThan(50);
    const withoutCases = fields.filter((f) => cases[f.type]?.[f.field] === undefined).map((f) => `${f.type}.${f.field}`);
    expect(withoutCases, 'checked fields with no cases in this test').toEqual([]);
    const known = new Set(fields.map((f) => `${f.type}.${f.field}`));
    const stale = Object.entries(cases).flatMap(([type, byField]) => Object.keys(byField).map((field) => `${type}.${field}`)).filter((k) => !known.has(k));
    expect(stale, 'cases for fields that have no check').toEqual([]);
    for (const [type, byField] of Object.entries(cases)) {
      for (const [field, c] of Object.entries(byField)) {
        expect(c.invalid.length, `${type}.${field} invalid entries`).toBeGreaterThan(0);
        expect(c.valid.length, `${type}.${field} valid entries`).toBeGreaterThan(0);
      }
    }
  });

  it('has every check take (value, opt), as Node-RED 4 reads a text result only from those', async () => {
    const oneArgument = (await checkedFields()).filter((f) => f.arity !== null && f.arity !== 2).map((f) => `${f.type}.${f.field} takes ${f.arity}`);
    expect(oneArgument).toEqual([]);
  });

  it('marks the node invalid, with the red triangle and a reason, for each invalid entry, and valid for each valid one', async () => {
    const entries = Object.entries(cases).flatMap(([type, byField]) =>
      Object.entries(byField).flatMap(([field, c]) => [
        ...c.invalid.map((props) => ({ type, props, expectValid: false, label: `${type}.${field} = ${JSON.stringify(props)}` })),
        ...c.valid.map((props) => ({ type, props, expectValid: true, label: `${type}.${field} = ${JSON.stringify(props)}` })),
      ]),
    );
    const outcomes = await tryEntries(entries);
    const accepted = outcomes.filter((o) => !o.expectValid && (o.valid !== false || !o.triangle)).map((o) => `${o.label}: valid ${String(o.valid)}, triangle ${String(o.triangle)}`);
    const refused = outcomes.filter((o) => o.expectValid && (o.valid !== true || o.triangle)).map((o) => `${o.label}: ${o.errors.join('; ')}`);
    expect(accepted, 'invalid entries the editor accepts').toEqual([]);
    expect(refused, 'valid entries the editor refuses').toEqual([]);
    // A reason says what is wrong; a bare property name means a check said only false.
    const fieldNames = new Set(entries.flatMap((e) => Object.keys(e.props)).concat(Object.values(cases).flatMap((f) => Object.keys(f))));
    const unexplained = outcomes.filter((o) => !o.expectValid).flatMap((o) => o.errors.filter((e) => fieldNames.has(e) || e.trim().split(/\s+/).length < 3).map((e) => `${o.label}: "${e}"`));
    expect(unexplained, 'reasons that do not say what is wrong').toEqual([]);
  });

  it('marks what is typed into the dialogs: a threshold level, a tag name, a device id', async () => {
    const [threshold, writer] = await page.evaluate(
      ({ store }) => {
        const { RED } = window as unknown as Editor;
        const { newNodeProps } = window as unknown as NodeMaker;
        const made = [
          newNodeProps('iot-threshold', { id: 'v.dialog.threshold', z: 'v.tab', x: 200, y: 400, wires: [[], [], []] }),
          newNodeProps('iot-timeseries-out', { id: 'v.dialog.writer', store, z: 'v.tab', x: 400, y: 400, wires: [[], []] }),
        ];
        RED.nodes.import(made);
        RED.view.redraw(true);
        return made.map((m) => String(m.id));
      },
      { store: STORE },
    );
    expect(await flowNodeState(threshold)).toEqual({ valid: true, errors: [], triangle: false });
    await openAndDone(threshold, () => page.locator('#node-input-level-container .iot-l-threshold').first().fill('abc'));
    expect(await flowNodeState(threshold)).toMatchObject({ valid: false, triangle: true, errors: ['Levels: warning: needs a numeric threshold'] });
    await openAndDone(threshold, () => page.locator('#node-input-level-container .iot-l-threshold').first().fill('85'));
    expect(await flowNodeState(threshold)).toEqual({ valid: true, errors: [], triangle: false });

    await openAndDone(writer, async () => {
      await page.locator('.node-input-tag-container-row .red-ui-editableList-addButton').click();
      await page.locator('#node-input-tag-container input.red-ui-typedInput-input').first().fill('north');
    });
    expect(await flowNodeState(writer)).toMatchObject({ valid: false, triangle: true, errors: ['Tags: every tag needs a name'] });

    // A device of the registry's list with an id that is not one: the registry and its users are flagged.
    const auth = await dropFromPalette('iot-device-auth', { x: 600, y: 400 });
    await openAndDone(auth, () => page.selectOption('#node-input-registry', REGISTRY).then(() => undefined));
    expect(await flowNodeState(auth)).toEqual({ valid: true, errors: [], triangle: false });
    await page.evaluate((id) => (window as unknown as { RED: { editor: { editConfig(n: string, t: string, id: string): void } } }).RED.editor.editConfig('', 'iot-device-registry', id), REGISTRY);
    await page.waitForSelector('#node-config-dialog-ok', { state: 'visible' });
    await page.locator('#node-config-device-table .iot-d-id').first().fill('pump 1 !');
    await page.click('#node-config-dialog-ok');
    await page.waitForSelector('#node-config-dialog-ok', { state: 'detached' });
    const registry = await page.evaluate((id) => {
      const n = (window as unknown as Editor).RED.nodes.node(id);
      return { valid: n?.valid, errors: n?.validationErrors };
    }, REGISTRY);
    expect(registry).toEqual({ valid: false, errors: ['Devices: "pump 1 !" is not a device id (letters, digits and . _ : @ ~ -)'] });
    expect(await flowNodeState(auth)).toMatchObject({ valid: false, triangle: true, errors: ['Registry: the chosen device registry has invalid settings'] });
  });

  it('has logged no error in the page', () => {
    expect(pageErrors).toEqual([]);
  });
});
