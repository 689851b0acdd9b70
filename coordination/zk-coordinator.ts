// The production coordinator: coordinator.ts on a real ZooKeeper ensemble through
// node-zookeeper-client (node-zk-client.ts), on the process's clock.
import { childLog, type Log } from '../actors/ports.ts';
import { processClock } from '../actors/time.ts';
import { createCoordinator, type ZkCoordinator } from './coordinator.ts';
import { createNodeZkClient } from './node-zk-client.ts';
import { ROOT_PATH } from './paths.ts';

export { digestId } from './node-zk-client.ts';

export interface ZkCoordinatorOptions {
  /** 'host:port[,host:port...]' of the ensemble. */
  connectString: string;
  cluster: string;
  /** Unique per live process (see coordinator.ts). */
  nodeId: string;
  /** Requested session timeout; the server may negotiate it within its min/max. */
  sessionTimeoutMs: number;
  /** Timeout of every ZooKeeper operation; default 4000. */
  opTimeoutMs?: number;
  /**
   * Digest credentials. When set, the session authenticates with them and `/zistore/<cluster>`
   * and everything below it get an ACL that grants all rights to these credentials only, so
   * other ZooKeeper users can neither read nor break the group. Every node of a cluster needs
   * the same credentials.
   */
  auth?: { user: string; password: string };
  log: Log;
}

const OP_TIMEOUT_MS_DEFAULT = 4000;

export function createZkCoordinator(opts: ZkCoordinatorOptions): ZkCoordinator {
  if (opts.connectString.length === 0) throw new RangeError('connectString is empty');
  const opTimeoutMs = opts.opTimeoutMs ?? OP_TIMEOUT_MS_DEFAULT;
  const clientLog = childLog(opts.log, { node: opts.nodeId, cluster: opts.cluster, actor: 'zk-client' });
  return createCoordinator({
    cluster: opts.cluster,
    nodeId: opts.nodeId,
    sessionTimeoutMs: opts.sessionTimeoutMs,
    opTimeoutMs,
    clock: processClock,
    log: opts.log,
    newClient: () =>
      createNodeZkClient({
        connectString: opts.connectString,
        sessionTimeoutMs: opts.sessionTimeoutMs,
        closeTimeoutMs: opTimeoutMs,
        auth: opts.auth,
        // The shared root stays open; our cluster's znodes are ours alone when credentials are set.
        openPaths: [ROOT_PATH],
        log: clientLog,
      }),
  });
}
