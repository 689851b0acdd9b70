// A whole ZiStore cluster on this machine: one ZooKeeper, one nats-server, and node processes.
// Faults are real: `rmiDown` closes the node's NATS connection and refuses new ones (or, in
// 'drop' mode, black-holes it), `zkDown` does the same to its ZooKeeper link, `kill` is SIGKILL.
// How links are cut (`faults`):
//   - 'proxy' (default): each node reaches ZooKeeper and NATS through its own TCP proxy in this
//     process, which cuts or black-holes the connections (every message crosses the proxy);
//   - 'socket': nodes connect straight to the servers; the node process itself destroys or
//     black-holes its sockets when told over an IPC channel (cluster/link-faults.ts): no extra
//     hop while no fault is in force. What `zistore up` uses;
//   - 'none': nodes connect straight to the servers and links cannot be cut (a baseline).
// Used by `zistore up`, the tests, the bench and the nemesis.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect, type NatsConnection } from 'nats';
import { spawnManaged, type ManagedProcess } from './child-process.ts';
import type { ClusterLogger } from './logger.ts';
import { startNatsServer, type NatsServerHandle } from './nats-server.ts';
import { clientInboxPrefix, loadSecrets, natsAuthorization, nodeIdentity, saveSecrets, type Access, type ClusterSecrets } from './security.ts';
import { freePort } from './ports.ts';
import { isLinkFaultAck, LINK_FAULTS_ENV, type LinkFaultMessage, type LinkFaultState, type LinkName } from './link-faults.ts';
import { startTcpProxy, type CutMode, type TcpProxyHandle } from './tcp-proxy.ts';
import { makeTempDir, removeTempDir } from './temp-dir.ts';
import { startZooKeeper, type ZooKeeperHandle } from './zookeeper-server.ts';
import type { FsyncPolicy } from '../storage/lmdb-disk.ts';

const PROJECT_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
// Nodes run the compiled CLI: the launcher from the sources (tests), main.js beside us in dist/.
const ZISTORE_BIN = join(PROJECT_ROOT, 'cli', import.meta.url.endsWith('.ts') ? 'zistore.js' : 'main.js');
/**
 * V8 flags for node processes, as cli/zistore.js's first line sets them: semi-spaces of 4 MiB
 * rather than 16. A node's garbage dies young, and after a load of 1,000,000 keys each node kept
 * 15–30 MB less (bench/results/restart-*); docs/deployment.md.
 */
const NODE_V8_FLAGS = ['--max-semi-space-size=4'];
/** How long a socket-mode fault waits for the node to confirm it (a paused node cannot). */
const LINK_FAULT_ACK_MS = 5000;

/** How node links are cut: see the top of this file. */
export type FaultInjection = 'proxy' | 'socket' | 'none';

export interface LocalClusterOptions {
  nodes?: number;
  cluster?: string;
  natsPort?: number;
  zkPort?: number;
  /** Data and logs go here; a temp dir (removed on stop) when omitted. */
  dataDir?: string;
  sessionTimeoutMs?: number;
  leaseMs?: number;
  opTimeoutMs?: number;
  /** The nodes' floor on copies (--min-replicas); default 2, or 1 for a one-node cluster. */
  minReplicas?: number;
  /** Extra flags for every `zistore node`. */
  nodeArgs?: string[];
  /**
   * Keep every node's copy on disk (`--data-dir <dataDir>/<id>.data`, with this `--fsync`
   * policy), kept across restarts of the node; in memory when omitted.
   */
  durable?: FsyncPolicy;
  /**
   * Give every node a Prometheus endpoint on a free port of 127.0.0.1 (`--metrics-port`), kept
   * across restarts and written to `<dataDir>/<id>.metrics-port`.
   */
  metrics?: boolean;
  /** Start every node with `--inspect` (the inspector stream the viewer shows). */
  inspect?: boolean;
  /**
   * Who may do what on NATS (cluster/security.ts). 'open' (default): each node has its own
   * identity and speaks only as itself; a connection without credentials is a client. 'secure':
   * every connection needs credentials, and the cluster's znodes get a digest ACL. 'none': a
   * nats-server without authorization, anyone may publish anything (as a bare nats-server is).
   */
  access?: Access | 'none';
  /** How links are cut (see the top of this file); default 'proxy'. */
  faults?: FaultInjection;
  logLevel?: string;
  log?: ClusterLogger;
}

export interface NodeHandle {
  readonly id: string;
  process: ManagedProcess | null;
  /** The node's proxies ('proxy' faults only). */
  readonly natsProxy: TcpProxyHandle | null;
  readonly zkProxy: TcpProxyHandle | null;
  /** Faults in force on the node's links ('socket' faults; kept across restarts). */
  readonly links: LinkFaultState;
  readonly logFile: string;
  /** Port of the node's /metrics endpoint on 127.0.0.1, when the cluster has metrics. */
  readonly metricsPort: number | null;
}

export interface NodeView {
  id: string;
  pid: number | null;
  running: boolean;
  rmi: 'up' | 'down';
  zk: 'up' | 'down';
  logFile: string;
  metricsPort: number | null;
}

export class LocalCluster {
  readonly nodes = new Map<string, NodeHandle>();
  private nextIndex = 1;
  private client: NatsConnection | null = null;
  private linkSeq = 0;
  private readonly linkAcks = new Map<number, () => void>();
  readonly faults: FaultInjection;

  private constructor(
    readonly name: string,
    readonly dataDir: string,
    private readonly ownsDataDir: boolean,
    private zk: ZooKeeperHandle,
    readonly nats: NatsServerHandle,
    private readonly options: LocalClusterOptions,
    /** Identities and their passwords; null with access 'none'. */
    readonly secrets: ClusterSecrets | null = null,
  ) {
    this.faults = options.faults ?? 'proxy';
  }


  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const ownsDataDir = options.dataDir === undefined;
    const dataDir = options.dataDir ? resolve(options.dataDir) : await makeTempDir('cluster');
    await mkdir(dataDir, { recursive: true });
    const started: { stop(): Promise<void> }[] = [];
    try {
      const zookeeper = await startZooKeeper({ port: options.zkPort, dataDir: join(dataDir, 'zookeeper'), log: options.log });
      started.push(zookeeper);
      const name = options.cluster ?? 'default';
      const access = options.access ?? 'open';
      const secrets = access === 'none' ? null : await loadSecrets(dataDir);
      const natsDir = join(dataDir, 'nats');
      if (secrets !== null) {
        // Every node's identity before the server starts: no reload for the first nodes.
        for (let i = 1; i <= (options.nodes ?? 3); i++) nodeIdentity(secrets, `n${i}`);
        await saveSecrets(dataDir, secrets);
        await writeAuthorization(natsDir, name, secrets, access as Access);
      }
      const nats = await startNatsServer({
        port: options.natsPort,
        dir: natsDir,
        log: options.log,
        extraConfig: secrets ? `include ${JSON.stringify(AUTH_FILE)}` : undefined,
      });
      started.push(nats);
      const cluster = new LocalCluster(name, dataDir, ownsDataDir, zookeeper, nats, options, secrets);
      for (let i = 0; i < (options.nodes ?? 3); i++) await cluster.addNode();
      return cluster;
    } catch (err) {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
      if (ownsDataDir) await removeTempDir(dataDir);
      throw err;
    }
  }

  get natsUrl(): string {
    return this.nats.url;
  }

  get zookeeper(): ZooKeeperHandle {
    return this.zk;
  }

  /**
   * kill -9 of ZooKeeper, then a start on the same port and data dir (what it persisted survives),
   * or with `loseData` on an emptied one (a ZooKeeper whose data is gone).
   */
  async restartZooKeeper(options: { downMs?: number; loseData?: boolean } = {}): Promise<void> {
    await this.zk.kill();
    if (options.loseData) await rm(join(this.zk.dataDir, 'version-2'), { recursive: true, force: true });
    if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
    this.zk = await this.zk.restart();
  }

  get zkConnectString(): string {
    return this.zookeeper.connectString;
  }

  /** Adds a node (`new-client`): its proxies (in 'proxy' mode), then its process. Returns its id. */
  async addNode(id = `n${this.nextIndex++}`): Promise<string> {
    if (this.nodes.has(id)) throw new Error(`node ${id} already exists`);
    const proxied = this.faults === 'proxy';
    const natsProxy = proxied ? await startTcpProxy({ target: { host: '127.0.0.1', port: this.nats.port }, log: this.options.log }) : null;
    const zkProxy = proxied ? await startTcpProxy({ target: { host: '127.0.0.1', port: this.zookeeper.port }, log: this.options.log }) : null;
    const metricsPort = this.options.metrics ? await freePort() : null;
    if (metricsPort !== null) {
      await writeFile(join(this.dataDir, `${id}.metrics-port`), `${metricsPort}\n`);
      this.options.log?.info({ node: id, url: `http://127.0.0.1:${metricsPort}/metrics` }, 'node metrics');
    }
    if (this.secrets !== null && this.secrets.nodes[id] === undefined) await this.addIdentity(id);
    const handle: NodeHandle = { id, process: null, natsProxy, zkProxy, links: { nats: null, zk: null }, logFile: join(this.dataDir, `${id}.log`), metricsPort };
    this.nodes.set(id, handle);
    await this.startProcess(handle);
    return id;
  }

  /** A NATS identity for a node added after the start: nats-server reloads its users (SIGHUP). */
  private async addIdentity(id: string): Promise<void> {
    const secrets = this.secrets!;
    const { user, password } = nodeIdentity(secrets, id);
    await saveSecrets(this.dataDir, secrets);
    await writeAuthorization(this.nats.dir, this.name, secrets, this.access as Access);
    process.kill(this.nats.pid, 'SIGHUP');
    // The reload is done once the new identity may connect.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await (await connect({ servers: this.natsUrl, user, pass: password, reconnect: false })).close();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`nats-server did not take the identity of ${id}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private get access(): Access | 'none' {
    return this.options.access ?? 'open';
  }

  private async startProcess(handle: NodeHandle): Promise<void> {
    const o = this.options;
    const args = [
      ...NODE_V8_FLAGS, ZISTORE_BIN, 'node',
      '--id', handle.id,
      '--cluster', this.name,
      '--zk', handle.zkProxy?.address ?? `127.0.0.1:${this.zookeeper.port}`,
      '--nats', `nats://${handle.natsProxy?.address ?? `127.0.0.1:${this.nats.port}`}`,
      ...(o.sessionTimeoutMs ? ['--session-timeout', String(o.sessionTimeoutMs)] : []),
      ...(o.leaseMs ? ['--lease', String(o.leaseMs)] : []),
      ...(o.opTimeoutMs ? ['--op-timeout', String(o.opTimeoutMs)] : []),
      '--min-replicas', String(o.minReplicas ?? ((o.nodes ?? 3) === 1 ? 1 : 2)),
      ...(handle.metricsPort !== null ? ['--metrics-port', `127.0.0.1:${handle.metricsPort}`] : []),
      ...(o.inspect ? ['--inspect'] : []),
      ...(o.durable !== undefined ? ['--data-dir', this.nodeDataDir(handle.id), '--fsync', o.durable] : []),
      ...(o.nodeArgs ?? []),
    ];
    const env: NodeJS.ProcessEnv = { ...process.env, ZISTORE_LOG_LEVEL: o.logLevel ?? process.env.ZISTORE_LOG_LEVEL ?? 'info' };
    // Two malloc arenas rather than glibc's eight per core: after a burst of messages the
    // allocator keeps far less (a leader ~75 MB less after loading 1,000,000 keys); docs/deployment.md.
    env.MALLOC_ARENA_MAX ??= '2';
    // Credentials by environment, not on a command line anyone may read (ps).
    if (this.secrets !== null) {
      const { user, password } = nodeIdentity(this.secrets, handle.id);
      Object.assign(env, { ZISTORE_NATS_USER: user, ZISTORE_NATS_PASS: password });
      if (this.access === 'secure') env.ZISTORE_ZK_AUTH = `${this.secrets.zk.user}:${this.secrets.zk.password}`;
    }
    // Socket faults: the node obeys this process over an IPC channel, starting with the faults in force.
    if (this.faults === 'socket') env[LINK_FAULTS_ENV] = JSON.stringify(handle.links);
    else delete env[LINK_FAULTS_ENV];
    handle.process = await spawnManaged({
      name: `zistore-${handle.id}`,
      command: process.execPath,
      args,
      cwd: PROJECT_ROOT,
      env,
      ...(this.faults === 'socket' ? { ipc: (message: unknown) => this.onNodeMessage(message) } : {}),
      logFile: handle.logFile,
      log: o.log,
      stopGraceMs: (o.opTimeoutMs ?? 4000) + 3000,
    });
  }

  /** Where a durable node keeps its copy. */
  nodeDataDir(id: string): string {
    return join(this.dataDir, `${id}.data`);
  }

  private node(id: string): NodeHandle {
    const handle = this.nodes.get(id);
    if (!handle) throw new Error(`no node named ${id} (nodes: ${[...this.nodes.keys()].join(', ')})`);
    return handle;
  }

  /** kill -9. */
  async kill(id: string): Promise<void> {
    const handle = this.node(id);
    if (!handle.process?.isRunning()) throw new Error(`node ${id} is not running`);
    await handle.process.kill();
  }

  /** SIGTERM: graceful stop (a leader hands over). */
  async stopNode(id: string): Promise<void> {
    const handle = this.node(id);
    await handle.process?.stop();
  }

  /** Start a stopped or killed node again, with the same id. */
  async restart(id: string): Promise<void> {
    const handle = this.node(id);
    if (handle.process?.isRunning()) throw new Error(`node ${id} is running`);
    await this.startProcess(handle);
  }

  async pause(id: string): Promise<void> {
    await this.node(id).process?.pause();
  }

  async resume(id: string): Promise<void> {
    await this.node(id).process?.resume();
  }

  /**
   * Cut the node's NATS link: 'close' closes its connection and refuses new ones, 'drop'
   * black-holes it. With proxies the cut is in force on return; with socket faults the promise
   * resolves once the node confirms it (it never rejects: a node that is not running starts
   * with the fault in force). Throws at once when the cluster has no fault injection.
   */
  rmiDown(id: string, mode: CutMode = 'close'): Promise<void> {
    return this.setLink(id, 'nats', mode);
  }

  rmiUp(id: string): Promise<void> {
    return this.setLink(id, 'nats', null);
  }

  /** As rmiDown, for the node's ZooKeeper link. */
  zkDown(id: string, mode: CutMode = 'close'): Promise<void> {
    return this.setLink(id, 'zk', mode);
  }

  zkUp(id: string): Promise<void> {
    return this.setLink(id, 'zk', null);
  }

  private setLink(id: string, link: LinkName, mode: CutMode | null): Promise<void> {
    const handle = this.node(id);
    if (this.faults === 'none') throw new Error(`cluster ${this.name} was started without fault injection (faults: 'none')`);
    if (this.faults === 'proxy') {
      const proxy = link === 'nats' ? handle.natsProxy! : handle.zkProxy!;
      if (mode === null) proxy.restore();
      else proxy.cut(mode);
      return Promise.resolve();
    }
    handle.links[link] = mode;
    const proc = handle.process;
    if (!proc?.isRunning() || !proc.send) return Promise.resolve();
    const seq = ++this.linkSeq;
    const message: LinkFaultMessage = { zistore: 'link-fault', seq, link, mode };
    return new Promise<void>((resolveAck) => {
      const timer = setTimeout(() => {
        this.linkAcks.delete(seq);
        this.options.log?.warn({ node: id, link, mode, waitedMs: LINK_FAULT_ACK_MS }, 'node did not confirm the link fault (paused?); it applies it when it runs');
        resolveAck();
      }, LINK_FAULT_ACK_MS);
      const done = () => {
        clearTimeout(timer);
        this.linkAcks.delete(seq);
        resolveAck();
      };
      this.linkAcks.set(seq, done);
      // Exited meanwhile: it starts again with `links` in its environment.
      void proc.exited.then(done);
      proc.send!(message).catch((err: unknown) => {
        this.options.log?.warn({ node: id, link, mode, err }, 'could not send the link fault to the node');
        done();
      });
    });
  }

  private onNodeMessage(message: unknown): void {
    if (isLinkFaultAck(message)) this.linkAcks.get(message.seq)?.();
  }

  view(): NodeView[] {
    return [...this.nodes.values()].map((n) => ({
      id: n.id,
      pid: n.process?.pid ?? null,
      running: n.process?.isRunning() ?? false,
      rmi: (n.natsProxy ? n.natsProxy.isCut : n.links.nats !== null) ? 'down' : 'up',
      zk: (n.zkProxy ? n.zkProxy.isCut : n.links.zk !== null) ? 'down' : 'up',
      logFile: n.logFile,
      metricsPort: n.metricsPort,
    }));
  }

  /** The node's Prometheus endpoint, when the cluster was started with `metrics`. */
  metricsUrl(id: string): string | null {
    const port = this.node(id).metricsPort;
    return port === null ? null : `http://127.0.0.1:${port}/metrics`;
  }

  /** A NATS connection with every right (the admin identity), not through any node's proxy: for the launcher and tests. */
  async connectClient(): Promise<NatsConnection> {
    const auth = this.secrets ? { user: this.secrets.admin.user, pass: this.secrets.admin.password } : {};
    return connect({ servers: this.natsUrl, name: `zistore-${this.name}-client`, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...auth });
  }

  /** Connection options of a client identity ('client' or 'reader'): its credentials and its own inbox prefix. */
  clientAuth(who: 'client' | 'reader' = 'client'): { user: string; pass: string; inboxPrefix: string } {
    if (this.secrets === null) throw new Error('a cluster without access control has no client identities');
    const { user, password } = this.secrets[who];
    return { user, pass: password, inboxPrefix: clientInboxPrefix(user) };
  }

  /** Resolves when every running node answers `members` on its own subject as serving. */
  async waitServing(timeoutMs = 30_000, ids?: string[]): Promise<void> {
    this.client ??= await this.connectClient();
    const want = ids ?? [...this.nodes.values()].filter((n) => n.process?.isRunning()).map((n) => n.id);
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(want);
    let last = '';
    while (pending.size > 0) {
      for (const id of [...pending]) {
        try {
          const reply = await this.client.request(`zistore.${this.name}.node.${id}.members`, new Uint8Array(0), { timeout: 1000 });
          const view = JSON.parse(new TextDecoder().decode(reply.data)) as { members: { id: string; state: string }[] };
          const self = view.members.find((m) => m.id === id);
          last = `${id}: ${self?.state ?? 'unknown'}`;
          if (self?.state === 'serving') pending.delete(id);
        } catch (err) {
          last = `${id}: ${(err as Error).message}`;
        }
      }
      if (pending.size === 0) break;
      // A node that exited will not serve: say so now, not at the deadline.
      const exited = [...pending].filter((id) => this.nodes.get(id)?.process?.isRunning() === false);
      if (exited.length > 0 || Date.now() > deadline) {
        // The nodes' own words, since the temp dir (and its logs) goes when the cluster stops.
        const tails = this.logTails([...pending]);
        const why = exited.length > 0 ? `node process exited: ${exited.join(', ')}` : `nodes not serving after ${timeoutMs} ms: ${[...pending].join(', ')} (last: ${last})`;
        throw new Error(`${why}\n${tails}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stop everything this cluster started, by PID, and remove its temp dir. */
  /** The last log lines of these nodes (all by default): the temp dir and its logs go at stop. */
  logTails(ids = [...this.nodes.keys()], lines = 12): string {
    return ids.map((id) => `--- ${id} (last log lines):\n${logTail(this.nodes.get(id)?.logFile, lines)}`).join('\n');
  }

  async stop(): Promise<void> {
    if (this.client) await this.client.close().catch(() => undefined);
    this.client = null;
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        // A paused process cannot handle SIGTERM; stop() sends SIGCONT too.
        await n.process?.stop().catch(() => undefined);
        await n.natsProxy?.stop();
        await n.zkProxy?.stop();
      }),
    );
    await this.nats.stop();
    await this.zookeeper.stop();
    if (this.ownsDataDir) await removeTempDir(this.dataDir);
  }
}

const AUTH_FILE = 'authorization.conf';

/** nats-server's users and permissions, in a file its config includes (rewritten before a reload). */
async function writeAuthorization(natsDir: string, cluster: string, secrets: ClusterSecrets, access: Access): Promise<void> {
  await mkdir(natsDir, { recursive: true });
  await writeFile(join(natsDir, AUTH_FILE), natsAuthorization(cluster, secrets, access) + '\n', { mode: 0o600 });
}

/** The last lines of a log file, for error messages ('' when there is none). */
function logTail(file: string | undefined, lines = 12): string {
  if (file === undefined) return '';
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
