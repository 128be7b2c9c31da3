/**
 * What a device presents at MQTT CONNECT: a client certificate over TLS (when the broker takes
 * them, it speaks for the device and the password is not needed), or a username that is its
 * device id (or, as Azure IoT Hub devices send it, `<host>/<device id>/?api-version=…`) and a
 * password that is an API key, a JWT or a SAS token, told apart by their form.
 */
import type { Presented, RejectCode } from '../shared/device-registry-api';

export type ConnectMethod = 'apikey' | 'jwt' | 'sas' | 'x509';
export const CONNECT_METHODS: readonly ConnectMethod[] = ['apikey', 'jwt', 'sas', 'x509'];
/** What a broker from before client certificates accepted. */
export const PASSWORD_METHODS: readonly ConnectMethod[] = ['apikey', 'jwt', 'sas'];

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const PASSWORD_LIMIT = 16 * 1024;

export function deviceIdOf(username: string): string {
  const parts = username.split('/');
  return parts.length >= 2 && parts[1] !== '' ? parts[1] : username;
}

export function connectCredential(username: string | undefined, password: Buffer | undefined, methods: ReadonlySet<ConnectMethod>, certificate?: readonly Buffer[]): Presented | { code: RejectCode; message: string } {
  if (certificate && methods.has('x509')) return username ? { method: 'x509', id: deviceIdOf(username), chain: certificate } : { method: 'x509', chain: certificate };
  if (!password || password.length === 0) return { code: 'missing_credentials', message: 'no password (an API key, a JWT or a SAS token)' };
  if (password.length > PASSWORD_LIMIT) return { code: 'malformed', message: 'the password is too long' };
  const secret = password.toString('utf8');
  const id = username ? deviceIdOf(username) : undefined;
  const method = secret.startsWith('SharedAccessSignature ') ? 'sas' : JWT_SHAPE.test(secret) ? 'jwt' : 'apikey';
  if (!methods.has(method)) return { code: 'method_not_allowed', message: `this broker does not accept ${method} passwords` };
  if (method === 'apikey') {
    if (id === undefined) return { code: 'missing_credentials', message: 'an API key needs the device id as username' };
    return { method, id, key: secret };
  }
  return id === undefined ? { method, token: secret } : { method, id, token: secret };
}
