/**
 * SHA-256 of small inputs, many times a second: Node's one-shot crypto.hash (Node 20.12 and
 * later) where there is one, which costs about half of createHash for a short message.
 */
import * as crypto from 'node:crypto';

type OneShot = (algorithm: string, data: crypto.BinaryLike, encoding: 'hex' | 'buffer') => string | Buffer;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

export function sha256Hex(data: string | Buffer): string {
  return oneShot ? (oneShot('sha256', data, 'hex') as string) : crypto.createHash('sha256').update(data).digest('hex');
}

export function sha256(data: string | Buffer): Buffer {
  return oneShot ? (oneShot('sha256', data, 'buffer') as Buffer) : crypto.createHash('sha256').update(data).digest();
}
