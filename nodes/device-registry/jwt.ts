/**
 * JWTs signed by devices (Direct pattern), verified with jose. The device is the token's `sub`
 * (or `iss` when there is no `sub`); when both are present they must name the same device.
 *
 * Which algorithm may verify a token is decided by the registry, never by the token: the
 * device's allow-list, narrowed by the endpoint's, narrowed again by what its key material is
 * (an RSA key verifies RS256/PS256 only, a shared secret HS256 only). So `alg: none` and key
 * confusion (HS256 "signed" with an RSA public key) find no key and are refused before jose runs;
 * jose refuses them again on its own.
 */
import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Presented, VerifyPolicy } from '../shared/device-registry-api';
import { fail, type Check } from './checks';
import { JWT_ALGORITHMS, secretOf, type DeviceRecord } from './records';

const TOKEN_LIMIT = 16 * 1024;
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface JwtParts {
  id: string;
  alg: string;
  kid?: string;
  payload: JWTPayload;
}

type JwtPresented = Extract<Presented, { method: 'jwt' }>;

/** Reads the unverified header and claims to learn which device the token claims to be. */
export function parseJwt(p: JwtPresented): JwtParts | ReturnType<typeof fail> {
  const token = p.token;
  if (token.length > TOKEN_LIMIT || !COMPACT.test(token)) return fail('malformed', 'not a compact JWT (header.payload.signature in base64url)');
  let alg: unknown;
  let kid: unknown;
  let payload: JWTPayload;
  try {
    ({ alg, kid } = decodeProtectedHeader(token));
    payload = decodeJwt(token);
  } catch (err) {
    return fail('malformed', `the token cannot be decoded: ${(err as Error).message}`);
  }
  if (typeof alg !== 'string' || !(JWT_ALGORITHMS as readonly string[]).includes(alg)) {
    return fail('bad_algorithm', `algorithm ${JSON.stringify(alg)} is not accepted`);
  }
  const { sub, iss } = payload;
  if (sub !== undefined && typeof sub !== 'string') return fail('malformed', 'sub must be a string');
  if (iss !== undefined && typeof iss !== 'string') return fail('malformed', 'iss must be a string');
  const id = sub ?? iss;
  if (id === undefined) return fail('wrong_subject', 'the token names no device (no sub, no iss)');
  if (sub !== undefined && iss !== undefined && sub !== iss) return fail('wrong_subject', 'sub and iss name different devices');
  if (p.id !== undefined && p.id !== id) return fail('wrong_subject', 'the token is for another device than the one claimed');
  return { id, alg, ...(typeof kid === 'string' ? { kid } : {}), payload };
}

interface Candidate {
  key: KeyObject;
  algorithms: readonly string[];
  kid?: string;
}

/** Public keys are imported once per record (records are replaced on reload). */
const imported = new WeakMap<DeviceRecord, Candidate[] | Error>();

function algorithmsFor(key: KeyObject, jwkAlg?: unknown): string[] {
  let algorithms: string[];
  switch (key.asymmetricKeyType) {
    case 'rsa':
      algorithms = ['RS256', 'PS256'];
      break;
    case 'rsa-pss':
      algorithms = ['PS256'];
      break;
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      algorithms = curve === 'prime256v1' ? ['ES256'] : curve === 'secp384r1' ? ['ES384'] : [];
      break;
    }
    case 'ed25519':
      algorithms = ['EdDSA', 'Ed25519'];
      break;
    default:
      algorithms = [];
  }
  return typeof jwkAlg === 'string' ? algorithms.filter((a) => a === jwkAlg) : algorithms;
}

function publicCandidates(record: DeviceRecord): Candidate[] | Error {
  const cached = imported.get(record);
  if (cached) return cached;
  let result: Candidate[] | Error;
  try {
    result = [];
    for (const text of record.publicKeys ?? []) {
      if (text.startsWith('-----')) {
        const key = createPublicKey(text);
        result.push({ key, algorithms: algorithmsFor(key) });
        continue;
      }
      const parsed = JSON.parse(text) as JsonWebKey & { keys?: JsonWebKey[] };
      for (const jwk of parsed.keys ?? [parsed]) {
        const key = createPublicKey({ key: jwk, format: 'jwk' });
        result.push({ key, algorithms: algorithmsFor(key, jwk.alg), ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}) });
      }
    }
  } catch (err) {
    result = new Error(`the registered public key of ${record.id} cannot be used: ${(err as Error).message}`);
  }
  imported.set(record, result);
  return result;
}

export async function checkJwt(record: DeviceRecord, parts: JwtParts, token: string, policy: VerifyPolicy, now: number): Promise<Check> {
  const { alg } = parts;
  if (record.algorithms && !record.algorithms.includes(alg)) return fail('bad_algorithm', `${record.id} may not sign with ${alg}`);
  if (policy.algorithms && policy.algorithms.length > 0 && !policy.algorithms.includes(alg)) return fail('bad_algorithm', `this endpoint does not accept ${alg}`);

  const publicKeys = publicCandidates(record);
  if (publicKeys instanceof Error) return fail('bad_signature', publicKeys.message);
  const candidates: Candidate[] = [...publicKeys];
  const secret = secretOf(record, 'jwt');
  if (secret) candidates.push({ key: createSecretKey(secret), algorithms: ['HS256'] });
  const usable = candidates.filter((c) => c.algorithms.includes(alg) && (parts.kid === undefined || c.kid === undefined || c.kid === parts.kid));
  if (usable.length === 0) return fail('bad_algorithm', `no key of ${record.id} verifies ${alg}`);

  const skewSeconds = policy.tokenSkewMs / 1000;
  let verified: JWTPayload | undefined;
  for (const candidate of usable) {
    try {
      ({ payload: verified } = await jwtVerify(token, candidate.key, {
        algorithms: [alg],
        clockTolerance: skewSeconds,
        currentDate: new Date(now),
        ...(policy.audiences && policy.audiences.length > 0 ? { audience: [...policy.audiences] } : {}),
      }));
      break;
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) continue;
      return joseFailure(err as Error);
    }
  }
  if (!verified) return fail('bad_signature', 'the token signature does not match');

  const { exp, iat, jti } = verified;
  if (typeof exp !== 'number') return fail('too_long_lived', 'the token has no exp: it would never expire');
  if (typeof iat === 'number' && iat * 1000 > now + policy.tokenSkewMs) return fail('not_yet_valid', 'the token was issued in the future (iat)');
  const issued = typeof iat === 'number' ? iat * 1000 : now;
  if (exp * 1000 - issued > policy.maxLifetimeMs + policy.tokenSkewMs) {
    return fail('too_long_lived', `the token lives ${Math.round((exp * 1000 - issued) / 1000)} s; at most ${policy.maxLifetimeMs / 1000} s is accepted`);
  }
  if (jti !== undefined && (typeof jti !== 'string' || jti === '' || jti.length > 256)) return fail('malformed', 'jti must be a non-empty string');
  return {
    ok: true,
    claims: { ...verified },
    ...(jti !== undefined ? { replay: { key: `jwt\n${record.id}\n${jti}`, until: exp * 1000 + policy.tokenSkewMs } } : {}),
  };
}

function joseFailure(err: Error): Check {
  if (err instanceof errors.JWTExpired) return fail('expired', 'the token has expired (exp)');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return fail('not_yet_valid', 'the token is not valid yet (nbf)');
    if (err.claim === 'aud') return fail('wrong_audience', 'the token is for another audience (aud)');
    return fail('malformed', `claim ${err.claim}: ${err.reason}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return fail('bad_algorithm', err.message);
  return fail('malformed', err.message);
}
