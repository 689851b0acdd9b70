// `zistore up`: ZooKeeper, nats-server and N nodes on this machine, as separate processes.
// Prints one line with `ready` and the NATS URL once every node serves; opens the shell on a
// terminal, otherwise runs until SIGINT/SIGTERM; then stops everything it started.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LocalCluster } from '../cluster/local-cluster.ts';
import { credentialsPath, findCredentials } from '../client/credentials.ts';
import { subjects, CLUSTER_NAME_PATTERN } from '../bus/subjects.ts';
import { ZiClient } from '../client/index.ts';
import { intFlag, UsageError } from './args.ts';
import { localControl, serveAdmin } from './admin.ts';
import { startViewer, type Viewer } from '../observe/viewer-server.ts';
import { createLogger } from './runtime.ts';
import { interactiveShell, Shell } from './shell.ts';

/** How many keys the cluster holds as it becomes ready (restored from the data dir, or 0): the most any node reports. */
async function restoredKeys(client: ZiClient, ids: string[]): Promise<number> {
  let most = 0;
  for (const id of ids) {
    const view = await client.members({ node: id, timeoutMs: 2000 }).catch(() => null);
    most = Math.max(most, view?.members.find((m) => m.id === id)?.keys ?? 0);
  }
  return most;
}

/**
 * Secure: the client identity's credentials file, in the data dir and in the credentials home
 * (where the shell and the typed client look by themselves; removed at stop). Open: a file left
 * there for this URL by an earlier secure run would make clients log in with dead credentials.
 */
async function publishCredentials(local: LocalCluster, secure: boolean): Promise<{ said: string; remove(): Promise<void> }> {
  const home = credentialsPath(local.name);
  if (!secure) {
    const stale = findCredentialsOrNull(local.name, [local.natsUrl]);
    if (stale !== null) await rm(home, { force: true });
    return { said: 'open: loopback only', remove: async () => undefined };
  }
  const { user, pass, inboxPrefix } = local.clientAuth('client');
  const text = JSON.stringify({ cluster: local.name, servers: [local.natsUrl], user, password: pass, inboxPrefix }, null, 2) + '\n';
  const own = join(local.dataDir, 'credentials.json');
  await writeFile(own, text, { mode: 0o600 });
  await mkdir(dirname(home), { recursive: true, mode: 0o700 });
  await writeFile(home, text, { mode: 0o600 });
  return {
    said: `secure: credentials in ${own} and ${home} client-user=${user} client-password=${pass}`,
    remove: () => rm(home, { force: true }),
  };
}

const findCredentialsOrNull = (cluster: string, servers: string[]) => {
  try {
    return findCredentials(cluster, servers);
  } catch {
    return null;
  }
};

export async function runUpCommand(values: Record<string, string | undefined>, flags: { inspect?: boolean; ui?: boolean; secure?: boolean } = {}): Promise<number> {
  const cluster = values.cluster ?? 'default';
  if (!CLUSTER_NAME_PATTERN.test(cluster)) throw new UsageError('--cluster: letters, digits, _ and - only');
  const nodes = intFlag(values, 'nodes', 1, 64) ?? 3;
  const uiPort = intFlag(values, 'ui-port', 1, 65535);
  const ui = flags.ui === true || uiPort !== undefined;
  // Launcher logs go to stderr so stdout stays for the ready line and the shell.
  const log = createLogger({ destination: 2, level: process.env.ZISTORE_LOG_LEVEL ?? 'warn' });
  const local = await LocalCluster.start({
    access: flags.secure === true ? 'secure' : 'open',
    nodes,
    cluster,
    natsPort: intFlag(values, 'nats-port', 1, 65535),
    zkPort: intFlag(values, 'zk-port', 1, 65535),
    dataDir: values['data-dir'],
    sessionTimeoutMs: intFlag(values, 'session-timeout', 500, 600_000),
    leaseMs: intFlag(values, 'lease', 100, 600_000),
    opTimeoutMs: intFlag(values, 'op-timeout', 100, 600_000),
    minReplicas: intFlag(values, 'min-replicas', 1, 100),
    // A data dir of the user's keeps every node's copy too (fsync always): a second `up` on it
    // finds the data again. Without one everything lives in a temp dir, in memory.
    durable: values['data-dir'] !== undefined ? 'always' : undefined,
    metrics: true,
    // Nodes connect straight to nats-server and ZooKeeper; rmi-down/zk-down make the node cut
    // its own sockets (cluster/link-faults.ts), so a healthy link costs no proxy hop.
    faults: 'socket',
    // The page shows what the nodes stream: --ui implies --inspect.
    inspect: flags.inspect === true || ui,
    log,
  });
  let viewer: { server: Viewer; close(): Promise<void> } | null = null;
  let stopping: Promise<void> | null = null;
  const credentials = await publishCredentials(local, flags.secure === true).catch(async (err: unknown) => {
    await local.stop();
    throw err;
  });
  const shutdown = () =>
    (stopping ??= (async () => {
      await viewer?.close().catch((err: unknown) => log.warn({ err }, 'viewer stop failed'));
      await credentials.remove();
      await local.stop();
    })());
  const onSignal = () => void shutdown().then(() => process.exit(0));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (ui) {
      // Up before the nodes serve, so the page shows them electing and syncing.
      const viewerNc = await local.connectClient();
      try {
        const server = await startViewer({ nc: viewerNc, cluster, port: uiPort ?? 0, log });
        viewer = { server, close: async () => (await server.close(), await viewerNc.close()) };
      } catch (err) {
        await viewerNc.close();
        throw err;
      }
      process.stdout.write(`ui ${viewer.server.url}\n`);
    }
    await local.waitServing(60_000);
    const nc = await local.connectClient();
    const control = localControl(local);
    serveAdmin(nc, subjects.admin(cluster), control);
    const ids = [...local.nodes.keys()].join(',');
    const keys = await restoredKeys(new ZiClient(nc, { cluster }), [...local.nodes.keys()]);
    process.stdout.write(`ready ${local.natsUrl} cluster=${cluster} nodes=${ids} zk=${local.zkConnectString} logs=${local.dataDir} keys=${keys} ${credentials.said}\n`);
    const metrics = local.view().map((n) => `${n.id}=${local.metricsUrl(n.id)}`);
    process.stdout.write(`metrics ${metrics.join(' ')}\n`);
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
