// `zistore accept-data-loss --cluster NAME --zk HOST:PORT[,...] [--zk-auth USER:PASSWORD] [--yes]`
//
// When every member of the last replica set has lost its copy, the leader waits, answering 503
// "waiting for a complete replica: …", however long. This command is the operator's way out: it
// says what may be lost, and with --yes records a grant for the waiting leader's epoch in
// ZooKeeper (coordination/unclean.ts); that leader then serves what it holds.
import { hostname, userInfo } from 'node:os';
import { clusterPaths } from '../coordination/paths.ts';
import { acceptDataLoss } from '../coordination/unclean.ts';
import { UsageError } from './args.ts';
import { connectZooKeeper, parseZkAuth } from './zk-connect.ts';

export interface AcceptDataLossOptions {
  cluster?: string;
  zk?: string;
  'zk-auth'?: string;
  yes?: boolean;
}

export async function runAcceptDataLoss(options: AcceptDataLossOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { cluster, zk } = options;
  if (cluster === undefined || zk === undefined) throw new UsageError('accept-data-loss needs --cluster NAME and --zk HOST:PORT');
  const paths = clusterPaths(cluster);
  const client = await connectZooKeeper(zk, parseZkAuth(options['zk-auth']));
  try {
    const epoch = JSON.parse((await client.getData(paths.epoch)).data.toString('utf8')) as { epoch: number; leader: string | null };
    const replicas = JSON.parse((await client.getData(paths.replicas)).data.toString('utf8')) as { ids: string[] };
    const lost = replicas.ids.filter((id) => id !== epoch.leader);
    out.write(
      `cluster ${cluster}: ${epoch.leader ?? 'no node'} leads epoch ${epoch.epoch}; the last replica set is [${replicas.ids.join(', ')}].\n` +
        `Accepting means ${epoch.leader ?? 'the leader'} serves what it holds: every write acknowledged only by ${lost.join(', ') || 'the last replica set'} is lost for good.\n`,
    );
    if (options.yes !== true) {
      out.write('Nothing was changed. Run again with --yes to accept.\n');
      return 2;
    }
    const grant = await acceptDataLoss(client, cluster, `${userInfo().username}@${hostname()}`);
    out.write(`Recorded in ${paths.unclean}: ${JSON.stringify(grant)}\n`);
    return 0;
  } finally {
    await client.close();
  }
}
