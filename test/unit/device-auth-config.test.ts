/**
 * device-auth's editor properties turned into settings, and credentials removed from messages:
 * headers with their raw copies, query parameters with the URLs they appear in, plain properties.
 */
import { describe, expect, it } from 'vitest';
import { DEVICE_AUTH_MIGRATIONS } from '../../nodes/device-auth/migrations';
import { settingsFromProperties, type DeviceAuthProperties } from '../../nodes/device-auth/node-config';
import { migrateSettings } from '../../nodes/shared/settings-version';
import { credentialPath, removeCredentials, type CredentialPath } from '../../nodes/device-auth/scrub';

const path = (segments: string[]) => credentialPath(segments) as CredentialPath;

describe('device-auth settings', () => {
  it('has working defaults', () => {
    const settings = settingsFromProperties({});
    expect(settings).toMatchObject({ mode: 'auto', maxBytes: 65_536, parse: 'auto', replayCapacity: 100_000, webhookContent: '{body}' });
    expect(settings.policy).toMatchObject({ skewMs: 300_000, tokenSkewMs: 30_000, maxLifetimeMs: 3_600_000, audiences: [], webhook: { hash: 'sha256', encoding: 'hex', prefix: '' } });
    expect(settings.rate).toBeUndefined();
    expect(settings.gateway).toBeUndefined();
    expect([...settings.accepted]).toEqual(['apikey', 'hmac', 'sas', 'jwt', 'webhook', 'x509']);
    expect(settings.scopedFields).toEqual([]);
  });

  // Nodes as flows saved them: before settings versions (1), and now (2).
  const V1_NODE: DeviceAuthProperties = { id: 'auth', type: 'iot-device-auth', registry: 'registry', method: 'auto', skew: '300', wires: [[], []] };
  it.each<[string, DeviceAuthProperties, string[], string[]]>([
    ['a node from before versions accepts what it always did: secrets and keys, no certificate', V1_NODE, ['apikey', 'hmac', 'sas', 'jwt', 'webhook'], ['accepted-kept-secret-methods']],
    ['a node from before versions that chose its methods keeps them', { ...V1_NODE, accepted: ['hmac', 'x509'] }, ['hmac', 'x509'], []],
    ['a current node keeps its choice', { ...V1_NODE, settingsVersion: 2, accepted: ['jwt'] }, ['jwt'], []],
  ])('%s', (_, node, accepted, notes) => {
    const migrated = migrateSettings(node, DEVICE_AUTH_MIGRATIONS);
    expect(migrated.notes).toEqual(notes);
    expect(migrated.props.settingsVersion).toBe(2);
    expect([...settingsFromProperties(migrated.props).accepted]).toEqual(accepted);
  });

  it('refuses settings from a newer pack', () => {
    expect(() => migrateSettings({ ...V1_NODE, settingsVersion: 3 }, DEVICE_AUTH_MIGRATIONS)).toThrow(/version 3, newer than this version of the pack knows \(2\)/);
  });

  it('reads lists, rates and gateways', () => {
    const settings = settingsFromProperties({ method: 'jwt', audience: 'a, b', algorithms: 'ES256 RS256', rate: '5', gateway: true, batchPath: '', sensorField: 'id', gatewayOutput: 'batch', gatewayScoped: true, scopedFields: 'inspection, job', accepted: ['hmac', 'jwt'], tokenSkew: '10' });
    expect(settings.policy.audiences).toEqual(['a', 'b']);
    expect(settings.policy.algorithms).toEqual(['ES256', 'RS256']);
    expect(settings.policy.tokenSkewMs).toBe(10_000);
    expect(settings.rate).toEqual({ perSecond: 5, burst: 5 });
    expect(settings.gateway).toEqual({ batchPath: '', sensorField: 'id', split: false, scoped: true });
    expect(settings.scopedFields).toEqual(['inspection', 'job']);
    expect([...settings.accepted]).toEqual(['hmac', 'jwt']);
  });

  it.each([
    [{ method: 'teleport' }, /method must be one of/],
    [{ skew: '-1' }, /clock skew must be a number/],
    [{ webhookContent: '{timestamp}' }, /\{body\} exactly once/],
    [{ webhookHash: 'md5' }, /webhook hash must be one of/],
    [{ method: 'anonymous', gateway: true }, /anonymous source cannot be a gateway/],
    [{ replayCapacity: '0' }, /replay cache size/],
    [{ tokenSkew: 'x' }, /token clock tolerance must be a number/],
    [{ accepted: ['hmac', 'carrier-pigeon'] }, /unknown accepted method\(s\) carrier-pigeon/],
    [{ accepted: [] }, /accept at least one method/],
  ])('refuses %j', (properties, error) => {
    expect(() => settingsFromProperties(properties)).toThrow(error);
  });
});

describe('removing credentials', () => {
  it('removes a header and its raw copy, and leaves the rest', () => {
    const msg = { req: { headers: { authorization: 'Bearer t0ken', 'x-device-id': 'pump-1' }, rawHeaders: ['Authorization', 'Bearer t0ken', 'X-Device-Id', 'pump-1'] } };
    removeCredentials(msg, [path(['req', 'headers', 'authorization'])]);
    expect(msg.req).toEqual({ headers: { 'x-device-id': 'pump-1' }, rawHeaders: ['X-Device-Id', 'pump-1'] });
  });

  it('removes a query parameter and redacts it in the URLs', () => {
    const msg = { req: { query: { api_key: 'k3y', page: '2' }, url: '/r?api_key=k3y&page=2', originalUrl: '/base/r?page=2&api_key=k3y' } };
    removeCredentials(msg, [path(['req', 'query', 'api_key'])]);
    expect(msg.req).toEqual({ query: { page: '2' }, url: '/r?api_key=removed&page=2', originalUrl: '/base/r?page=2&api_key=removed' });
  });

  it('removes a message property, and passes over what is not there', () => {
    const msg: Record<string, unknown> = { auth: { sig: 'abc', id: 'pump-1' }, payload: 1 };
    removeCredentials(msg, [path(['auth', 'sig']), path(['missing', 'deep', 'x'])]);
    expect(msg).toEqual({ auth: { id: 'pump-1' }, payload: 1 });
    expect(credentialPath([])).toBeUndefined();
  });
});
