// The ZooKeeper layout of one cluster (docs/design.md section 3), in one place:
//
//   /zistore/<cluster>/members/<nodeId>   ephemeral, data {"role","state"}
//   /zistore/<cluster>/election/n_<seq>   ephemeral-sequential, data = nodeId
//   /zistore/<cluster>/epoch              persistent, data {"epoch":N,"leader":id|null}
//   /zistore/<cluster>/replicas           persistent, data {"ids":[...],"epoch":N}
//   /zistore/<cluster>/unclean            persistent, absent until an operator accepts data loss:
//                                         data {"grants":[{"epoch","leader","waitingFor","by","at"}]}

export const ROOT_PATH = '/zistore';
/** Prefix of election znodes; ZooKeeper appends a 10-digit sequence number. */
export const ELECTION_PREFIX = 'n_';

export interface ClusterPaths {
  readonly root: string;
  readonly cluster: string;
  readonly members: string;
  readonly election: string;
  /** Path handed to create() for an ephemeral-sequential election znode. */
  readonly electionPrefix: string;
  readonly epoch: string;
  readonly replicas: string;
  readonly unclean: string;
  member(nodeId: string): string;
  electionNode(name: string): string;
}

/**
 * A cluster name or node id becomes one path segment, so it must be one: non-empty, no '/',
 * no control characters, not '.' or '..' (ZooKeeper rejects those), and short.
 */
export function isValidSegment(segment: string): boolean {
  return (
    segment.length > 0 &&
    segment.length <= 200 &&
    segment !== '.' &&
    segment !== '..' &&
    // eslint-disable-next-line no-control-regex
    !/[/\u0000-\u001f\u007f]/.test(segment)
  );
}

export function clusterPaths(cluster: string): ClusterPaths {
  if (!isValidSegment(cluster)) throw new RangeError(`invalid cluster name: ${JSON.stringify(cluster)}`);
  const base = `${ROOT_PATH}/${cluster}`;
  const members = `${base}/members`;
  const election = `${base}/election`;
  return {
    root: ROOT_PATH,
    cluster: base,
    members,
    election,
    electionPrefix: `${election}/${ELECTION_PREFIX}`,
    epoch: `${base}/epoch`,
    replicas: `${base}/replicas`,
    unclean: `${base}/unclean`,
    member(nodeId: string): string {
      if (!isValidSegment(nodeId)) throw new RangeError(`invalid node id: ${JSON.stringify(nodeId)}`);
      return `${members}/${nodeId}`;
    },
    electionNode(name: string): string {
      return `${election}/${name}`;
    },
  };
}

/**
 * Sequence number of an election znode name ('n_0000000042' → 42), or undefined for a name
 * that is not ours (anything else under election/ is ignored).
 */
export function electionSequence(name: string): number | undefined {
  if (!name.startsWith(ELECTION_PREFIX)) return undefined;
  const digits = name.slice(ELECTION_PREFIX.length);
  if (!/^\d{1,10}$/.test(digits)) return undefined;
  return Number(digits);
}

/** Election znode names in election order (lowest sequence first); foreign names dropped. */
export function sortElectionNames(names: readonly string[]): string[] {
  return names
    .map((name) => ({ name, seq: electionSequence(name) }))
    .filter((e): e is { name: string; seq: number } => e.seq !== undefined)
    .sort((a, b) => a.seq - b.seq)
    .map((e) => e.name);
}
