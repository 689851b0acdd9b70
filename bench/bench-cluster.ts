// A ZiStore cluster for measurements: LocalCluster (ZooKeeper + nats-server + node processes)
// plus the NATS echo peer, a client connection, the leader's id and the processes to watch.
//
// LocalCluster routes each node's NATS and ZooKeeper links through TCP proxies that live in the
// process that started the cluster, i.e. in the bench itself: every peer message would cross the
// bench's event loop twice and its CPU would be billed to the bench. By default the nodes are
// therefore pointed straight at nats-server and ZooKeeper (a second `--nats`/`--zk` flag in
// nodeArgs overrides the proxied one: node's parseArgs keeps the last value). The proxies stay
// idle; kill/restart/stopNode/addNode work as usual. `viaProxy: true` keeps LocalCluster's wiring
// (for fault-injection scenarios, and to measure what the proxy costs). `faults` asks for one of
// LocalCluster's fault injections as such ('socket' is how `zistore up` runs its nodes).
import { connect, type NatsConnection } from 'nats';
import { LocalCluster, type FaultInjection, type LocalClusterOptions } from '../cluster/local-cluster.ts';
import { freePort } from '../cluster/ports.ts';
import { ZiClient, type MembersView } from '../client/index.ts';
import type { FsyncPolicy } from '../storage/lmdb-disk.ts';
import type { WatchedProcess } from './cpu.ts';
import { startEchoPeers, type EchoPeers } from './echo.ts';

export interface BenchClusterOptions {
  nodes: number;
  cluster?: string;
  viaProxy?: boolean;
  /** Separate NATS connections for the load (round-robin over workers). */
  connections?: number;
  /** Echo responder processes (relay floors need one per node); default max(nodes, 4); 0 = none. */
  echoPeers?: number;
  logLevel?: string;
  /** LocalCluster's sessionTimeoutMs / leaseMs (the nodes' defaults, 2000 / 1000 ms, when omitted). */
  sessionTimeoutMs?: number;
  leaseMs?: number;
  /** LocalCluster's fault injection, used as it is (overrides viaProxy): 'proxy', 'socket' or 'none'. */
  faults?: FaultInjection;
  /** Every node serves Prometheus metrics (as under `zistore up`). */
  metrics?: boolean;
  /** Nodes keep their copy on disk with this fsync policy (LocalCluster's `durable`); memory only when omitted. */
  durable?: FsyncPolicy;
  /**
   * LocalCluster's access control; default 'none' (a bare nats-server: the echo peers and the
   * load connections need no identity, as in every result before access control existed).
   * 'secure' load connections log in as the client identity.
   */
  access?: LocalClusterOptions['access'];
}

/** What a load connection logs in as: the client identity when the cluster is secure, else nobody. */
const loadAuth = (local: LocalCluster, options: BenchClusterOptions) => (options.access === 'secure' ? local.clientAuth('client') : {});

export class BenchCluster {
  /** Extra connections of the "writers" (writer 0 uses connections[0]), made on first use. */
  private readonly writerConnections = new Map<number, Promise<NatsConnection>>();
  private readonly writerClients = new Map<string, Promise<ZiClient>>();

  private constructor(
    readonly local: LocalCluster,
    readonly echo: EchoPeers,
    /** Connections used by the load; connections[0] also does control requests. */
    readonly connections: NatsConnection[],
    readonly options: BenchClusterOptions,
  ) {}

  static async start(options: BenchClusterOptions): Promise<BenchCluster> {
    const cluster = options.cluster ?? 'bench';
    let nodeArgs: string[] = [];
    let ports: { natsPort?: number; zkPort?: number } = {};
    // Through the proxies only when asked for: viaProxy, or faults: 'proxy'.
    const proxied = options.faults === 'proxy' || (options.faults === undefined && options.viaProxy === true);
    if (options.faults === undefined && !options.viaProxy) {
      ports = { natsPort: await freePort(), zkPort: await freePort() };
      nodeArgs = ['--nats', `nats://127.0.0.1:${ports.natsPort}`, '--zk', `127.0.0.1:${ports.zkPort}`];
    }
    const local = await LocalCluster.start({
      nodes: options.nodes,
      cluster,
      ...ports,
      nodeArgs,
      ...(options.faults !== undefined ? { faults: options.faults } : {}),
      ...(options.metrics ? { metrics: true } : {}),
      ...(options.durable !== undefined ? { durable: options.durable } : {}),
      access: options.access ?? 'none',
      logLevel: options.logLevel ?? 'warn',
      ...(options.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
      ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
    });
    const connections: NatsConnection[] = [];
    try {
      await local.waitServing(60_000);
      for (let i = 0; i < Math.max(1, options.connections ?? 1); i++) {
        connections.push(await connect({ servers: local.natsUrl, name: `zistore-bench-${i}`, maxReconnectAttempts: -1, ...loadAuth(local, options) }));
      }
      const echo = await startEchoPeers(connections[0]!, local.natsUrl, local.dataDir, options.echoPeers ?? Math.max(options.nodes, 4));
      const bench = new BenchCluster(local, echo, connections, options);
      if (!proxied) await bench.assertDirect();
      return bench;
    } catch (err) {
      for (const nc of connections) await nc.close().catch(() => undefined);
      await local.stop();
      throw err;
    }
  }

  get name(): string {
    return this.local.name;
  }

  /** A typed client on the i-th load connection. */
  client(i = 0): ZiClient {
    return new ZiClient(this.connections[i % this.connections.length]!, { cluster: this.name });
  }

  /**
   * The typed client of writer `writer` (0, 1, …): on load connection `writer` when there is
   * one (--connections), else on a NATS connection of its own. `writesToLeader` as in ClientOptions (default
   * true: the client's own routing).
   */
  writerClient(writer: number, writesToLeader = true): Promise<ZiClient> {
    const key = `${writer}/${writesToLeader}`;
    let c = this.writerClients.get(key);
    if (!c) {
      c = this.writerConnection(writer).then((nc) => new ZiClient(nc, { cluster: this.name, writesToLeader }));
      this.writerClients.set(key, c);
    }
    return c;
  }

  private writerConnection(writer: number): Promise<NatsConnection> {
    if (writer < this.connections.length) return Promise.resolve(this.connections[writer]!);
    let nc = this.writerConnections.get(writer);
    if (!nc) {
      nc = connect({ servers: this.local.natsUrl, name: `zistore-bench-writer-${writer}`, maxReconnectAttempts: -1, ...loadAuth(this.local, this.options) });
      this.writerConnections.set(writer, nc);
    }
    return nc;
  }

  async members(node?: string): Promise<MembersView> {
    return this.client().members(node ? { node } : {});
  }

  /** The current leader's id (asks a node; waits up to 30 s for one). */
  async leader(): Promise<string> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const view = await this.members().catch(() => null);
      if (view?.leader) return view.leader;
      if (Date.now() > deadline) throw new Error('no leader within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Running node ids other than the leader. */
  async followers(): Promise<string[]> {
    const leader = await this.leader();
    return this.local.view().filter((n) => n.running && n.id !== leader).map((n) => n.id);
  }

  async addNode(): Promise<string> {
    const id = await this.local.addNode();
    await this.local.waitServing(60_000, [id]);
    return id;
  }

  /** ZooKeeper, nats-server, the echo responders and every running node. */
  watched(): WatchedProcess[] {
    const out: WatchedProcess[] = [
      { name: 'zookeeper', pid: this.local.zookeeper.pid },
      { name: 'nats-server', pid: this.local.nats.pid },
      ...this.echo.pids.map((pid, i) => ({ name: `echo${i}`, pid })),
    ];
    for (const n of this.local.view()) if (n.running && n.pid !== null) out.push({ name: n.id, pid: n.pid });
    return out;
  }

  /** Check that no node's NATS client connection goes through a proxy (nats-server's view of the peers). */
  private async assertDirect(): Promise<void> {
    const proxied = [...this.local.nodes.values()].filter((n) => (n.natsProxy?.connectionCount ?? 0) > 0 || (n.zkProxy?.connectionCount ?? 0) > 0);
    if (proxied.length > 0) throw new Error(`nodes still connected through the proxies: ${proxied.map((n) => n.id).join(', ')}`);
  }

  async stop(): Promise<void> {
    for (const nc of this.connections) await nc.close().catch(() => undefined);
    for (const p of this.writerConnections.values()) await p.then((nc) => nc.close()).catch(() => undefined);
    await this.echo.stop().catch(() => undefined);
    await this.local.stop();
  }
}
