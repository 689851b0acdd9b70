// The operator's order to accept data loss (docs/safety.md, "When no complete replica is left").
// A leader without a complete copy waits, however long, for a member of the last replica set;
// `zistore accept-data-loss` appends a grant naming that leader's epoch to the `unclean` znode,
// where it stays as the record of what was accepted, and the leader then serves what it holds.
import type { UncleanGrant } from '../actors/ports.ts';
import { CoordinationError } from './errors.ts';
import { clusterPaths } from './paths.ts';
import { ZkCode, ZkError, type ZkClient } from './zk-client.ts';

/** The grants recorded in the `unclean` znode, oldest first; malformed data is an error. */
export function parseUncleanGrants(data: Buffer, path: string): UncleanGrant[] {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new CoordinationError('unreadable unclean znode', { cause: err, path });
  }
  const grants = (value as { grants?: unknown } | null)?.grants;
  const valid = (g: unknown): g is UncleanGrant => {
    const v = g as Partial<UncleanGrant> | null;
    return (
      v !== null &&
      typeof v === 'object' &&
      Number.isSafeInteger(v.epoch) &&
      typeof v.leader === 'string' &&
      Array.isArray(v.waitingFor) &&
      v.waitingFor.every((id) => typeof id === 'string') &&
      typeof v.by === 'string' &&
      typeof v.at === 'string'
    );
  };
  if (!Array.isArray(grants) || !grants.every(valid)) throw new CoordinationError('malformed unclean znode', { path });
  return grants;
}

/**
 * Record a grant for the leader named in the epoch znode now. Throws when no node leads. The
 * caller (an operator) has been told what may be lost: `waitingFor` of the returned grant.
 */
export async function acceptDataLoss(client: ZkClient, cluster: string, by: string, now = new Date()): Promise<UncleanGrant> {
  const paths = clusterPaths(cluster);
  const epochZnode = JSON.parse((await client.getData(paths.epoch)).data.toString('utf8')) as { epoch: number; leader: string | null };
  if (epochZnode.leader === null) throw new Error(`no node leads cluster ${cluster} yet: nothing waits for a complete replica`);
  const replicas = JSON.parse((await client.getData(paths.replicas)).data.toString('utf8')) as { ids: string[] };
  const grant: UncleanGrant = {
    epoch: epochZnode.epoch,
    leader: epochZnode.leader,
    waitingFor: replicas.ids.filter((id) => id !== epochZnode.leader),
    by,
    at: now.toISOString(),
  };
  for (let attempt = 0; attempt < 10; attempt++) {
    let existing: { grants: UncleanGrant[]; version: number } | null = null;
    try {
      const { data, stat } = await client.getData(paths.unclean);
      existing = { grants: parseUncleanGrants(data, paths.unclean), version: stat.version };
    } catch (err) {
      if (!(err instanceof ZkError && err.code === ZkCode.NO_NODE)) throw err;
    }
    const body = Buffer.from(JSON.stringify({ grants: [...(existing?.grants ?? []), grant] }));
    try {
      if (existing === null) await client.create(paths.unclean, body, 'persistent');
      else await client.setData(paths.unclean, body, existing.version);
      return grant;
    } catch (err) {
      // Another operator wrote meanwhile: read again and append.
      if (!(err instanceof ZkError && (err.code === ZkCode.NODE_EXISTS || err.code === ZkCode.BAD_VERSION))) throw err;
    }
  }
  throw new Error('the unclean znode kept changing; try again');
}
