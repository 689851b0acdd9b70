// Goal: the start-up contract of `zistore node` and `zistore up` on real processes (issue 10,
// item 7): `--session-timeout` alone is enough (the lease follows it; a --lease too long for it
// is refused with a clear message), and a node started while NATS is unreachable keeps trying,
// logging each attempt, and serves once NATS comes. Method: one ZooKeeper for the file, a
// nats-server per test where one is needed, node processes spawned from cli/zistore.js; every
// process and server started here is stopped here.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as natsConnect } from 'nats';
import { startNatsServer, type NatsServerHandle } from '../../cluster/nats-server.ts';
import { freePort } from '../../cluster/ports.ts';
import { startZooKeeper, type ZooKeeperHandle } from '../../cluster/zookeeper-server.ts';
import { kv } from '../support/raw-client.ts';

const BIN = join(import.meta.dirname, '..', '..', 'cli', 'zistore.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LogLine {
  msg?: string;
  [field: string]: unknown;
}

/** A `zistore node` process with its JSON log lines collected. */
class NodeProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined = undefined;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    let buffered = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const part of parts) {
        try {
          this.lines.push(JSON.parse(part) as LogLine);
        } catch {
          this.lines.push({ msg: part });
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString('utf8')));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  logged(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  async waitFor(what: () => boolean, description: string, timeoutMs = 30_000): Promise<void> {
    const start = Date.now();
    while (!what()) {
      if (!this.running) throw new Error(`node exited (${this.exitCode}) while waiting for ${description}; stderr: ${this.stderr}; log: ${JSON.stringify(this.lines.slice(-5))}`);
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${description}; log: ${JSON.stringify(this.lines.slice(-5))}`);
      await sleep(50);
    }
  }
}

let zk: ZooKeeperHandle | null = null;
let nats: NatsServerHandle | null = null;
const nodes: NodeProcess[] = [];

function startNode(id: string, cluster: string, natsUrl: string, ...extra: string[]): NodeProcess {
  const child = spawn(process.execPath, [BIN, 'node', '--id', id, '--cluster', cluster, '--zk', zk!.connectString, '--nats', natsUrl, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ZISTORE_LOG_LEVEL: 'info' },
  }) as unknown as ChildProcessWithoutNullStreams;
  const node = new NodeProcess(child);
  nodes.push(node);
  return node;
}

const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });

beforeAll(async () => {
  zk = await startZooKeeper({ tickTimeMs: 200, serverLogLevel: 'warn', forceSync: false });
});

afterEach(async () => {
  for (const node of nodes.splice(0)) {
    if (node.running) node.child.kill('SIGKILL');
    await node.exited;
  }
  await nats?.stop();
  nats = null;
});

afterAll(async () => {
  await zk?.stop();
});

describe('zistore node start-up', () => {
  it('--session-timeout 1000 alone starts a node whose lease follows it (500 ms); SIGTERM stops it', async () => {
    nats = await startNatsServer({});
    const node = startNode('n1', 'st-lease', nats.url, '--session-timeout', '1000');
    await node.waitFor(() => node.logged('node started').length > 0, "'node started'");
    expect(node.logged('node started')[0]).toMatchObject({ sessionTimeoutMs: 1000, leaseMs: 500 });
    // It answers the contract.
    const nc = await natsConnect({ servers: nats.url });
    try {
      const view = await kv(nc, 'st-lease').members('n1');
      expect(view.members.map((m) => m.id)).toEqual(['n1']);
    } finally {
      await nc.close();
    }
    node.child.kill('SIGTERM');
    expect(await node.exited, `stderr: ${node.stderr}; log: ${JSON.stringify(node.lines.slice(-8))}`).toBe(0);
  });

  it('a --lease too long for the session timeout is refused with a clear message, by node, config print and up', () => {
    const base = ['--id', 'n1', '--cluster', 'c', '--zk', '127.0.0.1:1', '--nats', 'nats://127.0.0.1:1'];
    const equal = run('node', ...base, '--session-timeout', '1000', '--lease', '1000');
    expect(equal.status).toBe(2);
    expect(equal.stderr).toContain('--lease (1000 ms) is too long for --session-timeout (1000 ms)');
    expect(equal.stderr).toContain('at most 890 ms here');
    // Shorter than the timeout but not with the clock-drift margin: 900 × 1.1 + 20 ≥ 1000.
    const drift = run('config', 'print', ...base, '--session-timeout', '1000', '--lease', '900');
    expect(drift.status).toBe(2);
    expect(drift.stderr).toContain('--lease (900 ms) is too long');
    const fits = run('config', 'print', ...base, '--session-timeout', '1000', '--lease', '890');
    expect(fits.status, fits.stderr).toBe(0);
    // Without --lease any session timeout the flag accepts is fine.
    for (const timeout of ['500', '1000', '1999', '2000', '60000']) {
      const alone = run('config', 'print', ...base, '--session-timeout', timeout);
      expect(alone.status, alone.stderr).toBe(0);
    }
    // The defaults are unchanged: 1000 ms against 2000 ms.
    expect(run('config', 'print', ...base, '--lease', '1000').status).toBe(0);
    // `zistore up` refuses before starting anything.
    const up = run('up', '--session-timeout', '1000', '--lease', '1000');
    expect(up.status).toBe(2);
    expect(up.stderr).toContain('--lease (1000 ms) is too long for --session-timeout (1000 ms)');
  });

  it('NATS unreachable at start: the node keeps trying with backoff, logging each failure, and serves once NATS comes', async () => {
    const port = await freePort();
    // First a listener that resets every connection (the ECONNRESET of the issue)...
    const sockets = new Set<Socket>();
    const resetter: Server = createServer((socket) => {
      sockets.add(socket);
      socket.resetAndDestroy();
    });
    await new Promise<void>((resolve) => resetter.listen(port, '127.0.0.1', resolve));
    const url = `nats://127.0.0.1:${port}`;
    const node = startNode('n1', 'st-wait', url, '--session-timeout', '1000');
    try {
      await node.waitFor(() => node.logged('cannot connect to NATS; retrying').length >= 2, 'two failed attempts');
    } finally {
      await new Promise<void>((resolve) => resetter.close(() => resolve()));
    }
    // ...then nothing at all (ECONNREFUSED).
    const refusedFrom = node.logged('cannot connect to NATS; retrying').length;
    await node.waitFor(() => node.logged('cannot connect to NATS; retrying').length >= refusedFrom + 2, 'two more failed attempts');
    expect(node.running).toBe(true);
    const failures = node.logged('cannot connect to NATS; retrying');
    expect(failures[0]).toMatchObject({ level: 40, attempt: 1 });
    // The wait grows (250 ms doubling to 5 s, ±20%).
    const waits = failures.map((l) => l.retryInMs as number);
    expect(waits[0]).toBeLessThanOrEqual(300);
    expect(waits[waits.length - 1]).toBeGreaterThan(waits[0]!);
    expect(waits.every((w) => w <= 6000)).toBe(true);

    nats = await startNatsServer({ port });
    // The next attempt comes within the current wait (at most 5 s ± 20%).
    await node.waitFor(() => node.logged('node started').length > 0, "'node started' once NATS is up");
    expect(node.logged('connected to NATS')[0]).toMatchObject({ attempts: node.logged('cannot connect to NATS; retrying').length + 1 });
    const nc = await natsConnect({ servers: nats.url });
    try {
      const view = await kv(nc, 'st-wait').members('n1');
      expect(view.node).toBe('n1');
    } finally {
      await nc.close();
    }
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
  });

  it('SIGTERM while still waiting for NATS ends the node cleanly (exit 0)', async () => {
    const node = startNode('n1', 'st-abort', `nats://127.0.0.1:${await freePort()}`);
    await node.waitFor(() => node.logged('cannot connect to NATS; retrying').length >= 1, 'a failed attempt');
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    expect(node.logged('stopped before starting')).toHaveLength(1);
  });
});

describe('zistore up start-up', () => {
  it('--session-timeout 1000 alone: the cluster comes up, each node with a 500 ms lease', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zistore-upst-'));
    const up = spawn(process.execPath, [BIN, 'up', '--nodes', '2', '--cluster', 'upst', '--data-dir', dataDir, '--session-timeout', '1000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    up.stdout.on('data', (d) => (out += d));
    up.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => up.on('exit', (code) => resolve(code)));
    try {
      const start = Date.now();
      while (!out.includes('ready')) {
        if (Date.now() - start > 60_000 || up.exitCode !== null) throw new Error(`no ready line; stdout: ${out}; stderr: ${err.slice(-2000)}`);
        await sleep(100);
      }
      for (const id of ['n1', 'n2']) {
        const started = readFileSync(join(dataDir, `${id}.log`), 'utf8')
          .split('\n')
          .filter((l) => l.includes('"node started"'))
          .map((l) => JSON.parse(l) as LogLine);
        expect(started[0], id).toMatchObject({ sessionTimeoutMs: 1000, leaseMs: 500 });
      }
    } finally {
      up.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
  });
});
