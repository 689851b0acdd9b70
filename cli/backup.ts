// `zistore backup --data-dir DIR --out DIR` and `zistore restore --from DIR --data-dir DIR --id ID
// --cluster NAME --zk HOST:PORT`: a consistent copy of a node's data taken while it serves, and a
// new node's data dir made from one, from which a whole cluster is restored (docs/deployment.md,
// section 9).
import { recordRestoredReplicaSet } from '../coordination/restore-record.ts';
import { backupDataDir, removeCopy, restoreDataDir } from '../storage/lmdb-disk.ts';
import { UsageError } from './args.ts';
import { connectZooKeeper, parseZkAuth } from './zk-connect.ts';

export async function runBackup(options: { 'data-dir'?: string; out?: string }, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { 'data-dir': dataDir, out: target } = options;
  if (dataDir === undefined || target === undefined) throw new UsageError("backup needs --data-dir DIR (a node's) and --out DIR (new or empty)");
  const s = await backupDataDir(dataDir, target);
  out.write(`backed up node ${s.nodeId} of cluster ${s.cluster}: ${s.keys} entries up to revision ${s.maxRev}, in ${target}\n`);
  return 0;
}

export interface RestoreOptions {
  from?: string;
  'data-dir'?: string;
  id?: string;
  cluster?: string;
  zk?: string;
  'zk-auth'?: string;
}

export async function runRestore(options: RestoreOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { from, 'data-dir': dataDir, id, cluster, zk } = options;
  if (from === undefined || dataDir === undefined || id === undefined || cluster === undefined || zk === undefined) {
    throw new UsageError('restore needs --from DIR (a backup), --data-dir DIR (new or empty), --id ID, --cluster NAME and --zk HOST:PORT');
  }
  const auth = parseZkAuth(options['zk-auth']);
  const s = await restoreDataDir(from, dataDir, { cluster, nodeId: id });
  const client = await connectZooKeeper(zk, auth);
  try {
    await recordRestoredReplicaSet(client, cluster, id, s.era);
  } catch (err) {
    // Not recorded: a copy nobody would wait for must not be left behind as if restored.
    removeCopy(dataDir);
    throw err;
  } finally {
    await client.close();
  }
  out.write(
    `restored ${s.keys} entries up to revision ${s.maxRev} into ${dataDir} for node ${id} of cluster ${cluster}, recorded in ZooKeeper as its replica set; ` +
      'start the nodes (the others with empty data dirs), in any order\n',
  );
  return 0;
}
