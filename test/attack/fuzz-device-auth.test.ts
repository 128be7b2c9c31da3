/**
 * iot-device-auth fuzzed: 10,000 hostile requests (seeded) as http in hands them on (raw body,
 * headers), from many addresses, with Catch and Complete nodes scoped to it: no crash, no
 * unhandled rejection, every message done once (authenticated, or refused with a code its help
 * lists), nothing polluted. A fifth are correctly signed HMAC requests from a registered device,
 * so that what the node parses once a signature verifies (deep JSON, over a megabyte, thousands
 * of keys, __proto__ keys) is fuzzed too; the others carry made-up, malformed and mistyped
 * credentials of every method.
 */
import { expect, it } from 'vitest';
import deviceAuthNode from '../../nodes/device-auth/device-auth';
import registryNode from '../../nodes/device-registry/device-registry';
import { hmacHeaders, hmacSigned } from '../support/device-credentials';
import { fuzzNode, fuzzRuntime, NO_PROBLEMS, problems, type Hostile } from '../support/fuzz';

const CODES = ['missing_credentials', 'malformed', 'too_large', 'unknown_device', 'bad_key', 'bad_signature', 'bad_algorithm', 'expired', 'not_yet_valid', 'wrong_audience', 'wrong_subject', 'too_long_lived', 'replayed', 'unbound_token', 'wrong_body', 'untrusted_certificate', 'revoked', 'method_not_allowed', 'locked_out', 'rate_limited', 'not_under_gateway', 'not_authenticated', 'registry_unavailable', 'too_deep', 'too_many_keys', 'bad_timestamp', 'internal'];
const SECRET = 'a-shared-secret-of-32-characters';
const API_KEY = 'key-for-pump-1-0123456789abcdef';
fuzzRuntime('device-auth');

/** A request body as bytes on the wire: JSON of a hostile value, or text made to hurt a parser. */
function body(h: Hostile): string {
  const roll = h.int(0, 9);
  if (roll === 0) return '['.repeat(h.pick([33, 1_000, 100_000])) + ']'.repeat(h.pick([0, 33, 1_000, 100_000]));
  if (roll === 1) return `{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"temperature":${h.pick(['21.5', '1e999', 'NaN', '"x"', 'null'])}}`;
  if (roll === 2) return `{${Array.from({ length: h.pick([10, 10_001, 20_000]) }, (_, i) => `"k${i}":${i}`).join(',')}}`;
  if (roll === 3) return h.string();
  if (roll === 4) return JSON.stringify({ temperature: h.number(), battery: 3.4, timestamp: h.chance(0.5) ? Date.now() : h.number() });
  try {
    return JSON.stringify(h.value()) ?? 'undefined';
  } catch {
    return '{"temperature":';
  }
}

/** Credentials of any method, wrong or malformed, or a hostile value where a header is expected. */
function forgedHeaders(h: Hostile): Record<string, unknown> {
  const id = h.chance(0.7) ? h.pick(['pump-1', 'gw-1', 's-1', 'old-1', 'nobody']) : h.string();
  const pick = h.int(0, 5);
  const headers: Record<string, unknown> =
    pick === 0 ? { 'x-device-id': id, 'x-api-key': h.chance(0.3) ? API_KEY : h.string() }
    : pick === 1 ? { 'x-device-id': id, 'x-timestamp': String(h.chance(0.5) ? Math.floor(Date.now() / 1000) : h.number()), 'x-nonce': h.string(), 'x-signature': h.string() }
    : pick === 2 ? { authorization: `Bearer ${h.pick(['', 'a.b.c', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJwdW1wLTEifQ.', h.string()])}` }
    : pick === 3 ? { authorization: `SharedAccessSignature sr=${h.string()}&sig=${h.string()}&se=${h.string()}` }
    : pick === 4 ? { authorization: h.string(), 'x-device-id': id }
    : {};
  if (h.chance(0.1)) headers[h.pick(['x-device-id', 'x-signature', 'authorization', 'content-type', 'x-api-key'])] = h.value();
  return headers;
}

it('takes 10,000 hostile requests: nothing crashes, every message is done once, every refusal is coded', async () => {
  const report = await fuzzNode({
    modules: [registryNode, deviceAuthNode],
    flow: [
      { id: 'registry', type: 'iot-device-registry', name: 'devices', source: 'list', devices: [{ id: 'pump-1', enabled: true, meta: '{"assetId":"02i000000000001"}' }, { id: 'gw-1', enabled: true }, { id: 's-1', enabled: true, gateway: 'gw-1' }, { id: 'old-1', enabled: false }] },
      { id: 'auth', type: 'iot-device-auth', registry: 'registry', method: 'auto', wires: [['authenticated'], ['rejected']] },
      { id: 'authenticated', type: 'helper' },
      { id: 'rejected', type: 'helper' },
    ],
    credentials: { registry: { secrets: JSON.stringify({ 'pump-1': { secret: SECRET, apiKey: API_KEY }, 'gw-1': { secret: SECRET }, 'old-1': { secret: SECRET } }) } },
    under: 'auth',
    outputs: ['authenticated'],
    errorOutputs: ['rejected'],
    codes: CODES,
    count: 10_000,
    seed: 1206,
    message: (h, n) => {
      const text = body(h);
      const signed = h.chance(0.2);
      const headers = signed ? hmacHeaders(hmacSigned(Buffer.from(SECRET), h.pick(['pump-1', 'gw-1']), 'POST /readings', text)) : forgedHeaders(h);
      const lower = Object.fromEntries(Object.entries({ 'content-type': 'application/json', ...headers }).map(([k, v]) => [k.toLowerCase(), v]));
      const req = h.chance(0.97) ? { method: 'POST', originalUrl: '/readings', url: '/readings', ip: `10.${(n >> 8) & 255}.${n & 255}.${h.int(1, 254)}`, headers: lower } : h.value();
      const msg: Record<string, unknown> = { payload: h.chance(0.9) ? Buffer.from(text) : h.chance(0.5) ? text : h.value(), req };
      if (h.chance(0.05)) msg._broker = h.value();
      if (h.chance(0.05)) msg._delivery = h.chance(0.5) ? { source: h.pick(['auth', 'elsewhere']), id: h.value() } : h.value();
      if (h.chance(0.05)) msg.device = { id: 'pump-1', method: 'apikey' };
      if (h.chance(0.05)) msg.timestamp = h.value();
      return msg;
    },
  });
  console.log(`fuzz device-auth: ${JSON.stringify({ sendMs: report.sendMs, settleMs: report.settleMs, codes: report.codes, outputs: report.outputs, generic: report.genericMessages })}`);
  expect(problems(report)).toEqual(NO_PROBLEMS);
  expect(report.accounted).toBe(10_000);
  expect(report.outputs.authenticated).toBeGreaterThan(0);
});
