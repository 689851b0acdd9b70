// `zistore backup --data-dir DIR --out DIR` and `zistore restore --from DIR --data-dir DIR --id ID
// --cluster NAME`: a consistent copy of a node's data taken while it serves, and a new node's data
// dir made from one, from which a whole cluster is restored (docs/deployment.md, "Backup and restore").
import { backupDataDir, restoreDataDir } from '../storage/lmdb-disk.ts';
import { UsageError } from './args.ts';

export async function runBackup(options: { 'data-dir'?: string; out?: string }, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { 'data-dir': dataDir, out: target } = options;
  if (dataDir === undefined || target === undefined) throw new UsageError('backup needs --data-dir DIR (a node\'s) and --out DIR (new or empty)');
  const s = await backupDataDir(dataDir, target);
  out.write(`backed up node ${s.nodeId} of cluster ${s.cluster}: ${s.keys} entries up to revision ${s.maxRev}, in ${target}\n`);
  return 0;
}

export async function runRestore(
  options: { from?: string; 'data-dir'?: string; id?: string; cluster?: string },
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const { from, 'data-dir': dataDir, id, cluster } = options;
  if (from === undefined || dataDir === undefined || id === undefined || cluster === undefined) {
    throw new UsageError('restore needs --from DIR (a backup), --data-dir DIR (new or empty), --id ID and --cluster NAME');
  }
  const s = await restoreDataDir(from, dataDir, { cluster, nodeId: id });
  out.write(
    `restored ${s.keys} entries up to revision ${s.maxRev} into ${dataDir} for node ${id} of cluster ${cluster}; ` +
      `start it with --data-dir ${dataDir} against a ZooKeeper that holds no record of cluster ${cluster}, and the other nodes with empty data dirs\n`,
  );
  return 0;
}
