// What a scenario is and what it gets to work with. Scenarios are registered by name in
// scenarios/index.ts; main.ts runs one (or `all`) and writes the report.
import type { BenchCluster, BenchClusterOptions } from './bench-cluster.ts';
import type { FaultInjection } from '../cluster/local-cluster.ts';
import type { FsyncPolicy } from '../storage/lmdb-disk.ts';
import type { Peers } from './peers/index.ts';
import type { Progress } from './progress.ts';
import type { Facts } from './targets.ts';
import type { SectionBuilder } from './report.ts';

export interface Timing {
  warmupMs: number;
  durationMs: number;
}

export interface ScenarioContext {
  quick: boolean;
  /** Warm-up and window of one closed-loop run (scenarios may scale them). */
  timing: Timing;
  /** Interleaved rounds a measurement set is split into (see measureSet). */
  rounds: number;
  /**
   * Before each measurement set, wait up to this long for the host to be quiet (other processes
   * below `quietPct` of all cores); 0 = do not wait.
   */
  waitQuietMs: number;
  quietPct: number;
  /** NATS connections the load is spread over. */
  connections: number;
  progress: Progress;
  section: SectionBuilder;
  /**
   * A running cluster with `nodes` nodes. Shared between scenarios of one run when `fresh` is
   * not set (the previous shared cluster is stopped if its size differs); a fresh one is the
   * scenario's own and stopped when it ends.
   */
  cluster(opts: ClusterRequest): Promise<BenchCluster>;
  /** The peers of this run (etcd, ZooKeeper KV, JetStream KV, LevelDB), started on first use. */
  peers(): Promise<Peers>;
  /** The peers if they are running, else null (does not start them). */
  startedPeers(): Peers | null;
  /** Named results the targets table is built from (targets.ts). */
  facts: Facts;
  /** A line on stderr (set-up steps, warnings); tables go to stdout. */
  log(line: string): void;
}

export interface ClusterRequest {
  nodes: number;
  fresh?: boolean;
  /** Fresh clusters only: node options (defaults: session 2000 ms, lease 1000 ms). */
  sessionTimeoutMs?: number;
  leaseMs?: number;
  /** Fresh clusters only: node log level (default warn; 'info' keeps election and join lines). */
  logLevel?: string;
  /** Fresh clusters only: echo responders (default max(nodes, 4)). */
  echoPeers?: number;
  /**
   * Fresh clusters only: LocalCluster's fault injection as such ('socket': what `zistore up`
   * runs; 'none': nodes connected straight to the servers; 'proxy': through the TCP proxies).
   * Default: the bench's own wiring (see bench-cluster.ts and --via-proxy).
   */
  faults?: FaultInjection;
  /** Fresh clusters only: a Prometheus endpoint per node, as `zistore up` gives them. */
  metrics?: boolean;
  /** Fresh clusters only: nodes keep their copy on disk (`--data-dir`) with this `--fsync` policy; memory only when omitted. */
  durable?: FsyncPolicy;
  /** Fresh clusters only: NATS access control (bench-cluster.ts; default 'none', a bare nats-server). */
  access?: BenchClusterOptions['access'];
}

export interface Scenario {
  name: string;
  title: string;
  /** One paragraph for the report: what is measured and why. */
  description: string;
  /** Rough wall time, for `--list`. */
  estimate: { quick: string; full: string };
  /** Compares against the peers (main.ts stops them after the last scenario that does). */
  usesPeers?: boolean;
  /** Uses only fresh clusters of its own (main.ts stops the shared cluster before it when no later scenario needs it). */
  ownCluster?: boolean;
  run(ctx: ScenarioContext): Promise<void>;
}
