// `zistore up`: ZooKeeper, nats-server and N nodes on this machine, as separate processes.
// Prints one line with `ready` and the NATS URL once every node serves; opens the shell on a
// terminal, otherwise runs until SIGINT/SIGTERM; then stops everything it started.
import { LocalCluster } from '../cluster/local-cluster.ts';
import { subjects, CLUSTER_NAME_PATTERN } from '../bus/subjects.ts';
import { ZiClient } from '../client/index.ts';
import { intFlag, UsageError } from './args.ts';
import { localControl, serveAdmin } from './admin.ts';
import { createLogger } from './runtime.ts';
import { interactiveShell, Shell } from './shell.ts';

export async function runUpCommand(values: Record<string, string | undefined>): Promise<number> {
  const cluster = values.cluster ?? 'default';
  if (!CLUSTER_NAME_PATTERN.test(cluster)) throw new UsageError('--cluster: letters, digits, _ and - only');
  const nodes = intFlag(values, 'nodes', 1, 64) ?? 3;
  // Launcher logs go to stderr so stdout stays for the ready line and the shell.
  const log = createLogger({ destination: 2, level: process.env.ZISTORE_LOG_LEVEL ?? 'warn' });
  const local = await LocalCluster.start({
    nodes,
    cluster,
    natsPort: intFlag(values, 'nats-port', 1, 65535),
    zkPort: intFlag(values, 'zk-port', 1, 65535),
    dataDir: values['data-dir'],
    sessionTimeoutMs: intFlag(values, 'session-timeout', 500, 600_000),
    leaseMs: intFlag(values, 'lease', 100, 600_000),
    opTimeoutMs: intFlag(values, 'op-timeout', 100, 600_000),
    log,
  });
  let stopping: Promise<void> | null = null;
  const shutdown = () => (stopping ??= local.stop());
  const onSignal = () => void shutdown().then(() => process.exit(0));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await local.waitServing(60_000);
    const nc = await local.connectClient();
    const control = localControl(local);
    serveAdmin(nc, subjects.admin(cluster), control);
    const ids = [...local.nodes.keys()].join(',');
    process.stdout.write(`ready ${local.natsUrl} cluster=${cluster} nodes=${ids} zk=${local.zkConnectString} logs=${local.dataDir}\n`);
    if (process.stdin.isTTY) {
      const shell = new Shell(new ZiClient(nc, { cluster }), control, (t) => process.stdout.write(`${t}\n`));
      await interactiveShell(shell, `cluster '${cluster}': ${nodes} nodes; NATS ${local.natsUrl}`);
    } else {
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    await nc.close();
  } finally {
    await shutdown();
  }
  return 0;
}
