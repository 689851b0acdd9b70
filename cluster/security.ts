// Identities and NATS permissions of a local cluster (`zistore up`). Each node has its own NATS
// user, allowed to publish peer messages only in its own name (`zistore.<c>.peer.*.<self>.>`, the
// receiver takes the sender from the subject) and to listen only on its own peer subjects and
// inbox; it answers requests through `allow_responses`. Clients may use the client subjects and
// $SRV only. Open (the loopback default), a connection without credentials is such a client;
// secure, every connection needs credentials and the cluster's znodes get a digest ACL.
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLIENT_OPS, subjects } from '../bus/subjects.ts';
import { inspectSubjects } from '../observe/subjects.ts';

export interface Identity {
  user: string;
  password: string;
}

export interface ClusterSecrets {
  /** One NATS identity per node id. */
  nodes: Record<string, Identity>;
  /** The client contract: every operation. */
  client: Identity;
  /** The client contract, reads only (get, members): the documented least-privilege example. */
  reader: Identity;
  /** The launcher itself (`zistore up` serving process commands, tests): every subject. */
  admin: Identity;
  /** ZooKeeper digest credentials of the nodes (secure only). */
  zk: Identity;
}

const secret = () => randomBytes(18).toString('base64url');
const identity = (user: string): Identity => ({ user, password: secret() });

export function makeSecrets(): ClusterSecrets {
  return { nodes: {}, client: identity('zistore-client'), reader: identity('zistore-reader'), admin: identity('zistore-admin'), zk: identity('zistore') };
}

/** The identity of a node, made on first use. */
export function nodeIdentity(secrets: ClusterSecrets, node: string): Identity {
  return (secrets.nodes[node] ??= identity(`zistore-node-${node}`));
}

const SECRETS_FILE = 'secrets.json';

/** The secrets kept in `dir` (a second `zistore up` on a data dir keeps its identities and ACLs), or new ones. */
export async function loadSecrets(dir: string): Promise<ClusterSecrets> {
  try {
    return JSON.parse(await readFile(join(dir, SECRETS_FILE), 'utf8')) as ClusterSecrets;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${join(dir, SECRETS_FILE)}: ${(err as Error).message}`);
    return makeSecrets();
  }
}

export async function saveSecrets(dir: string, secrets: ClusterSecrets): Promise<void> {
  const file = join(dir, SECRETS_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** The inbox prefix a client identity must use when secured (no other identity may listen there). */
export const clientInboxPrefix = (user: string) => `_INBOX.${user}`;

const SRV_REQUESTS = ['$SRV.PING', '$SRV.PING.>', '$SRV.INFO', '$SRV.INFO.>', '$SRV.STATS', '$SRV.STATS.>'];

/** Subjects a client may send requests on: the given operations, cluster-wide and to one node. */
function clientSubjects(cluster: string, ops: readonly string[]): string[] {
  return [...ops.flatMap((op) => [`zistore.${cluster}.${op}`, `zistore.${cluster}.node.*.${op}`]), ...SRV_REQUESTS];
}

interface Permissions {
  publish: string[];
  subscribe: string[];
  /** May answer the requests it receives (whatever their reply subject). */
  responses?: boolean;
}

function nodePermissions(cluster: string, node: string): Permissions {
  return {
    publish: [subjects.peer(cluster, '*', node, '>'), inspectSubjects.node(cluster, node), subjects.changes(cluster, node)],
    subscribe: [
      subjects.peerAll(cluster, node),
      ...CLIENT_OPS.map((op) => subjects.client(cluster, op)),
      ...CLIENT_OPS.map((op) => subjects.nodeClient(cluster, node, op)),
      '$SRV.>',
      `${subjects.nodeInbox(cluster, node)}.>`,
    ],
    responses: true,
  };
}

const list = (items: string[]) => `[${items.map((s) => JSON.stringify(s)).join(', ')}]`;

function userEntry(id: Identity, p: Permissions): string {
  const responses = p.responses ? ', allow_responses: true' : '';
  return `    { user: ${JSON.stringify(id.user)}, password: ${JSON.stringify(id.password)}, permissions: { publish: { allow: ${list(p.publish)} }, subscribe: { allow: ${list(p.subscribe)} }${responses} } }`;
}

export type Access = 'open' | 'secure';

/**
 * nats-server's `authorization` block. Open: a connection without credentials is the anonymous
 * client (the client subjects, `zistore up`'s process commands, any `_INBOX`), so nobody can speak
 * or listen as a node. Secure: no anonymous user; clients must use their own inbox prefix.
 */
export function natsAuthorization(cluster: string, secrets: ClusterSecrets, access: Access): string {
  const users = [
    ...Object.entries(secrets.nodes).map(([node, id]) => userEntry(id, nodePermissions(cluster, node))),
    userEntry(secrets.client, { publish: clientSubjects(cluster, CLIENT_OPS), subscribe: [`${clientInboxPrefix(secrets.client.user)}.>`, subjects.changes(cluster, '*')] }),
    userEntry(secrets.reader, { publish: clientSubjects(cluster, ['get', 'scan', 'watch', 'members']), subscribe: [`${clientInboxPrefix(secrets.reader.user)}.>`, subjects.changes(cluster, '*')] }),
    userEntry(secrets.admin, { publish: ['>'], subscribe: ['>'] }),
  ];
  if (access === 'open') {
    users.push(
      userEntry(ANONYMOUS, {
        publish: [...clientSubjects(cluster, CLIENT_OPS), subjects.admin(cluster)],
        subscribe: ['_INBOX.>', inspectSubjects.all(cluster), subjects.changes(cluster, '*')],
      }),
    );
  }
  return ['authorization {', '  users = [', users.join(',\n'), '  ]', '}', ...(access === 'open' ? [`no_auth_user: ${JSON.stringify(ANONYMOUS.user)}`] : [])].join('\n');
}

/** Who a connection without credentials is, open: a user nobody can log in as (its password is never told). */
const ANONYMOUS: Identity = { user: 'zistore-anonymous', password: randomBytes(24).toString('base64url') };
