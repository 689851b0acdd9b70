// Goal: disk faults are loud, never silent: a follower whose disk fills up stops acking, says why
// in its log and in `members`, stays up, and writes go on without it; a read-only data dir stops
// the start with a message naming it.
// Method: real `zistore node` processes (LocalCluster, fsync always and interval); the follower's data dir is
// moved onto a small tmpfs the test mounts (a real ENOSPC from the kernel), and a tmpfs mounted
// read-only. Mounting needs root (or CAP_SYS_ADMIN): without it these tests are skipped, saying so.
import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { eventually, kv } from '../support/raw-client.ts';
import type { NatsConnection } from 'nats';

const CLI = join(import.meta.dirname, '..', '..', 'cli', 'zistore.js');
const mounts: string[] = [];
const dirs: string[] = [];
let cluster: LocalCluster | null = null;
let nc: NatsConnection | null = null;

function mountTmpfs(path: string, options: string): boolean {
  mkdirSync(path, { recursive: true });
  const run = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', path], { encoding: 'utf8' });
  if (run.status !== 0) return false;
  mounts.push(path);
  return true;
}

const probe = mkdtempSync(join(tmpdir(), 'zistore-mount-probe-'));
const canMount = mountTmpfs(join(probe, 'm'), 'size=1m');
if (canMount) spawnSync('umount', [mounts.pop()!]);
rmSync(probe, { recursive: true, force: true });
if (!canMount) console.warn('disk-faults: skipped, this user cannot mount a tmpfs (needs root or CAP_SYS_ADMIN)');

afterEach(async () => {
  await nc?.close();
  nc = null;
  await cluster?.stop();
  cluster = null;
  for (const path of mounts.splice(0).reverse()) spawnSync('umount', [path]);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!canMount)('disk faults', () => {
  // Both policies: `always` learns of the failure from the engine's asynchronous commit,
  // `interval` from its own synchronous one.
  it.each(['always', 'interval'] as const)('a follower whose disk fills up stops acking, says why in its log and members, stays up; writes go on (--fsync %s)', async (fsync) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zistore-disk-full-'));
    dirs.push(dataDir);
    cluster = await LocalCluster.start({ nodes: 3, cluster: 'disk-full', dataDir, sessionTimeoutMs: 2000, durable: fsync, faults: 'none' });
    await cluster.waitServing(60_000);
    nc = await cluster.connectClient();
    const store = kv(nc, 'disk-full');
    const leader = (await store.members()).leader!;
    const f = [...cluster.nodes.keys()].find((id) => id !== leader)!;
    // The follower's data dir moves onto a 3 MiB tmpfs.
    await cluster.stopNode(f);
    const own = cluster.nodeDataDir(f);
    const saved = `${own}.saved`;
    cpSync(own, saved, { recursive: true });
    rmSync(own, { recursive: true });
    expect(mountTmpfs(own, 'size=3m')).toBe(true);
    cpSync(saved, own, { recursive: true });
    await cluster.restart(f);
    await cluster.waitServing(60_000);

    const value = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 80; i++) expect((await store.put(`big-${i}`, value, leader)).code, `put ${i}`).toBe(200);
    await eventually(async () => !(await store.members(leader)).replicas.includes(f), 15_000, `${f} removed from the replica set`);
    expect(cluster.nodes.get(f)!.process?.isRunning()).toBe(true);
    const seen = await store.members(f);
    const self = seen.members.find((m) => m.id === f) as { dataDirError?: string } | undefined;
    // Refused before the engine meets the full disk (its own error path can kill the process).
    expect(self?.dataDirError).toMatch(/write to the data dir .* failed: ENOSPC: \d+ bytes free on its file system, a commit of \d+ bytes needs \d+/);
    expect(readFileSync(cluster.nodes.get(f)!.logFile, 'utf8')).toContain('the data dir failed');
    expect((await store.put('after', 'y', leader)).code).toBe(200);
  });

  it('a read-only data dir stops the start with a message naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zistore-ro-'));
    dirs.push(dir);
    const ro = join(dir, 'ro');
    expect(mountTmpfs(ro, 'size=1m,ro')).toBe(true);
    const run = spawnSync(process.execPath, [CLI, 'node', '--id', 'n1', '--cluster', 'c', '--zk', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:1', '--data-dir', ro], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`cannot open the data dir ${ro}`);
    expect(run.stderr).toMatch(/Read-only file system/);
  });
});
