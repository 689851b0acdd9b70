// `zistore identities --cluster NAME --nodes ID,ID,... --out DIR [--nats URL,...]`: every identity a
// secure deployment needs, made once and kept in DIR (run it again with more nodes to add them):
// nats-server's authorization block, one environment file per node (its NATS identity and the
// ZooKeeper digest), and credentials files for a client and a read-only client (docs/deployment.md).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLUSTER_NAME_PATTERN, NODE_ID_PATTERN } from '../bus/subjects.ts';
import { clientInboxPrefix, loadSecrets, natsAuthorization, nodeIdentity, saveSecrets, type Identity } from '../cluster/security.ts';
import type { ZiCredentials } from '../client/credentials.ts';
import { UsageError } from './args.ts';

export async function runIdentities(options: { cluster?: string; nodes?: string; out?: string; nats?: string }, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { cluster, nodes, out: dir } = options;
  if (cluster === undefined || nodes === undefined || dir === undefined) throw new UsageError('identities needs --cluster NAME, --nodes ID,ID,... and --out DIR');
  if (!CLUSTER_NAME_PATTERN.test(cluster)) throw new UsageError('--cluster: letters, digits, _ and - only');
  const ids = nodes.split(',').filter((id) => id !== '');
  const bad = ids.filter((id) => !NODE_ID_PATTERN.test(id));
  if (ids.length === 0 || bad.length > 0) throw new UsageError(`--nodes: node ids of letters, digits, _ and - only${bad.length > 0 ? `, got ${bad.join(', ')}` : ''}`);
  const servers = (options.nats ?? 'nats://127.0.0.1:4222').split(',');

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const secrets = await loadSecrets(dir);
  for (const id of ids) nodeIdentity(secrets, id);
  await saveSecrets(dir, secrets);
  const secret = (name: string, text: string) => writeFile(join(dir, name), text, { mode: 0o600 });
  await secret('nats-authorization.conf', natsAuthorization(cluster, secrets, 'secure') + '\n');
  for (const [id, { user, password }] of Object.entries(secrets.nodes)) {
    await secret(`${id}.env`, `ZISTORE_NATS_USER=${user}\nZISTORE_NATS_PASS=${password}\nZISTORE_ZK_AUTH=${secrets.zk.user}:${secrets.zk.password}\n`);
  }
  const credentials = (id: Identity): ZiCredentials => ({ cluster, servers, user: id.user, password: id.password, inboxPrefix: clientInboxPrefix(id.user) });
  await secret('client.json', JSON.stringify(credentials(secrets.client), null, 2) + '\n');
  await secret('reader.json', JSON.stringify(credentials(secrets.reader), null, 2) + '\n');
  out.write(
    `identities of cluster ${cluster} in ${dir}: nats-authorization.conf (include it in every nats-server's config), ` +
      `${Object.keys(secrets.nodes).map((id) => `${id}.env`).join(', ')} (one per node: its environment), client.json and reader.json (credentials files)\n`,
  );
  return 0;
}
