/**
 * Fleets of devices with client certificates, as the registry node's settings give them: a name,
 * the fleet's CA (PEM text, or a file holding it), how a certificate names its device, which ids
 * the fleet may name, and a CRL file. Files are read here; the node reloads them when they change.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CrlError, parseCrl } from './crl';
import { ID_FROM, type Fleet, type IdFrom } from './x509';

/** A fleet as the editor stores it. */
export interface FleetSetting {
  name?: unknown;
  /** PEM text (one or more CERTIFICATE blocks), or the path of a file holding it. */
  ca?: unknown;
  idFrom?: unknown;
  /** A regular expression the ids it names must match (empty: any). */
  ids?: unknown;
  /** The path of the fleet's CRL file (DER or PEM); empty: none. */
  crl?: unknown;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export class FleetError extends Error {}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/** The CA certificates of PEM text; a text without one, or with a certificate that is not a CA, is refused. */
export function parseCaCertificates(pem: string, where: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new FleetError(`${where}: no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      throw new FleetError(`${where}: a certificate cannot be read: ${(err as Error).message}`);
    }
    if (!cert.ca) throw new FleetError(`${where}: ${(cert.subject ?? 'a certificate').replace(/\n/g, ', ')} is not a CA certificate (basicConstraints CA:TRUE)`);
    return cert;
  });
}

/** The files a fleet setting reads (its CA when given as a path, its CRL): what the node watches. */
export function fleetFiles(settings: readonly FleetSetting[], pathOf: (file: string) => string): string[] {
  return settings.flatMap((s) => [text(s.ca).startsWith('-----') ? '' : text(s.ca), text(s.crl)]).filter((f) => f !== '').map(pathOf);
}

/**
 * The fleets, read now. A fleet whose CA cannot be read is left out (its certificates are then
 * refused as untrusted) and named in `problems`. A CRL that cannot be read or verified leaves the
 * fleet with the CRL it had before (`previous`: an update caught half written, or a bad one,
 * revokes nothing it did not revoke already); with none before, the reason stands in its place
 * and every certificate the fleet issued is refused until the CRL can be read.
 */
export async function loadFleets(settings: readonly FleetSetting[], pathOf: (file: string) => string, previous: readonly Fleet[] = []): Promise<{ fleets: Fleet[]; problems: string[] }> {
  const fleets: Fleet[] = [];
  const problems: string[] = [];
  const names = new Set<string>();
  for (const [i, setting] of settings.entries()) {
    const name = text(setting.name) || `fleet ${i + 1}`;
    try {
      if (names.has(name)) throw new FleetError(`fleet ${name} is listed twice`);
      names.add(name);
      const idFrom = (text(setting.idFrom) || 'cn') as IdFrom;
      if (!ID_FROM.includes(idFrom)) throw new FleetError(`fleet ${name}: devices are named by cn, san or fingerprint, not ${idFrom}`);
      const caText = text(setting.ca);
      if (caText === '') throw new FleetError(`fleet ${name}: no CA`);
      const pem = caText.startsWith('-----') ? caText : await readFile(pathOf(caText), 'utf8');
      const cas = parseCaCertificates(pem, `fleet ${name}`);
      let ids: RegExp | undefined;
      if (text(setting.ids) !== '') {
        try {
          ids = new RegExp(text(setting.ids));
        } catch {
          throw new FleetError(`fleet ${name}: the id pattern is not a regular expression`);
        }
      }
      const fleet: Fleet = { name, cas, idFrom, ...(ids ? { ids } : {}) };
      const crlPath = text(setting.crl);
      if (crlPath !== '') {
        try {
          fleet.crl = parseCrl(await readFile(pathOf(crlPath)), cas);
        } catch (err) {
          const reason = err instanceof CrlError ? err.message : (err as Error).message;
          const before = previous.find((f) => f.name === name)?.crl;
          if (before !== undefined && typeof before !== 'string') {
            fleet.crl = before;
            problems.push(`fleet ${name}: its CRL ${crlPath} cannot be used, the one read before stays in use: ${reason}`);
          } else {
            fleet.crl = reason;
            problems.push(`fleet ${name}: its CRL ${crlPath} cannot be used (its certificates are refused until it can): ${reason}`);
          }
        }
      }
      fleets.push(fleet);
    } catch (err) {
      problems.push(err instanceof FleetError ? err.message : `fleet ${name}: ${(err as Error).message}`);
    }
  }
  return { fleets, problems };
}
