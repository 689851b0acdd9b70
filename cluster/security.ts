// Credentials and NATS permissions for a secured local cluster (`zistore up --secure`):
// nodes alone may use the peer subjects; clients may only send requests on the client subjects
// (and discover nodes through $SRV); ZooKeeper znodes of the cluster get a digest ACL.
import { randomBytes } from 'node:crypto';

export interface ClusterSecrets {
  node: { user: string; password: string };
  client: { user: string; password: string };
  zk: { user: string; password: string };
}

const secret = () => randomBytes(18).toString('base64url');

export function makeSecrets(): ClusterSecrets {
  return {
    node: { user: 'zistore-node', password: secret() },
    client: { user: 'zistore-client', password: secret() },
    zk: { user: 'zistore', password: secret() },
  };
}

const list = (subjects: string[]) => `[${subjects.map((s) => JSON.stringify(s)).join(', ')}]`;

/** The `authorization` block for nats-server's config. */
export function natsAuthorization(cluster: string, secrets: ClusterSecrets): string {
  const c = `zistore.${cluster}`;
  const clientSubjects = ['get', 'put', 'delete', 'members'].flatMap((op) => [`${c}.${op}`, `${c}.node.*.${op}`]);
  return `authorization {
  users = [
    {
      user: ${JSON.stringify(secrets.node.user)}, password: ${JSON.stringify(secrets.node.password)}
      permissions: { publish: { allow: ${list([`${c}.>`, '$SRV.>', '_INBOX.>'])} }, subscribe: { allow: ${list([`${c}.>`, '$SRV.>', '_INBOX.>'])} } }
    },
    {
      user: ${JSON.stringify(secrets.client.user)}, password: ${JSON.stringify(secrets.client.password)}
      permissions: { publish: { allow: ${list([...clientSubjects, '$SRV.PING', '$SRV.PING.>', '$SRV.INFO', '$SRV.INFO.>', '$SRV.STATS', '$SRV.STATS.>'])} }, subscribe: { allow: ${list(['_INBOX.>'])} } }
    }
  ]
}`;
}
