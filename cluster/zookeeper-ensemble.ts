// A replicated ZooKeeper ensemble on 127.0.0.1: `size` real servers (QuorumPeerMain), each with
// its own data dir, `myid` file and zoo.cfg listing every member as `server.N=host:peer:election`.
// Used by the deployment example and its integration test, to show ZiStore nodes riding through
// the loss of one ZooKeeper server (a follower or the ensemble's leader).
// With `quorumLinks: 'proxied'` the servers reach each other through TCP proxies in this process,
// so a test can cut one server off its quorum (isolate) while it still accepts client connections.
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findExecutable, isPortInUseError, SETUP_HINT, spawnManaged, tailFile, waitReady, type ManagedProcess } from './child-process.ts';
import type { ClusterLogger } from './logger.ts';
import { freePort } from './ports.ts';
import { zkFourLetterWord } from './tcp-probe.ts';
import { startTcpProxy, type CutMode, type TcpProxyHandle } from './tcp-proxy.ts';
import { makeTempDir, removeTempDir, removeTempDirSync } from './temp-dir.ts';
import { ZOOKEEPER_JAR } from './zookeeper-server.ts';

const SLF4J_SIMPLE_JAR = '/usr/share/java/slf4j-simple.jar';
const SLF4J_NOP_JAR = '/usr/share/java/slf4j-nop.jar';

/** Small JVMs: three of them share a developer machine with the nodes and nats-servers. */
const JVM_ARGS = ['-Xmx192m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xshare:auto'];

export type ZooKeeperMode = 'leader' | 'follower' | 'observer' | 'standalone' | 'down';

export interface ZooKeeperEnsembleOptions {
  /** Number of servers; default 3 (tolerates one failure). */
  size?: number;
  /** Default 200 ms. initLimit and syncLimit are expressed in ticks (see below). */
  tickTimeMs?: number;
  /** Ticks a follower may take to connect and sync to a new leader; default 25 (5 s at 200 ms). */
  initLimitTicks?: number;
  /** Ticks a follower may lag behind the leader before it is dropped; default 10 (2 s at 200 ms). */
  syncLimitTicks?: number;
  /** Default 60000 (ZooKeeper's default would be 20 ticks = 4 s). */
  maxSessionTimeoutMs?: number;
  /**
   * Parent dir: server N lives in `<dir>/zk<N>` (zoo.cfg, zookeeper.log, data/myid). Kept on stop().
   * When omitted a temp dir is made and removed on stop().
   */
  dir?: string;
  /** Server log level (slf4j-simple); default 'info'. */
  serverLogLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Until every server answers and a leader with size-1 followers is established; default 60000 ms. */
  startTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop(); default 5000 ms. */
  stopGraceMs?: number;
  /** Path of `java`; default from PATH. */
  javaPath?: string;
  /**
   * 'direct' (default): servers connect to each other's quorum and election ports.
   * 'proxied': through one TCP proxy per directed pair of servers and port kind, so that
   * isolate() / reconnect() can partition a server from the others (see below).
   */
  quorumLinks?: 'direct' | 'proxied';
  log?: ClusterLogger;
}

export interface EnsembleServer {
  /** The `myid` of this server: 1..size. */
  readonly id: number;
  /** Pid of the current JVM (changes on restart()). */
  readonly pid: number;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly electionPort: number;
  /** '127.0.0.1:<clientPort>' */
  readonly address: string;
  /** `<dir>/zk<id>`: zoo.cfg, zookeeper.log and data/ (myid, snapshots, transaction logs). */
  readonly dir: string;
  readonly logFile: string;
  isRunning(): boolean;
  /** SIGKILL (a crash); resolves when the JVM has exited. Data stays for restart(). */
  kill(): Promise<void>;
  /** SIGTERM, SIGKILL after the grace period; resolves when the JVM has exited. */
  stop(): Promise<void>;
  /** Start this server again (killing it first if it still runs) on the same ports and data; resolves when it answers `ruok`. */
  restart(): Promise<void>;
  /** A four-letter-word command (ruok, srvr, stat, mntr, cons, ...) and its reply. */
  fourLetterWord(command: string): Promise<string>;
  /** Its role from `srvr`, or 'down' when it does not answer or does not serve (no quorum). */
  mode(): Promise<ZooKeeperMode>;
}

export interface ZooKeeperEnsembleHandle {
  readonly servers: EnsembleServer[];
  /** '127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3' — what `zistore node --zk` takes. */
  readonly connectString: string;
  readonly dir: string;
  /** The server whose `srvr` says leader now, or null (election under way, or no quorum). */
  leader(): Promise<EnsembleServer | null>;
  /** Resolves when every running server answers and one leads with all other running ones following. */
  waitQuorum(timeoutMs?: number): Promise<void>;
  /**
   * Only with `quorumLinks: 'proxied'`: cut every quorum and election link between server `id` and
   * the others, both ways ('drop', the default: a silent partition; 'close': resets). Its client
   * port stays reachable: it answers clients until it notices it lost its quorum.
   * Caveat: an election connection that a lower-id server opens is answered by the higher-id server
   * dialing the address the lower one advertises, i.e. its real election port, not a proxy; such a
   * connection, if open, survives the cut. The quorum links are all proxied, so the server cannot
   * follow or lead the others either way.
   */
  isolate(id: number, mode?: CutMode): void;
  /** Undo isolate(id): its links to servers that are not isolated themselves work again. */
  reconnect(id: number): void;
  /** Stop every server (SIGTERM, then SIGKILL after the grace period) and remove the dir if it is a temp dir we made. */
  stop(): Promise<void>;
}

interface Ports {
  client: number;
  peer: number;
  election: number;
}

/** The `Mode:` line of a `srvr` reply, or 'down' (not serving / no answer). */
export function parseZooKeeperMode(srvr: string): ZooKeeperMode {
  const m = /^Mode:\s*(\w+)/m.exec(srvr);
  const mode = m?.[1];
  return mode === 'leader' || mode === 'follower' || mode === 'observer' || mode === 'standalone' ? mode : 'down';
}

/**
 * Start a `size`-server ZooKeeper ensemble on 127.0.0.1 (free ports) and wait until every server
 * answers `ruok` and `srvr` shows one leader and size-1 followers.
 */
export async function startZooKeeperEnsemble(opts: ZooKeeperEnsembleOptions = {}): Promise<ZooKeeperEnsembleHandle> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const java = findExecutable(opts.javaPath ?? 'java');
  if (!java) throw new Error(`Java runtime not found (java is not on PATH): ${SETUP_HINT}`);
  if (!existsSync(ZOOKEEPER_JAR)) throw new Error(`ZooKeeper not installed (${ZOOKEEPER_JAR} is missing): ${SETUP_HINT}`);

  const ownsDir = opts.dir === undefined;
  const dir = opts.dir !== undefined ? resolve(opts.dir) : await makeTempDir('zk-ensemble');
  try {
    await mkdir(dir, { recursive: true });
    // Free ports are picked, then bound by the JVMs later: another process may take one meanwhile.
    // Then a server fails to bind, and the whole ensemble is tried again on new ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await launchEnsemble(java, size, dir, ownsDir, attempt > 1, opts);
      } catch (err) {
        if (attempt >= 3 || !isPortInUseError(err)) throw err;
        opts.log?.warn({ attempt, err }, 'zookeeper ensemble: a port was taken; retrying on new ports');
      }
    }
  } catch (err) {
    if (ownsDir) await removeTempDir(dir).catch(() => undefined);
    throw err;
  }
}

async function launchEnsemble(
  java: string,
  size: number,
  dir: string,
  ownsDir: boolean,
  retry: boolean,
  opts: ZooKeeperEnsembleOptions,
): Promise<ZooKeeperEnsembleHandle> {
  const ports: Ports[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort(), election: await freePort() });
  // links[i][j]: how server i+1 reaches server j+1 (null when direct, or i = j).
  const links: (QuorumLink | null)[][] = ports.map(() => ports.map(() => null));
  try {
    if (opts.quorumLinks === 'proxied') {
      for (const [i, row] of links.entries())
        for (let j = 0; j < size; j++) if (j !== i) row[j] = await startQuorumLink(ports[j]!, opts.log);
    }
    return await launchServers(java, size, dir, ownsDir, retry, opts, ports, links);
  } catch (err) {
    await stopLinks(links);
    throw err;
  }
}

/** Two proxies from one server to another: to its quorum (peer) port and to its election port. */
interface QuorumLink {
  peer: TcpProxyHandle;
  election: TcpProxyHandle;
}

// Proxy ports come from freePort() too, so that none is one of the servers' ports not yet bound.
async function startQuorumLink(to: Ports, log: ClusterLogger | undefined): Promise<QuorumLink> {
  const peer = await startTcpProxy({ target: { host: '127.0.0.1', port: to.peer }, listenPort: await freePort(), log });
  try {
    return { peer, election: await startTcpProxy({ target: { host: '127.0.0.1', port: to.election }, listenPort: await freePort(), log }) };
  } catch (err) {
    await peer.stop();
    throw err;
  }
}

async function stopLinks(links: (QuorumLink | null)[][]): Promise<void> {
  await Promise.allSettled(links.flat().flatMap((l) => (l ? [l.peer.stop(), l.election.stop()] : [])));
}

async function launchServers(
  java: string,
  size: number,
  dir: string,
  ownsDir: boolean,
  retry: boolean,
  opts: ZooKeeperEnsembleOptions,
  ports: Ports[],
  links: (QuorumLink | null)[][],
): Promise<ZooKeeperEnsembleHandle> {
  const tickTimeMs = opts.tickTimeMs ?? 200;
  // A server binds the ports of its own line, so each gets its own member list: its own real
  // ports, and for every other server the proxies it reaches that server through (if any).
  const membersOf = (i: number): string[] =>
    ports.map((p, j) => {
      const link = links[i]![j];
      return `server.${j + 1}=127.0.0.1:${link ? link.peer.port : p.peer}:${link ? link.election.port : p.election}`;
    });
  const binding = existsSync(SLF4J_SIMPLE_JAR) ? SLF4J_SIMPLE_JAR : SLF4J_NOP_JAR;

  // Write every server's config first: all must exist before any JVM looks for its peers.
  const layouts = await Promise.all(
    ports.map(async (p, i) => {
      const id = i + 1;
      const serverDir = join(dir, `zk${id}`);
      const dataDir = join(serverDir, 'data');
      // A failed attempt may have left epoch files behind; the new attempt starts from nothing.
      if (retry) await rm(serverDir, { recursive: true, force: true });
      await mkdir(dataDir, { recursive: true });
      await writeFile(join(dataDir, 'myid'), `${id}\n`);
      const cfg: Record<string, string | number> = {
        tickTime: tickTimeMs,
        initLimit: opts.initLimitTicks ?? 25,
        syncLimit: opts.syncLimitTicks ?? 10,
        dataDir,
        clientPort: p.client,
        clientPortAddress: '127.0.0.1',
        minSessionTimeout: tickTimeMs * 2,
        maxSessionTimeout: opts.maxSessionTimeoutMs ?? 60_000,
        maxClientCnxns: 0,
        'admin.enableServer': 'false',
        '4lw.commands.whitelist': '*',
        // A quorum member must never fall back to standalone mode.
        standaloneEnabled: 'false',
        'autopurge.purgeInterval': 1,
      };
      const configFile = join(serverDir, 'zoo.cfg');
      const text = Object.entries(cfg).map(([k, v]) => `${k}=${String(v)}`).concat(membersOf(i)).join('\n') + '\n';
      await writeFile(configFile, text);
      return { id, serverDir, dataDir, configFile, logFile: join(serverDir, 'zookeeper.log') };
    }),
  );

  const spawnServer = (i: number): Promise<ManagedProcess> => {
    const l = layouts[i]!;
    return spawnManaged({
      name: `zookeeper-${l.id}:${ports[i]!.client}`,
      command: java,
      args: [
        ...JVM_ARGS,
        `-Dorg.slf4j.simpleLogger.defaultLogLevel=${opts.serverLogLevel ?? 'info'}`,
        '-Dorg.slf4j.simpleLogger.showDateTime=true',
        '-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS',
        '-Dzookeeper.admin.enableServer=false',
        // Give up on an unreachable peer after 1 s instead of 5 s: a faster election after a crash.
        '-Dzookeeper.cnxTimeout=1000',
        '-cp',
        `${ZOOKEEPER_JAR}:${binding}`,
        'org.apache.zookeeper.server.quorum.QuorumPeerMain',
        l.configFile,
      ],
      cwd: l.serverDir,
      logFile: l.logFile,
      log: opts.log,
      stopGraceMs: opts.stopGraceMs ?? 5000,
    });
  };

  // Answers ruok *as our server*: its `conf` names our data dir (another server may hold the port).
  const answers = async (i: number): Promise<boolean> => {
    if (!(await zkFourLetterWord(ports[i]!.client, 'ruok', '127.0.0.1', 1000)).startsWith('imok')) return false;
    return (await zkFourLetterWord(ports[i]!.client, 'conf', '127.0.0.1', 1000)).includes(`dataDir=${layouts[i]!.dataDir}`);
  };

  const procs: (ManagedProcess | null)[] = ports.map(() => null);
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;

  const startOne = async (i: number): Promise<void> => {
    const proc = await spawnServer(i);
    procs[i] = proc;
    await waitReady({ proc, what: `ZooKeeper server ${i + 1} on 127.0.0.1:${ports[i]!.client}`, timeoutMs: startTimeoutMs, intervalMs: 100, probe: () => answers(i) });
  };

  let removed = false;
  const removeDir = async (): Promise<void> => {
    if (ownsDir && !removed) {
      removed = true;
      await removeTempDir(dir);
    }
  };

  const servers: EnsembleServer[] = layouts.map((l, i) => {
    const p = ports[i]!;
    const current = (): ManagedProcess => {
      const proc = procs[i];
      if (!proc) throw new Error(`ZooKeeper server ${l.id} was never started`);
      return proc;
    };
    const server: EnsembleServer = {
      id: l.id,
      get pid() {
        return current().pid;
      },
      clientPort: p.client,
      peerPort: p.peer,
      electionPort: p.election,
      address: `127.0.0.1:${p.client}`,
      dir: l.serverDir,
      logFile: l.logFile,
      isRunning: () => procs[i]?.isRunning() ?? false,
      kill: () => current().kill(),
      stop: () => current().stop(),
      async restart() {
        const old = procs[i];
        if (old) {
          await old.kill();
          await old.stop();
        }
        await startOne(i);
        opts.log?.info({ id: l.id, pid: server.pid, port: p.client }, 'zookeeper server restarted');
      },
      fourLetterWord: (command) => zkFourLetterWord(p.client, command),
      async mode() {
        try {
          return parseZooKeeperMode(await zkFourLetterWord(p.client, 'srvr', '127.0.0.1', 1000));
        } catch {
          return 'down';
        }
      },
    };
    return server;
  });

  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(procs.map((proc) => proc?.stop()));
    await stopLinks(links);
  };

  const isolated = new Set<number>();
  /** Both directions of both port kinds between servers a and b (1-based ids). */
  const linksBetween = (a: number, b: number): TcpProxyHandle[] =>
    [links[a - 1]![b - 1], links[b - 1]![a - 1]].flatMap((l) => (l ? [l.peer, l.election] : []));
  const checkProxied = (id: number): void => {
    if (opts.quorumLinks !== 'proxied') throw new Error('isolate/reconnect need quorumLinks: proxied');
    if (!servers.some((s) => s.id === id)) throw new RangeError(`no ZooKeeper server ${id} in this ensemble`);
  };

  const handle: ZooKeeperEnsembleHandle = {
    servers,
    connectString: servers.map((s) => s.address).join(','),
    dir,
    async leader() {
      for (const s of servers) if (s.isRunning() && (await s.mode()) === 'leader') return s;
      return null;
    },
    async waitQuorum(timeoutMs = startTimeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const running = servers.filter((s) => s.isRunning());
        const modes = await Promise.all(running.map((s) => s.mode()));
        last = running.map((s, k) => `${s.id}:${modes[k]}`).join(' ');
        const leaders = modes.filter((m) => m === 'leader').length;
        const followers = modes.filter((m) => m === 'follower').length;
        if (leaders === 1 && followers === running.length - 1 && running.length > size / 2) return;
        if (Date.now() >= deadline) throw new Error(`ZooKeeper ensemble has no settled quorum after ${timeoutMs} ms (modes: ${last})`);
        await sleep(100);
      }
    },
    isolate(id, mode = 'drop') {
      checkProxied(id);
      isolated.add(id);
      for (const s of servers) if (s.id !== id) for (const proxy of linksBetween(id, s.id)) proxy.cut(mode);
      opts.log?.info({ id, mode }, 'zookeeper server isolated from the ensemble');
    },
    reconnect(id) {
      checkProxied(id);
      isolated.delete(id);
      for (const s of servers) if (s.id !== id && !isolated.has(s.id)) for (const proxy of linksBetween(id, s.id)) proxy.restore();
      opts.log?.info({ id }, 'zookeeper server reconnected to the ensemble');
    },
    async stop() {
      await stopAll();
      await removeDir();
    },
  };

  try {
    // All at once: each server waits for a quorum of the others before it serves.
    const started = await Promise.allSettled(ports.map((_, i) => startOne(i)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    await handle.waitQuorum(startTimeoutMs);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    // A bind failure of the quorum ports shows only in a server's log: fold the logs into the error.
    const logs = await Promise.all(layouts.map(async (l) => `--- server ${l.id} (${l.logFile}):\n${await tailFile(l.logFile, 1500)}`));
    await stopAll();
    throw new Error(`${detail}\n${logs.join('\n')}`, { cause: err });
  }

  // Last-resort cleanup of the temp dir if the host process exits without stop().
  if (ownsDir) process.once('exit', () => {
    if (!removed) {
      removed = true;
      try {
        removeTempDirSync(dir);
      } catch {
        /* best effort */
      }
    }
  });

  opts.log?.info({ connectString: handle.connectString, pids: servers.map((s) => s.pid), dir }, 'zookeeper ensemble started');
  return handle;
}
