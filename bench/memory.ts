// Memory of node processes: VmRSS from /proc, and memory after full garbage collections through
// gc-hook.mjs, which nodes preload when they are started inside withGcHook().
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { makeTempDir, removeTempDir, removeTempDirSync } from '../cluster/temp-dir.ts';

const GC_HOOK = fileURLToPath(new URL('gc-hook.mjs', import.meta.url));
export const MB = 1024 * 1024;

/** VmRSS of a process in bytes (null when it cannot be read). */
export function rssBytes(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const m = /VmRSS:\s+(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resident memory of a process by kind, in bytes (/proc/<pid>/status, /proc/<pid>/smaps). */
export interface RssBreakdown {
  /** VmRSS = RssAnon + RssFile + RssShmem. */
  rss: number;
  /** Heap, stacks and other private memory. */
  anon: number;
  /** Pages of mapped files: the executable and libraries, and memory maps such as LMDB's. */
  file: number;
  /** Of `file`, the resident pages of files under `mappedDir` (e.g. a node's data dir): page cache, shared with the OS. */
  mapped: number;
}

/** RssBreakdown of a process (null when it cannot be read); `mappedDir` names the files `mapped` counts. */
export function rssBreakdown(pid: number | null, mappedDir?: string): RssBreakdown | null {
  if (pid === null) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s*kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    let mapped = 0;
    if (mappedDir !== undefined) {
      // smaps: a mapping's header line ends with its path; its `Rss:` line follows.
      let inDir = false;
      for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
        if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inDir = line.includes(` ${mappedDir}/`);
        else if (inDir && line.startsWith('Rss:')) mapped += Number(/(\d+)/.exec(line)?.[1] ?? 0) * 1024;
      }
    }
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), mapped };
  } catch {
    return null;
  }
}

export interface AfterGc {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Heap snapshot file, when snapshots were asked for. */
  snapshot: string | null;
}

/**
 * Run `work` with NODE_OPTIONS preloading gc-hook.mjs, so nodes started meanwhile (LocalCluster
 * passes the environment on) answer memoryAfterGc. `snapshots`: they also write heap snapshots.
 */
export async function withGcHook<T>(work: (gcDir: string) => Promise<T>, snapshots = false): Promise<T> {
  const gcDir = await makeTempDir('gc');
  // Ctrl-C exits without running the finally below (bench/interrupt.ts): remove the dir on exit too.
  const onExit = () => removeTempDirSync(gcDir);
  process.once('exit', onExit);
  const saved = { NODE_OPTIONS: process.env.NODE_OPTIONS, ZISTORE_GC_DIR: process.env.ZISTORE_GC_DIR, ZISTORE_HEAP_SNAPSHOT: process.env.ZISTORE_HEAP_SNAPSHOT };
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${GC_HOOK}`.trim();
  process.env.ZISTORE_GC_DIR = gcDir;
  if (snapshots) process.env.ZISTORE_HEAP_SNAPSHOT = '1';
  try {
    return await work(gcDir);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    process.removeListener('exit', onExit);
    await removeTempDir(gcDir).catch(() => undefined);
  }
}

/** Ask a node (gc-hook.mjs) for two full collections and its memory after them. */
export async function memoryAfterGc(gcDir: string, pid: number, timeoutMs = 10_000): Promise<AfterGc | null> {
  const file = join(gcDir, `${pid}.mem`);
  await rm(file, { force: true });
  try {
    process.kill(pid, 'SIGURG');
  } catch {
    return null;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as AfterGc;
    } catch {
      await sleep(50);
    }
  }
  return null;
}
