/**
 * The client certificate a TLS connection presented, as the DER chain the device registry checks
 * (its own certificate first, then the intermediates it sent). Used by iot-mqtt-broker (its TLS
 * listeners ask for one) and iot-device-auth (an https server with requestCert: Node-RED's
 * `https` settings, or npm start's NODE_RED_HTTPS_* variables).
 */

interface PeerCertificate {
  raw?: Buffer;
  fingerprint256?: string;
  issuerCertificate?: PeerCertificate;
}

interface TlsSocketLike {
  getPeerCertificate?(detailed: boolean): PeerCertificate | null | Record<string, never>;
}

/** How many certificates of a chain are read: more is no device's chain. */
const CHAIN_LIMIT = 8;

/** The DER chain a socket's peer presented; undefined when it is not TLS or sent no certificate. */
export function peerCertificateChain(socket: unknown): Buffer[] | undefined {
  const tls = socket as TlsSocketLike | null | undefined;
  if (!tls || typeof tls.getPeerCertificate !== 'function') return undefined;
  let cert = tls.getPeerCertificate(true) as PeerCertificate | null;
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  // A self-signed root is its own issuer: stop at the first certificate seen twice.
  while (cert && Buffer.isBuffer(cert.raw) && cert.raw.length > 0 && chain.length < CHAIN_LIMIT && !seen.has(cert.fingerprint256 ?? '')) {
    chain.push(cert.raw);
    seen.add(cert.fingerprint256 ?? '');
    cert = cert.issuerCertificate ?? null;
  }
  return chain.length > 0 ? chain : undefined;
}
