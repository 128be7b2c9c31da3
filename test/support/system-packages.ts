/**
 * The Debian packages the integration, end-to-end and browser tests need. Missing ones are
 * installed with apt-get when running as root; otherwise the run stops with the package names.
 * Used as vitest globalSetup (once, before any test file) and by services.ts (per server).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export interface SystemPackage {
  /** Debian package name. */
  name: string;
  /** A program the package installs: how we know it is there. */
  binary: string;
}

export const SYSTEM_PACKAGES = {
  mosquitto: { name: 'mosquitto', binary: '/usr/sbin/mosquitto' },
  mosquittoClients: { name: 'mosquitto-clients', binary: '/usr/bin/mosquitto_pub' },
  victoriaMetrics: { name: 'victoria-metrics', binary: '/usr/bin/victoria-metrics' },
  influxdb: { name: 'influxdb', binary: '/usr/bin/influxd' },
  redis: { name: 'redis-server', binary: '/usr/bin/redis-server' },
  chromium: { name: 'chromium', binary: '/usr/bin/chromium' },
  openssl: { name: 'openssl', binary: '/usr/bin/openssl' },
} satisfies Record<string, SystemPackage>;

function installed(pkg: SystemPackage): boolean {
  try {
    accessSync(pkg.binary, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let updated = false;

/** Makes sure every package is installed, or throws naming the ones that are not. */
export function ensureInstalled(...packages: SystemPackage[]): void {
  const missing = packages.filter((p) => !installed(p));
  if (missing.length === 0) return;
  const names = missing.map((p) => p.name);
  if (process.getuid?.() !== 0) {
    throw new Error(`Missing Debian package(s): ${names.join(' ')}. Install them with: sudo apt-get install -y ${names.join(' ')}`);
  }
  console.log(`[system-packages] installing ${names.join(' ')} with apt-get`);
  const apt = (args: string[]) =>
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  if (!updated) {
    const update = apt(['update', '-q']);
    if (update.status !== 0) throw new Error(`apt-get update failed:\n${update.stderr}`);
    updated = true;
  }
  const result = apt(['install', '-y', '-q', '--no-install-recommends', ...names]);
  const still = missing.filter((p) => !installed(p)).map((p) => p.name);
  if (result.status !== 0 || still.length > 0) {
    throw new Error(`apt-get install ${names.join(' ')} failed (still missing: ${still.join(' ') || 'none'}):\n${result.stderr.slice(-2000)}`);
  }
}

/** vitest globalSetup: everything at once, before the first test file runs. */
export default function setup(): void {
  ensureInstalled(...Object.values(SYSTEM_PACKAGES));
}
