/**
 * Real file systems that misbehave, for disk-error tests: a tiny tmpfs that fills up, a read-only
 * one. Mounting needs root (or sudo without a password); without either the test fails naming
 * what it needs, like a missing server: it is never skipped.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Mounted {
  path: string;
  dispose(): void;
}

function privileged(args: string[]): void {
  const asRoot = process.getuid?.() === 0;
  const run = asRoot ? spawnSync(args[0], args.slice(1), { encoding: 'utf8' }) : spawnSync('sudo', ['-n', ...args], { encoding: 'utf8' });
  if (run.status !== 0) {
    throw new Error(`${args.join(' ')} failed (${run.stderr?.trim() || run.error?.message}): the disk-error tests mount small file systems and need root or password-less sudo`);
  }
}

/** A tmpfs of `bytes` bytes, read-only when asked (an empty, unwritable folder). */
export function mountTmpfs(bytes: number, options: { readOnly?: boolean } = {}): Mounted {
  const path = mkdtempSync(join(tmpdir(), 'iot-small-disk-'));
  const flags = [`size=${Math.ceil(bytes / 1024)}k`, 'mode=0777', ...(options.readOnly ? ['ro'] : [])].join(',');
  privileged(['mount', '-t', 'tmpfs', '-o', flags, 'tmpfs', path]);
  return {
    path,
    dispose() {
      privileged(['umount', '-l', path]);
      rmSync(path, { recursive: true, force: true });
    },
  };
}
