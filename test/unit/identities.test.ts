// Goal: `zistore identities` makes every identity of a secure deployment once and keeps it (a second
// run adds nodes and changes no password), with the permissions each needs; a credentials file is
// picked up by the typed client only for the servers it names.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runIdentities } from '../../cli/identities.ts';
import { CredentialsError, findCredentials, readCredentials } from '../../client/credentials.ts';
import { makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';

let dir: string | null = null;
const home = process.env.ZISTORE_HOME;
afterEach(async () => {
  if (dir !== null) await removeTempDir(dir);
  dir = null;
  if (home === undefined) delete process.env.ZISTORE_HOME;
  else process.env.ZISTORE_HOME = home;
});

const env = async (file: string) => Object.fromEntries((await readFile(file, 'utf8')).trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));

describe('identities', () => {
  it('identities - one identity per node, kept across runs; each node may publish only as itself', async () => {
    dir = await makeTempDir('identities');
    const out = join(dir, 'ids');
    await runIdentities({ cluster: 'orders', nodes: 'db1,db2', out, nats: 'nats://10.0.0.1:4222' }, new PassThrough());
    const db1 = await env(join(out, 'db1.env'));
    await runIdentities({ cluster: 'orders', nodes: 'db3', out }, new PassThrough());
    expect(await env(join(out, 'db1.env'))).toEqual(db1);
    const db3 = await env(join(out, 'db3.env'));
    expect(db3.ZISTORE_NATS_USER).toBe('zistore-node-db3');
    expect(db3.ZISTORE_NATS_PASS).not.toBe(db1.ZISTORE_NATS_PASS);
    expect(db3.ZISTORE_ZK_AUTH).toBe(db1.ZISTORE_ZK_AUTH);

    const conf = await readFile(join(out, 'nats-authorization.conf'), 'utf8');
    const line = conf.split('\n').find((l) => l.includes('"zistore-node-db3"'))!;
    expect(line).toContain('publish: { allow: ["zistore.orders.peer.*.db3.>", "zistore.orders.inspect.db3", "zistore.orders.node.db3.changes"] }');
    expect(line).toContain('allow_responses: true');
    expect(conf).not.toContain('no_auth_user');

    const reader = readCredentials(join(out, 'reader.json'));
    expect(reader).toMatchObject({ cluster: 'orders', servers: ['nats://127.0.0.1:4222'], user: 'zistore-reader', inboxPrefix: '_INBOX.zistore-reader' });
    const readerLine = conf.split('\n').find((l) => l.includes('"zistore-reader"'))!;
    expect(readerLine).toContain('"zistore.orders.get"');
    expect(readerLine).not.toContain('"zistore.orders.put"');
    // It may listen on the nodes' change feeds, and publish on none.
    expect(readerLine).toContain('subscribe: { allow: ["_INBOX.zistore-reader.>", "zistore.orders.node.*.changes"] }');
  });

  it('identities - bad arguments are refused with the reason', async () => {
    await expect(runIdentities({ cluster: 'orders', nodes: 'db 1', out: '/nonexistent' })).rejects.toThrow(/--nodes: .*got db 1/);
    await expect(runIdentities({ cluster: 'orders' })).rejects.toThrow(/needs --cluster NAME, --nodes/);
  });

  it('credentials - the file in ZISTORE_HOME is used only for the servers it names; a damaged one is a clear error', async () => {
    dir = await makeTempDir('identities');
    process.env.ZISTORE_HOME = dir;
    await runIdentities({ cluster: 'c1', nodes: 'n1', out: join(dir, 'ids'), nats: 'nats://127.0.0.1:4999' }, new PassThrough());
    const text = await readFile(join(dir, 'ids', 'client.json'), 'utf8');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'c1.json'), text);
    expect(findCredentials('c1', ['nats://localhost:4999'])?.user).toBe('zistore-client');
    expect(findCredentials('c1', ['nats://127.0.0.1:4222'])).toBeNull();
    expect(findCredentials('c2', undefined)).toBeNull();
    await writeFile(join(dir, 'c1.json'), '{"cluster":"c1"');
    expect(() => findCredentials('c1', undefined)).toThrow(CredentialsError);
  });
});
