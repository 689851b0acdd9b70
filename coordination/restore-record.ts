// The ZooKeeper side of `zistore restore`: the restored node is recorded as the cluster's whole
// replica set before any node starts. Whichever node is elected first then waits for the restored
// copy (the only complete one) instead of starting the cluster empty.
import { clusterPaths } from './paths.ts';
import { ZkCode, ZkError, type ZkClient } from './zk-client.ts';

async function createIfAbsent(client: ZkClient, path: string, data: Buffer): Promise<boolean> {
  try {
    await client.create(path, data, 'persistent');
    return true;
  } catch (err) {
    if (err instanceof ZkError && err.code === ZkCode.NODE_EXISTS) return false;
    throw err;
  }
}

/** Refuses when ZooKeeper already records a replica set for the cluster. */
export async function recordRestoredReplicaSet(client: ZkClient, cluster: string, nodeId: string, era: number): Promise<void> {
  const paths = clusterPaths(cluster);
  await createIfAbsent(client, paths.root, Buffer.alloc(0));
  await createIfAbsent(client, paths.cluster, Buffer.alloc(0));
  const record = Buffer.from(JSON.stringify({ ids: [nodeId], epoch: 0, era }));
  if (await createIfAbsent(client, paths.replicas, record)) return;
  const { data, stat } = await client.getData(paths.replicas);
  const ids = (JSON.parse(data.toString('utf8')) as { ids?: unknown }).ids;
  if (Array.isArray(ids) && ids.length > 0) {
    throw new Error(`ZooKeeper already records cluster ${cluster} with the replica set [${ids.join(', ')}]: restore under a new --cluster name, or against a ZooKeeper without that cluster`);
  }
  await client.setData(paths.replicas, record, stat.version);
}
