// Goal: the command-line contract outside tests rely on: `zistore up` prints a ready line with
// the NATS URL, serves the client contract, and on SIGTERM stops everything it started;
// `zistore node` refuses bad flags with a clear message; the typed client works end to end.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as natsConnect } from 'nats';
import { connect, ZiStoreError } from '../../client/index.ts';
import { freePort } from '../../cluster/ports.ts';

const BIN = join(import.meta.dirname, '..', '..', 'cli', 'zistore.js');

function processesMentioning(text: string): string[] {
  const out = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((line) => line.includes(text) && !line.includes('ps -eo'));
}

describe('cli', () => {
  it('zistore up - ready line, working cluster, clean stop on SIGTERM; a second run on the data dir finds the data', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zistore-cli-'));
    const natsPort = await freePort();
    const zkPort = await freePort();
    await runUp(dataDir, natsPort, zkPort, async (readyLine) => {
      expect(readyLine).toContain(`nats://127.0.0.1:${natsPort}`);
      expect(readyLine).toContain(' keys=0');
      expect(readyLine).toContain('open: loopback only');
      const kv = await connect({ servers: `nats://127.0.0.1:${natsPort}`, cluster: 'clitest' });
      const { revision } = await kv.put('hello', 'world');
      expect((await kv.get('hello'))?.text()).toBe('world');
      expect((await kv.get('hello', { node: 'n2' }))?.revision).toBe(revision);
      await expect(kv.put('hello', 'x', { ifRevision: revision + 100 })).rejects.toMatchObject({ name: 'ZiStoreError', code: 409 });
      await expect(kv.delete('missing')).rejects.toBeInstanceOf(ZiStoreError);
      expect(await kv.get('missing')).toBeNull();
      const view = await kv.members();
      expect(view.members.map((m) => m.id)).toEqual(['n1', 'n2']);
      await kv.close();
    });
    await runUp(dataDir, natsPort, zkPort, async (readyLine) => {
      expect(readyLine).toContain(' keys=1');
      const kv = await connect({ servers: `nats://127.0.0.1:${natsPort}`, cluster: 'clitest' });
      expect((await kv.get('hello', { node: 'n1' }))?.text()).toBe('world');
      expect((await kv.get('hello', { node: 'n2' }))?.text()).toBe('world');
      await kv.close();
    });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('zistore up --secure - credentials needed; the shell and the typed client find them by themselves; a second run keeps identities and data', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zistore-cli-'));
    const home = join(dataDir, 'home');
    const previousHome = process.env.ZISTORE_HOME;
    process.env.ZISTORE_HOME = home;
    const natsPort = await freePort();
    const zkPort = await freePort();
    const url = `nats://127.0.0.1:${natsPort}`;
    try {
      await runUp(
        dataDir,
        natsPort,
        zkPort,
        async (readyLine) => {
          expect(readyLine).toContain(`secure: credentials in ${join(dataDir, 'credentials.json')} and ${join(home, 'clitest.json')}`);
          await expect(natsConnect({ servers: url, reconnect: false })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' });
          const shell = spawnSync(process.execPath, [BIN, 'shell', '--nats', url, '--cluster', 'clitest'], {
            input: 'put hello world\nget hello n2\nput help me\nscan hel --values --node n2\ncount he\nwatch hel --after 0 --count 2\nwatch --key help --after 1 --count 1 --poll\nscan --limit 1\ntxn if hello rev 1 if nope absent put t1 x delete help\ntxn if hello rev 7 put t2 y\ntxn if t1 is x put t1 z --ttl 1h\n',
            encoding: 'utf8',
            env: process.env,
            timeout: 30_000,
          });
          expect(shell.stdout).toContain('"world" (revision 1)');
          expect(shell.stdout).toContain('hello = "world" (revision 1)\nhelp = "me" (revision 2)\n2 key(s) at revision 2');
          expect(shell.stdout).toContain('2 key(s) at revision 2\n');
          // Pushed through a change feed (the default), then by long polls.
          expect(shell.stdout).toContain('[watch 1] put hello = "world" (revision 1)\n[watch 1] put help = "me" (revision 2)\n[watch 1] stopped\n');
          expect(shell.stdout).toContain('[watch 2] put help = "me" (revision 2)\n[watch 2] stopped\n');
          expect(shell.stdout).toContain('hello (revision 1)\n1 key(s) at revision 2; more: scan "" --after "hello"');
          expect(shell.stdout).toContain('ok (revision 3, 2 key(s) written)\nerror 409: compare failed: "hello" is at 1, not 7\nok (revision 4, 1 key(s) written)');
          const kv = await connect({ servers: url, cluster: 'clitest' });
          expect((await kv.get('hello', { node: 'n1' }))?.text()).toBe('world');
          await kv.close();
        },
        ['--secure'],
      );
      expect(existsSync(join(home, 'clitest.json'))).toBe(false);
      await runUp(
        dataDir,
        natsPort,
        zkPort,
        async (readyLine) => {
          expect(readyLine).toContain(' keys=2');
          const kv = await connect({ cluster: 'clitest', creds: join(dataDir, 'credentials.json') });
          expect((await kv.get('hello', { node: 'n2' }))?.text()).toBe('world');
          expect((await kv.put('hello', 'again')).revision).toBe(5);
          await kv.close();
        },
        ['--secure'],
      );
    } finally {
      if (previousHome === undefined) delete process.env.ZISTORE_HOME;
      else process.env.ZISTORE_HOME = previousHome;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  /** `zistore up` on `dataDir` until its ready line, `check` on it, then SIGTERM: it must stop everything it started. */
  async function runUp(dataDir: string, natsPort: number, zkPort: number, check: (readyLine: string) => Promise<void>, extra: string[] = []): Promise<void> {
    const up = spawn(process.execPath, [BIN, 'up', '--nodes', '2', '--cluster', 'clitest', '--nats-port', String(natsPort), '--zk-port', String(zkPort), '--data-dir', dataDir, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    up.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => up.on('exit', (code) => resolve(code)));
    try {
      const start = Date.now();
      while (!out.includes('ready')) {
        if (Date.now() - start > 60_000) throw new Error(`no ready line; got: ${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await check(out.split('\n').find((l) => l.includes('ready'))!);
    } finally {
      up.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    // Nothing it started is left: no node, no nats-server, no ZooKeeper using its data dir.
    expect(processesMentioning(dataDir)).toEqual([]);
    expect(processesMentioning('--cluster clitest')).toEqual([]);
  }

  it('zistore node - bad or missing flags get a clear message and exit code 2', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
    const missing = run('node', '--id', 'n1');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--cluster is required');
    const badId = run('node', '--id', 'bad id', '--cluster', 'c', '--zk', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:1');
    expect(badId.status).toBe(2);
    expect(badId.stderr).toContain('--id');
    const badTimeout = run('node', '--id', 'n1', '--cluster', 'c', '--zk', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:1', '--session-timeout', 'soon');
    expect(badTimeout.status).toBe(2);
    expect(badTimeout.stderr).toContain('--session-timeout');
    const required = ['--id', 'n1', '--cluster', 'c', '--zk', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:1'];
    const memoryOnDisk = run('node', ...required, '--storage', 'memory', '--data-dir', '/tmp/x');
    expect(memoryOnDisk.status).toBe(2);
    expect(memoryOnDisk.stderr).toContain('--storage memory keeps nothing on disk');
    const fsyncAlone = run('node', ...required, '--fsync', 'always');
    expect(fsyncAlone.status).toBe(2);
    expect(fsyncAlone.stderr).toContain('--fsync and --reset-data need --data-dir');
    const backupNothing = run('backup', '--data-dir', '/nonexistent/zistore', '--out', '/tmp/never');
    expect(backupNothing.status).toBe(1);
    expect(backupNothing.stderr).toContain('no copy at /nonexistent/zistore');
    const unknown = run('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect(existsSync(BIN)).toBe(true);
  });
});
