// `zistore node`: one node in the foreground, logging JSON to stdout. SIGTERM/SIGINT stop it
// gracefully (a leader hands over: its session closes so the next election starts at once).
import { CLUSTER_NAME_PATTERN, NODE_ID_PATTERN } from '../bus/subjects.ts';
import { intFlag, UsageError } from './args.ts';
import { parseMetricsAddress } from '../observe/metrics-server.ts';
import { createLogger, DEFAULT_SESSION_TIMEOUT_MS, runObservedNode } from './runtime.ts';

export async function runNodeCommand(values: Record<string, string | undefined>, flags: { inspect?: boolean } = {}): Promise<number> {
  const id = values.id;
  const cluster = values.cluster;
  if (!id || !NODE_ID_PATTERN.test(id)) throw new UsageError('--id is required: letters, digits, _ and - only');
  if (!cluster || !CLUSTER_NAME_PATTERN.test(cluster)) throw new UsageError('--cluster is required: letters, digits, _ and - only');
  if (!values.zk) throw new UsageError('--zk HOST:PORT[,HOST:PORT...] is required');
  if (!values.nats) throw new UsageError('--nats URL is required');
  const sessionTimeoutMs = intFlag(values, 'session-timeout', 500, 600_000) ?? DEFAULT_SESSION_TIMEOUT_MS;
  const metricsAddress = values['metrics-port'] === undefined ? undefined : parseMetricsAddress(values['metrics-port']);
  if (metricsAddress === null) throw new UsageError(`--metrics-port must be PORT or HOST:PORT (port 1 to 65535), got '${values['metrics-port']}'`);
  const log = createLogger().child({ node: id, cluster });
  const running = await runObservedNode({
    nodeId: id,
    cluster,
    zk: values.zk,
    nats: values.nats.split(','),
    sessionTimeoutMs,
    leaseMs: intFlag(values, 'lease', 100, 600_000),
    opTimeoutMs: intFlag(values, 'op-timeout', 100, 600_000),
    log,
    metricsPort: metricsAddress?.port,
    metricsHost: metricsAddress?.host,
    inspect: flags.inspect === true,
  });
  const node = running.node;
  log.info({ sessionTimeoutMs, leaseMs: node.config.leaseMs, opTimeoutMs: node.config.opTimeoutMs }, 'node started');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      running.stop().then(resolve, (err) => {
        log.error({ err }, 'stop failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info({}, 'stopped');
  return 0;
}
