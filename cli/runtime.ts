// The real-world implementations of the core's ports, and a one-call way to run a node on
// NATS and ZooKeeper. Used by the `zistore node` command, the tests and the benchmarks.
import { pino, type Logger } from 'pino';
import type { Clock, Log } from '../actors/ports.ts';
import { defaultNodeConfig, ZiNode, type NodeConfig } from '../actors/node.ts';
import { createNatsBus } from '../bus/nats-bus.ts';
import { createZkCoordinator } from '../coordination/zk-coordinator.ts';

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
}

export const DEFAULT_SESSION_TIMEOUT_MS = 2000;

/** Connects to NATS and ZooKeeper and starts serving. */
export async function runNode(options: RunNodeOptions): Promise<ZiNode> {
  const { nodeId, cluster, log } = options;
  const config: NodeConfig = { ...defaultNodeConfig, nodeId, cluster };
  for (const name of Object.keys(defaultNodeConfig) as (keyof typeof defaultNodeConfig)[]) {
    const value = options[name];
    if (value !== undefined) config[name] = value;
  }
  if (config.leaseMs >= options.sessionTimeoutMs) {
    throw new Error(`lease (${config.leaseMs} ms) must be shorter than the session timeout (${options.sessionTimeoutMs} ms)`);
  }
  const bus = await createNatsBus({ servers: options.nats, cluster, nodeId, log, connectOptions: options.natsOptions }).catch((err: unknown) => {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot connect to NATS at ${String(options.nats)}: ${why}`, { cause: err });
  });
  const coordinator = createZkCoordinator({
    connectString: options.zk,
    cluster,
    nodeId,
    sessionTimeoutMs: options.sessionTimeoutMs,
    opTimeoutMs: config.opTimeoutMs,
    log,
  });
  return ZiNode.start(config, { bus, coordinator, clock: realClock, log });
}
