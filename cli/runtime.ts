// The real-world implementations of the core's ports, and a one-call way to run a node on
// NATS and ZooKeeper. Used by the `zistore node` command, the tests and the benchmarks.
import { pino, type Logger } from 'pino';
import type { Clock, Log, NodeObserver } from '../actors/ports.ts';
import { defaultNodeConfig, ZiNode, type NodeConfig } from '../actors/node.ts';
import { createNatsBus, type NatsBus } from '../bus/nats-bus.ts';
import { createZkCoordinator } from '../coordination/zk-coordinator.ts';
import { InspectorStream } from '../observe/inspector.ts';
import { NodeMetrics } from '../observe/metrics.ts';
import { startMetricsServer, type MetricsServer } from '../observe/metrics-server.ts';
import { combineObservers, natsPublisher } from '../observe/observers.ts';
import { inspectSubjects } from '../observe/subjects.ts';
import { defaultLeaseMs, leaseProblem } from './timings.ts';
import { LmdbDisk, type FsyncPolicy } from '../storage/lmdb-disk.ts';

export { DEFAULT_SESSION_TIMEOUT_MS } from './timings.ts';

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export function createLogger(options: { level?: string; destination?: string | number } = {}): Logger {
  const level = options.level ?? process.env.ZISTORE_LOG_LEVEL ?? 'info';
  return pino({ level, base: { pid: process.pid } }, pino.destination(options.destination ?? 1));
}

export interface RunNodeOptions extends Partial<Omit<NodeConfig, 'nodeId' | 'cluster'>> {
  nodeId: string;
  cluster: string;
  zk: string;
  nats: string | string[];
  sessionTimeoutMs: number;
  log: Log;
  natsOptions?: Record<string, unknown>;
  /** ZooKeeper digest credentials; the cluster's znodes get an ACL for them alone. */
  zkAuth?: { user: string; password: string };
  /** Hooks for metrics and inspection (see NodeObserver); none by default. */
  observer?: NodeObserver;
  /** Gives up waiting for NATS at start-up (the start then rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Keep the copy in this data dir (none: memory only). */
  storage?: { dir: string; fsync: FsyncPolicy; syncIntervalMs?: number; reset?: boolean };
}

/** Connects to NATS and ZooKeeper and starts serving. */
export async function runNode(options: RunNodeOptions): Promise<ZiNode> {
  return startOnPorts(options, () => options.observer);
}

async function startOnPorts(options: RunNodeOptions, observe: (bus: NatsBus) => NodeObserver | undefined): Promise<ZiNode> {
  const { nodeId, cluster, log } = options;
  const config: NodeConfig = { ...defaultNodeConfig, nodeId, cluster };
  for (const name of Object.keys(defaultNodeConfig) as (keyof typeof defaultNodeConfig)[]) {
    const value = options[name];
    if (value !== undefined) config[name] = value;
  }
  if (options.watchHistory !== undefined) config.watchHistory = options.watchHistory;
  // No lease given: it follows the session timeout (docs/safety.md).
  if (options.leaseMs === undefined) config.leaseMs = defaultLeaseMs(options.sessionTimeoutMs);
  const tooLong = leaseProblem(config.leaseMs, options.sessionTimeoutMs);
  if (tooLong !== null) throw new Error(tooLong);
  // The data dir first: one that cannot be used stops the start before anything is connected.
  let disk: LmdbDisk | undefined;
  if (options.storage !== undefined) {
    // Opening walks every entry (checksums) before anything is read: most of a restart's time with a large copy.
    const started = performance.now();
    disk = LmdbDisk.open({ ...options.storage, cluster, nodeId });
    log.info({ dir: options.storage.dir, ms: Math.round(performance.now() - started) }, 'data dir opened and checked');
  }
  // An unreachable NATS is waited for (with backoff, logged), as ZooKeeper is; a refusal that
  // retrying cannot cure (credentials, max_payload) still fails the start.
  const bus = await createNatsBus({ servers: options.nats, cluster, nodeId, log, connectOptions: options.natsOptions, retryConnect: true, signal: options.signal }).catch((err: unknown) => {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot connect to NATS at ${String(options.nats)}: ${why}`, { cause: err });
  });
  const coordinator = createZkCoordinator({
    connectString: options.zk,
    cluster,
    nodeId,
    sessionTimeoutMs: options.sessionTimeoutMs,
    opTimeoutMs: config.opTimeoutMs,
    auth: options.zkAuth,
    log,
  });
  return ZiNode.start(config, { bus, coordinator, clock: realClock, log, observer: observe(bus), disk });
}

export interface ObservedNodeOptions extends RunNodeOptions {
  /** Serve Prometheus metrics on GET /metrics at this port (0: a free one); no server when omitted. */
  metricsPort?: number;
  /** Interface for the metrics server; every interface when omitted. */
  metricsHost?: string;
  /** Stream XState inspection events, entry changes and message flow on `zistore.<cluster>.inspect.<node>`. */
  inspect?: boolean;
}

export interface ObservedNode {
  node: ZiNode;
  metrics: MetricsServer | null;
  inspector: InspectorStream | null;
  /** Stops the node (gracefully), then the inspector and the metrics server. */
  stop(): Promise<void>;
}

/** runNode plus what `--metrics-port` and `--inspect` ask for; `stop()` releases all of it. */
export async function runObservedNode(options: ObservedNodeOptions): Promise<ObservedNode> {
  const { nodeId, cluster, log } = options;
  const metrics = options.metricsPort !== undefined ? new NodeMetrics({ nodeId, cluster, processMetrics: true }) : null;
  // The port is claimed before connecting anywhere: a taken port fails fast and changes nothing.
  const server = metrics ? await startMetricsServer({ registry: metrics.registry, port: options.metricsPort!, host: options.metricsHost, log }) : null;
  // Publishes on the node's own NATS connection, once the bus exists: what the view shows is
  // what reaches the bus from this node.
  let publish: ((data: Uint8Array) => void) | null = null;
  const inspector = options.inspect
    ? new InspectorStream({
        nodeId,
        publish: (data) => {
          if (publish === null) throw new Error('not connected yet');
          publish(data);
        },
      })
    : null;
  let node: ZiNode;
  try {
    node = await startOnPorts(options, (bus) => {
      publish = natsPublisher(bus.nc, inspectSubjects.node(cluster, nodeId));
      return combineObservers(options.observer, metrics?.observer, inspector?.observer);
    });
  } catch (err) {
    await server?.close();
    throw err;
  }
  const status = () => node.status();
  metrics?.attach(status, inspector ?? undefined);
  if (inspector !== null) {
    inspector.attach(status);
    inspector.start();
    log.info({ subject: inspectSubjects.node(cluster, nodeId) }, 'inspector streaming');
  }
  if (server !== null) log.info({ url: server.url }, 'metrics serving');
  return {
    node,
    metrics: server,
    inspector,
    stop: async () => {
      await node.stop();
      inspector?.stop();
      await server?.close();
    },
  };
}
