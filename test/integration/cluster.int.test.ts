import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection, type Status } from 'nats';
import { startNatsCluster, startNatsServer, type NatsServerHandle } from '../../cluster/nats-server.ts';
import { freePort } from '../../cluster/ports.ts';
import { stopAllProcesses, trackedProcesses } from '../../cluster/process-registry.ts';
import { startTcpProxy, type TcpProxyHandle } from '../../cluster/tcp-proxy.ts';
import { isOurTempDir, makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';
import { startZooKeeper, type ZooKeeperHandle } from '../../cluster/zookeeper-server.ts';

// node-zookeeper-client ships no types: describe the little used here.
interface ZkClient {
  connect(): void;
  close(): void;
  on(event: 'state', cb: (state: { name: string; code: number }) => void): void;
  once(event: 'connected' | 'disconnected' | 'expired', cb: () => void): void;
  create(path: string, data: Buffer, cb: (err: Error | null, path?: string) => void): void;
  exists(path: string, cb: (err: Error | null, stat?: unknown) => void): void;
  getSessionId(): Buffer;
}
interface ZkModule {
  createClient(connect: string, opts: { sessionTimeout: number; spinDelay: number; retries: number }): ZkClient;
}
const zookeeper = createRequire(import.meta.url)('node-zookeeper-client') as ZkModule;

const MiB = 1024 * 1024;

function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** Collects a NATS connection's status events and lets a test wait for one. */
function watchStatus(nc: NatsConnection): { seen: string[]; waitFor(type: string, timeoutMs: number): Promise<void> } {
  const seen: string[] = [];
  const waiters: Array<{ type: string; resolve: () => void }> = [];
  void (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      seen.push(s.type);
      for (const w of waiters.filter((x) => x.type === s.type)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  })();
  return {
    seen,
    waitFor(type, timeoutMs) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no '${type}' status within ${timeoutMs} ms (seen: ${seen.join(',')})`)), timeoutMs);
        waiters.push({ type, resolve: () => (clearTimeout(t), resolve()) });
      });
    },
  };
}

function zkCreate(c: ZkClient, path: string): Promise<string> {
  return new Promise((resolve, reject) => c.create(path, Buffer.from('x'), (err, p) => (err ? reject(err) : resolve(p!))));
}
function zkExists(c: ZkClient, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => c.exists(path, (err, stat) => (err ? reject(err) : resolve(stat !== null && stat !== undefined))));
}
function zkConnect(connectString: string): Promise<ZkClient> {
  const c = zookeeper.createClient(connectString, { sessionTimeout: 6000, spinDelay: 100, retries: 2 });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => (c.close(), reject(new Error('zk connect timeout'))), 8000);
    c.once('connected', () => (clearTimeout(t), resolve(c)));
    c.connect();
  });
}
function zkState(c: ZkClient): { states: string[]; waitFor(name: string, timeoutMs: number): Promise<void> } {
  const states: string[] = [];
  const waiters: Array<{ name: string; resolve: () => void }> = [];
  c.on('state', (s) => {
    states.push(s.name);
    for (const w of waiters.filter((x) => x.name === s.name)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return {
    states,
    waitFor(name, timeoutMs) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ZooKeeper state ${name} within ${timeoutMs} ms (seen: ${states.join(',')})`)), timeoutMs);
        waiters.push({ name, resolve: () => (clearTimeout(t), resolve()) });
      });
    },
  };
}

afterAll(async () => {
  await stopAllProcesses();
});

describe('cluster launchers', () => {
  it('zookeeper launcher - starts, answers ruok, stops leaving no process', async () => {
    const zk = await startZooKeeper({ maxSessionTimeoutMs: 30_000 });
    expect(zk.connectString).toBe(`127.0.0.1:${zk.port}`);
    expect(isOurTempDir(zk.dataDir)).toBe(true);
    expect(pidGone(zk.pid)).toBe(false);
    expect(await zk.fourLetterWord('ruok')).toBe('imok');
    const cfg = await readFile(`${zk.dataDir}/zoo.cfg`, 'utf8');
    expect(cfg).toContain('tickTime=200');
    expect(cfg).toContain('maxSessionTimeout=30000');
    await zk.stop();
    expect(pidGone(zk.pid)).toBe(true);
    expect(existsSync(zk.dataDir)).toBe(false);
    expect(trackedProcesses().some((p) => p.pid === zk.pid)).toBe(false);
  }, 30_000);

  it('zookeeper launcher - kill keeps the data dir and a restart on it keeps the data', async () => {
    const dir = await makeTempDir('zk-restart');
    try {
      const zk1 = await startZooKeeper({ dataDir: dir });
      const c1 = await zkConnect(zk1.connectString);
      await zkCreate(c1, '/survives');
      c1.close();
      await zk1.kill();
      expect(pidGone(zk1.pid)).toBe(true);
      expect(existsSync(dir)).toBe(true);
      const zk2 = await startZooKeeper({ dataDir: dir, port: zk1.port });
      const c2 = await zkConnect(zk2.connectString);
      expect(await zkExists(c2, '/survives')).toBe(true);
      c2.close();
      await zk2.stop();
      await zk1.stop(); // already dead: just forgets it
      expect(pidGone(zk2.pid)).toBe(true);
      expect(existsSync(dir)).toBe(true); // not ours to remove
    } finally {
      await removeTempDir(dir);
    }
  }, 30_000);

  it('zookeeper launcher - restart() crashes and restarts on the same port and temp data dir', async () => {
    const zk1 = await startZooKeeper();
    const c1 = await zkConnect(zk1.connectString);
    await zkCreate(c1, '/kept');
    c1.close();
    const zk2 = await zk1.restart();
    expect(pidGone(zk1.pid)).toBe(true);
    expect(zk2.port).toBe(zk1.port);
    expect(zk2.dataDir).toBe(zk1.dataDir);
    expect(zk2.ownsDataDir).toBe(true);
    const c2 = await zkConnect(zk2.connectString);
    expect(await zkExists(c2, '/kept')).toBe(true);
    c2.close();
    await zk2.stop();
    expect(pidGone(zk2.pid)).toBe(true);
    expect(existsSync(zk2.dataDir)).toBe(false);
  }, 30_000);

  it('nats launcher - starts with 8 MiB max_payload, carries a large message, stops leaving no process', async () => {
    const ns = await startNatsServer();
    expect(ns.url).toBe(`nats://127.0.0.1:${ns.port}`);
    const nc = await connect({ servers: ns.url });
    try {
      expect(nc.info?.max_payload).toBeGreaterThanOrEqual(8 * MiB);
      const sub = nc.subscribe('echo', { callback: (_err, m) => m.respond(m.data) });
      await nc.flush();
      const big = new Uint8Array(8 * MiB - 4096).fill(7);
      const reply = await nc.request('echo', big, { timeout: 5000 });
      expect(reply.data.length).toBe(big.length);
      sub.unsubscribe();
    } finally {
      await nc.close();
    }
    await ns.stop();
    expect(pidGone(ns.pid)).toBe(true);
    expect(existsSync(ns.dir)).toBe(false);
  }, 30_000);

  it('nats launcher - pause and resume stop and continue the server', async () => {
    const ns = await startNatsServer();
    const nc = await connect({ servers: ns.url });
    try {
      await nc.flush();
      await ns.pause();
      const pending = Promise.race([nc.flush().then(() => 'flushed'), sleep(500).then(() => 'stuck')]);
      expect(await pending).toBe('stuck');
      await ns.resume();
      await nc.flush();
    } finally {
      await nc.close();
      await ns.stop(); // also works if it were still paused
    }
    expect(pidGone(ns.pid)).toBe(true);
  }, 20_000);

  it('zookeeper launcher - a failed start reports the server log', async () => {
    const taken = await startZooKeeper();
    try {
      await expect(startZooKeeper({ port: taken.port, startTimeoutMs: 15_000 })).rejects.toThrow(/ZooKeeper on 127\.0\.0\.1:\d+ \(pid \d+\) (exited during start-up|was not ready)[\s\S]*Address already in use/i);
      expect(await taken.fourLetterWord('ruok')).toBe('imok');
    } finally {
      await taken.stop();
    }
  }, 30_000);

  it('launchers - a missing binary gives an error pointing at setup.sh', async () => {
    await expect(startNatsServer({ binary: '/nonexistent/nats-server' })).rejects.toThrow(/scripts\/setup\.sh/);
    await expect(startZooKeeper({ javaPath: '/nonexistent/java' })).rejects.toThrow(/scripts\/setup\.sh/);
  });

  it('nats launcher - a failed start reports the server log', async () => {
    const taken = await startNatsServer();
    try {
      await expect(startNatsServer({ port: taken.port, startTimeoutMs: 5000 })).rejects.toThrow(/nats-server on 127\.0\.0\.1:\d+ \(pid \d+\) exited during start-up[\s\S]*address already in use/i);
    } finally {
      await taken.stop();
    }
  }, 20_000);

  it('nats cluster - three routed servers with JetStream become healthy and replicate', async () => {
    const cl = await startNatsCluster({ size: 3, jetstream: true });
    try {
      expect(cl.servers).toHaveLength(3);
      const nc = await connect({ servers: cl.urls });
      try {
        const jsm = await nc.jetstreamManager();
        const si = await jsm.streams.add({ name: 'T', subjects: ['t.>'], num_replicas: 3 });
        expect(si.config.num_replicas).toBe(3);
        const ack = await nc.jetstream().publish('t.a', new Uint8Array([1]));
        expect(ack.seq).toBe(1);
      } finally {
        await nc.close();
      }
    } finally {
      await cl.stop();
    }
    for (const s of cl.servers) expect(pidGone(s.pid)).toBe(true);
  }, 40_000);

  it('nats launcher - restart() keeps port and JetStream data', async () => {
    const ns1 = await startNatsServer({ jetstream: true });
    let nc = await connect({ servers: ns1.url });
    await (await nc.jetstreamManager()).streams.add({ name: 'R', subjects: ['r.>'] });
    await nc.jetstream().publish('r.x', new Uint8Array([9]));
    await nc.close();
    const ns2 = await ns1.restart({ graceful: true });
    expect(pidGone(ns1.pid)).toBe(true);
    expect(ns2.port).toBe(ns1.port);
    nc = await connect({ servers: ns2.url });
    try {
      const info = await (await nc.jetstreamManager()).streams.info('R');
      expect(info.state.messages).toBe(1);
    } finally {
      await nc.close();
    }
    await ns2.stop();
    expect(existsSync(ns2.dir)).toBe(false);
  }, 30_000);

  it('process registry - stopAllProcesses stops every tracked server', async () => {
    const a = await startNatsServer();
    const b = await startNatsServer();
    expect(trackedProcesses().map((p) => p.pid)).toEqual(expect.arrayContaining([a.pid, b.pid]));
    await stopAllProcesses();
    expect(pidGone(a.pid) && pidGone(b.pid)).toBe(true);
    expect(existsSync(a.dir) || existsSync(b.dir)).toBe(false);
  }, 20_000);
});

describe('tcp proxy fault injection', () => {
  let zk: ZooKeeperHandle;
  let ns: NatsServerHandle;
  let direct: NatsConnection;

  beforeAll(async () => {
    [zk, ns] = await Promise.all([startZooKeeper(), startNatsServer()]);
    direct = await connect({ servers: ns.url });
    direct.subscribe('echo', { callback: (_err, m) => m.respond(m.data) });
    await direct.flush();
  }, 30_000);

  afterAll(async () => {
    await direct?.close();
    await Promise.all([zk?.stop(), ns?.stop()]);
  });

  async function natsViaProxy(proxy: TcpProxyHandle): Promise<NatsConnection> {
    return connect({
      servers: `nats://${proxy.address}`,
      reconnectTimeWait: 100,
      reconnectJitter: 50,
      maxReconnectAttempts: -1,
      pingInterval: 500,
      maxPingOut: 2,
      timeout: 1000,
    });
  }

  it('tcp proxy - listens on a requested port and stop leaves no connection', async () => {
    const listenPort = await freePort();
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: ns.port }, listenPort });
    expect(proxy.port).toBe(listenPort);
    const nc = await natsViaProxy(proxy);
    expect(proxy.connectionCount).toBe(1);
    const closed = nc.closed();
    await nc.close();
    await closed;
    await proxy.stop();
    expect(proxy.connectionCount).toBe(0);
  }, 10_000);

  it("tcp proxy - NATS: cut('close') disconnects and requests fail; restore reconnects", async () => {
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: ns.port } });
    const nc = await natsViaProxy(proxy);
    const status = watchStatus(nc);
    try {
      expect(new TextDecoder().decode((await nc.request('echo', new TextEncoder().encode('hi'), { timeout: 1000 })).data)).toBe('hi');
      const disconnected = status.waitFor('disconnect', 3000);
      proxy.cut('close');
      expect(proxy.isCut).toBe(true);
      await disconnected;
      await expect(nc.request('echo', new Uint8Array(1), { timeout: 500 })).rejects.toThrow();
      const reconnected = status.waitFor('reconnect', 5000);
      proxy.restore();
      expect(proxy.isCut).toBe(false);
      await reconnected;
      const r = await nc.request('echo', new TextEncoder().encode('back'), { timeout: 1000 });
      expect(new TextDecoder().decode(r.data)).toBe('back');
    } finally {
      await nc.close();
      await proxy.stop();
    }
  }, 15_000);

  it("tcp proxy - NATS: cut('drop') black-holes requests until restore", async () => {
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: ns.port } });
    const nc = await natsViaProxy(proxy);
    const status = watchStatus(nc);
    try {
      await nc.request('echo', new Uint8Array(1), { timeout: 1000 });
      proxy.cut('drop');
      expect(proxy.cutMode).toBe('drop');
      const t0 = Date.now();
      await expect(nc.request('echo', new Uint8Array(1), { timeout: 700 })).rejects.toThrow(/TIMEOUT/i);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(600); // timed out, not refused
      // The client's ping timer notices the dead connection and starts reconnecting into the black hole.
      await status.waitFor('disconnect', 5000);
      expect(proxy.connectionCount).toBeGreaterThanOrEqual(1);
      const reconnected = status.waitFor('reconnect', 8000);
      proxy.restore();
      await reconnected;
      await nc.request('echo', new Uint8Array(1), { timeout: 1000 });
    } finally {
      await nc.close();
      await proxy.stop();
    }
  }, 20_000);

  it("tcp proxy - ZooKeeper: cut('close') gives disconnected, restore gives connected with the same session", async () => {
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: zk.port } });
    const c = await zkConnect(proxy.address);
    const st = zkState(c);
    try {
      await zkCreate(c, '/via-proxy');
      const session = c.getSessionId().toString('hex');
      const disconnected = st.waitFor('DISCONNECTED', 3000);
      proxy.cut('close');
      await disconnected;
      await sleep(300); // reconnect attempts are refused meanwhile
      const connected = st.waitFor('SYNC_CONNECTED', 5000);
      proxy.restore();
      await connected;
      expect(c.getSessionId().toString('hex')).toBe(session);
      expect(await zkExists(c, '/via-proxy')).toBe(true);
    } finally {
      c.close();
      await proxy.stop();
    }
  }, 15_000);
});
