/**
 * Certificates for tests, made with openssl as an operator would: fleet CAs (with openssl's own CA
 * database, so that certificates can be revoked and a CRL issued), intermediates, device
 * certificates named by CN or subjectAltName, self-signed device certificates, expired ones, and
 * a server certificate for 127.0.0.1. Everything lives in a temporary folder.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Issued {
  name: string;
  keyPath: string;
  certPath: string;
  key: Buffer;
  cert: Buffer;
  /** SHA-256 fingerprint, lowercase hex. */
  fingerprint: string;
  /** Serial number, lowercase hex without leading zeros. */
  serial: string;
}

export interface CertificateAuthority extends Issued {
  dir: string;
  config: string;
}

function openssl(args: string[], cwd?: string): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], ...(cwd ? { cwd } : {}) });
}

function describeCert(name: string, keyPath: string, certPath: string): Issued {
  const cert = readFileSync(certPath);
  const x509 = new X509Certificate(cert);
  return {
    name,
    keyPath,
    certPath,
    key: readFileSync(keyPath),
    cert,
    fingerprint: x509.fingerprint256.replace(/:/g, '').toLowerCase(),
    serial: x509.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
  };
}

/** openssl `ca` dates: YYYYMMDDHHMMSSZ. */
function caDate(ms: number): string {
  return `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const DAY = 86_400_000;

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'iot-pki-'));

  /** A CA that can issue, revoke and publish a CRL; `issuer` makes it an intermediate of that CA. */
  ca(name: string, issuer?: CertificateAuthority): CertificateAuthority {
    const dir = join(this.dir, name);
    mkdirSync(join(dir, 'issued'), { recursive: true });
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), `${(1000 + Math.floor(Math.random() * 1e6)).toString(16).padStart(6, '0')}\n`);
    writeFileSync(join(dir, 'crlnumber'), '01\n');
    const config = join(dir, 'ca.cnf');
    writeFileSync(
      config,
      [
        '[ ca ]',
        'default_ca = fleet',
        '[ fleet ]',
        `dir = ${dir}`,
        'database = $dir/index.txt',
        'new_certs_dir = $dir/issued',
        'certificate = $dir/ca.pem',
        'private_key = $dir/ca.key',
        'serial = $dir/serial',
        'crlnumber = $dir/crlnumber',
        'default_md = sha256',
        'default_days = 30',
        'default_crl_days = 30',
        'policy = anything',
        'unique_subject = no',
        'copy_extensions = copy',
        '[ anything ]',
        'commonName = optional',
        '[ device ]',
        'basicConstraints = CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = clientAuth',
        '[ server ]',
        'basicConstraints = CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = serverAuth',
        '[ intermediate ]',
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,keyCertSign,cRLSign',
        '',
      ].join('\n'),
    );
    const keyPath = join(dir, 'ca.key');
    const certPath = join(dir, 'ca.pem');
    if (issuer) {
      openssl(['req', '-new', ...EC, '-keyout', keyPath, '-out', join(dir, 'ca.csr'), '-subj', `/CN=${name}`]);
      openssl(['ca', '-batch', '-config', issuer.config, '-extensions', 'intermediate', '-notext', '-in', join(dir, 'ca.csr'), '-out', certPath]);
    } else {
      openssl(['req', '-x509', ...EC, '-days', '30', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', keyPath, '-out', certPath]);
    }
    return { ...describeCert(name, keyPath, certPath), dir, config };
  }

  /**
   * A device certificate from `ca`: subject CN `cn` (if given), subjectAltNames `san` (e.g.
   * `DNS:pump-1`), valid from `from` to `to` (default: from a day ago for 30 days).
   */
  device(ca: CertificateAuthority, name: string, options: { cn?: string; san?: string[]; from?: number; to?: number; extensions?: 'device' | 'server' } = {}): Issued {
    const keyPath = join(ca.dir, `${name}.key`);
    const certPath = join(ca.dir, `${name}.pem`);
    const csr = join(ca.dir, `${name}.csr`);
    openssl(['req', '-new', ...EC, '-keyout', keyPath, '-out', csr, '-subj', options.cn ? `/CN=${options.cn}` : '/O=devices', ...(options.san ? ['-addext', `subjectAltName=${options.san.join(',')}`] : [])]);
    const from = options.from ?? Date.now() - DAY;
    const to = options.to ?? Date.now() + 30 * DAY;
    openssl(['ca', '-batch', '-config', ca.config, '-extensions', options.extensions ?? 'device', '-notext', '-startdate', caDate(from), '-enddate', caDate(to), '-in', csr, '-out', certPath]);
    return describeCert(name, keyPath, certPath);
  }

  /** A self-signed device certificate (no CA): usable only where pinned by its fingerprint. */
  selfSigned(name: string, cn: string): Issued {
    const keyPath = join(this.dir, `${name}.key`);
    const certPath = join(this.dir, `${name}.pem`);
    openssl(['req', '-x509', ...EC, '-days', '30', '-subj', `/CN=${cn}`, '-keyout', keyPath, '-out', certPath]);
    return describeCert(name, keyPath, certPath);
  }

  /** Revokes a certificate in the CA's database. */
  revoke(ca: CertificateAuthority, issued: Issued): void {
    openssl(['ca', '-batch', '-config', ca.config, '-revoke', issued.certPath]);
  }

  /** The CA's CRL (PEM) as of now, written to `path`. */
  crl(ca: CertificateAuthority, path: string): void {
    openssl(['ca', '-batch', '-config', ca.config, '-gencrl', '-out', path]);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
