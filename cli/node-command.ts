// `zistore node`: one node in the foreground, logging JSON to stdout. SIGTERM/SIGINT stop it
// gracefully (a leader hands over: its session closes so the next election starts at once).
// Options come from flags, ZISTORE_* variables or a config file (cli/node-options.ts).
import { UsageError } from './args.ts';
import { startLinkFaultControl } from '../cluster/link-faults.ts';
import { natsConnectOptions, type NodeOptionName, type NodeOptionValues } from './node-options.ts';
import { parseMetricsAddress } from '../observe/metrics-server.ts';
import { createLogger, DEFAULT_SESSION_TIMEOUT_MS, runObservedNode } from './runtime.ts';
import { parseFsync, type FsyncPolicy } from '../storage/fsync-policy.ts';
import { isUnheldCommitFailure } from '../storage/lmdb-disk.ts';

export async function runNodeCommand(values: NodeOptionValues): Promise<number> {
  const id = String(values.id);
  const cluster = String(values.cluster);
  const metricsText = values['metrics-port'] === undefined ? undefined : String(values['metrics-port']);
  const metricsAddress = metricsText === undefined ? undefined : parseMetricsAddress(metricsText);
  if (metricsAddress === null) throw new UsageError(`--metrics-port must be PORT or HOST:PORT (port 1 to 65535), got '${metricsText}'`);
  const zkAuth = values['zk-auth'] === undefined ? undefined : String(values['zk-auth']);
  const separator = zkAuth?.indexOf(':') ?? -1;
  const log = createLogger().child({ node: id, cluster });
  // Started by `zistore up` (IPC channel + ZISTORE_LINK_FAULTS): its rmi-down/zk-down cut this
  // process's own sockets. Otherwise nothing is installed.
  startLinkFaultControl({ nats: String(values.nats).split(','), zk: String(values.zk), log: log.child({ actor: 'link-faults' }) });
  // SIGTERM/SIGINT stop the node, or, while it still waits for NATS at start-up, that wait.
  const starting = new AbortController();
  let stopRequested: ((signal: string) => void) | null = null;
  const onSignal = (signal: string) => {
    if (stopRequested !== null) stopRequested(signal);
    else starting.abort(new Error(`${signal} before the node started`));
  };
  // Node would end the process on any unhandled rejection; one kind is the storage engine's own
  // (isUnheldCommitFailure) after the data dir failed, which the node has already reported and
  // handled (it stops acking). Anything else still ends the process, logged first.
  process.on('unhandledRejection', (reason) => {
    if (isUnheldCommitFailure(reason)) return;
    log.fatal({ err: reason }, 'unhandled rejection');
    process.exit(1);
  });
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  const natsCredentials = ['nats-user', 'nats-token', 'nats-creds', 'nats-nkey'].some((o) => values[o as NodeOptionName] !== undefined);
  if (!natsCredentials) {
    log.warn(
      { docs: 'docs/deployment.md' },
      'no NATS credentials: on a server without authorization any NATS client can send peer messages in the name of this node or of the leader',
    );
  }
  if (zkAuth === undefined) log.warn({ docs: 'docs/deployment.md' }, "no ZooKeeper credentials (--zk-auth): anyone reaching ZooKeeper can change the cluster's znodes");
  let running: Awaited<ReturnType<typeof runObservedNode>>;
  try {
    running = await runObservedNode({
      nodeId: id,
      cluster,
      zk: String(values.zk),
      nats: String(values.nats).split(','),
      sessionTimeoutMs: (values['session-timeout'] as number | undefined) ?? DEFAULT_SESSION_TIMEOUT_MS,
      leaseMs: values.lease as number | undefined,
      opTimeoutMs: values['op-timeout'] as number | undefined,
      minReplicas: values['min-replicas'] as number | undefined,
      watchHistory: {
        ...(values['watch-history'] !== undefined ? { maxChanges: values['watch-history'] as number } : {}),
        ...(values['watch-history-age'] !== undefined ? { maxAgeMs: values['watch-history-age'] as number } : {}),
      },
      storage: values['data-dir'] === undefined ? undefined : { dir: String(values['data-dir']), ...fsyncOf(values.fsync), reset: values['reset-data'] === true },
      natsOptions: natsConnectOptions(values),
      zkAuth: zkAuth === undefined ? undefined : { user: zkAuth.slice(0, separator), password: zkAuth.slice(separator + 1) },
      log,
      metricsPort: metricsAddress?.port,
      metricsHost: metricsAddress?.host,
      inspect: values.inspect === true,
      signal: starting.signal,
    });
  } catch (err) {
    if (!starting.signal.aborted) throw err;
    log.info({ reason: (starting.signal.reason as Error).message }, 'stopped before starting');
    return 0;
  }
  const node = running.node;
  if (starting.signal.aborted) {
    // The signal came as the start was finishing.
    await running.stop();
    log.info({}, 'stopped');
    return 0;
  }
  log.info({ sessionTimeoutMs: (values['session-timeout'] as number | undefined) ?? DEFAULT_SESSION_TIMEOUT_MS, leaseMs: node.config.leaseMs, opTimeoutMs: node.config.opTimeoutMs, minReplicas: node.config.minReplicas }, 'node started');
  await new Promise<void>((resolve) => {
    stopRequested = (signal: string) => {
      stopRequested = () => undefined;
      log.info({ signal }, 'stopping');
      running.stop().then(resolve, (err) => {
        log.error({ err }, 'stop failed');
        resolve();
      });
    };
  });
  log.info({}, 'stopped');
  return 0;
}

/** The `--fsync` flag, already checked by the option parser; `always` when not given. */
function fsyncOf(flag: unknown): { fsync: FsyncPolicy; syncIntervalMs?: number } {
  const parsed = parseFsync(typeof flag === 'string' ? flag : 'always');
  if (typeof parsed === 'string') throw new Error(`--fsync ${parsed}`);
  return parsed;
}
