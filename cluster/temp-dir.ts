import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

/** Prefix of every temp dir made by ZiStore's launchers. */
export const TEMP_DIR_PREFIX = 'zistore-';

/**
 * Make a fresh directory under os.tmpdir() named `zistore-<label>-XXXXXX`
 * (or `zistore-XXXXXX` without a label). Returns its absolute path.
 */
export async function makeTempDir(label?: string): Promise<string> {
  const safe = label ? label.replace(/[^A-Za-z0-9_.-]/g, '_') + '-' : '';
  return mkdtemp(join(tmpdir(), TEMP_DIR_PREFIX + safe));
}

/** True when `path` is a direct child of os.tmpdir() whose name starts with `zistore-`. */
export function isOurTempDir(path: string): boolean {
  const abs = resolve(path);
  return dirname(abs) === resolve(tmpdir()) && basename(abs).startsWith(TEMP_DIR_PREFIX);
}

function assertOurs(path: string): void {
  if (!isOurTempDir(path)) {
    throw new Error(`refusing to remove ${path}: not a ${TEMP_DIR_PREFIX}* directory under ${tmpdir()}`);
  }
}

/**
 * Remove a temp dir made by makeTempDir (recursively; missing is fine).
 * Refuses any path that is not a `zistore-*` directory directly under os.tmpdir().
 */
export async function removeTempDir(path: string): Promise<void> {
  assertOurs(path);
  await rm(path, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}

/** Synchronous removeTempDir, for exit handlers. */
export function removeTempDirSync(path: string): void {
  assertOurs(path);
  rmSync(path, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}
