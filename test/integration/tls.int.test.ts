// Goal: TLS end to end. With a nats-server that requires TLS, `zistore node` processes given
// `--tls-ca` (and, when the server demands client certificates, `--tls-cert`/`--tls-key`) form a
// cluster and serve a typed client that connects over TLS; every connection the server holds is
// TLS; a client (or a node) that speaks plain NATS or does not trust the CA gets nowhere.
// Method: a CA and certificates made by openssl for this file, real nats-servers (one with
// `tls { }`, one with `tls { verify: true }`), one real ZooKeeper, real node processes
// (cli/zistore.js). Everything started here is stopped here, and the temp dir removed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { spawnManaged, tailFile, type ManagedProcess } from '../../cluster/child-process.ts';
import { startNatsServer, type NatsServerHandle } from '../../cluster/nats-server.ts';
import { startZooKeeper, type ZooKeeperHandle } from '../../cluster/zookeeper-server.ts';
import { ZiClient, ZiStoreError, type MembersView } from '../../client/index.ts';
import { eventually } from '../support/raw-client.ts';
import { makeTlsCerts, natsTlsBlock, type TlsCerts } from '../support/tls-certs.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'cli', 'zistore.js');
const SESSION_TIMEOUT_MS = 2000;

/** What Node's TLS reports when the server's certificate does not chain to a CA the client trusts. */
const UNTRUSTED_SERVER = 'UNABLE_TO_VERIFY_LEAF_SIGNATURE';
/**
 * A client certificate the server rejects. In TLS 1.3 the server checks it after the client has
 * finished its side of the handshake: the client sees either the server's alert (bad_certificate)
 * or, when its next write comes first, the reset. Which one is a race; both are the refusal.
 */
const REJECTED_CLIENT_CERT = ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ECONNRESET'];

let certs: TlsCerts | null = null;
let zk: ZooKeeperHandle | null = null;

beforeAll(async () => {
  certs = await makeTlsCerts('tls-test');
  zk = await startZooKeeper({ tickTimeMs: 200, serverLogLevel: 'warn', forceSync: false });
});

afterAll(async () => {
  await zk?.stop();
  await certs?.remove();
});

/** One nats-server with TLS, its nodes and the connections made to it. */
class TlsCluster {
  nats: NatsServerHandle | null = null;
  readonly nodes = new Map<string, ManagedProcess>();
  private readonly connections: NatsConnection[] = [];

  constructor(
    readonly name: string,
    private readonly minReplicas: number,
  ) {}

  async startNats(verify: boolean): Promise<NatsServerHandle> {
    this.nats = await startNatsServer({ monitorPort: true, extraConfig: natsTlsBlock(certs!, { verify }) });
    return this.nats;
  }

  /** `zistore node` as cluster/local-cluster.ts starts it, plus `tlsArgs`; output to a log file in the temp dir. */
  async startNode(id: string, tlsArgs: string[]): Promise<ManagedProcess> {
    // The node's options come from these flags alone, not from ZISTORE_* variables of the test run.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ZISTORE_')));
    const proc = await spawnManaged({
      name: `zistore-${this.name}-${id}`,
      command: process.execPath,
      args: [
        BIN, 'node',
        '--id', id,
        '--cluster', this.name,
        '--zk', zk!.connectString,
        '--nats', this.nats!.url,
        '--session-timeout', String(SESSION_TIMEOUT_MS),
        '--min-replicas', String(this.minReplicas),
        ...tlsArgs,
      ],
      cwd: ROOT,
      env: { ...env, ZISTORE_LOG_LEVEL: 'info' },
      logFile: join(certs!.dir, `${this.name}-${id}.log`),
      stopGraceMs: 7000,
    });
    this.nodes.set(id, proc);
    return proc;
  }

  /** A NATS connection to this cluster's server, closed in stop(); rejects as connect() does. */
  async connect(options: ConnectionOptions): Promise<NatsConnection> {
    const nc = await connect({ servers: this.nats!.url, name: `tls-test-${this.name}`, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...options });
    this.connections.push(nc);
    return nc;
  }

  /** Until every node in `ids` answers `members` on its own subject as serving, under a serving leader. */
  async waitServing(client: ZiClient, ids: string[], timeoutMs = 30_000): Promise<MembersView> {
    let view: MembersView | null = null;
    let last = '';
    try {
      await eventually(
        async () => {
          const exited = ids.filter((id) => this.nodes.get(id)?.isRunning() === false);
          if (exited.length > 0) throw new Error(`node process exited: ${exited.join(', ')}`);
          for (const id of ids) {
            try {
              view = await client.members({ node: id, timeoutMs: 1000 });
            } catch (err) {
              last = `${id}: ${(err as Error).message}`;
              return false;
            }
            const leader = view.members.find((m) => m.id === view!.leader);
            last = `${id}: ${JSON.stringify(view.members)} leader ${view.leader}`;
            if (view.members.find((m) => m.id === id)?.state !== 'serving' || leader?.state !== 'serving') return false;
          }
          return true;
        },
        timeoutMs,
        `cluster ${this.name} serving on ${ids.join(', ')}`,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message} (last: ${last})\n${await this.logTails()}`);
    }
    return view!;
  }

  async logTails(): Promise<string> {
    const tails = await Promise.all([...this.nodes.entries()].map(async ([id, p]) => `--- ${id}:\n${await tailFile(p.logFile, 2048)}`));
    return tails.join('\n');
  }

  /** Everything this cluster started, by handle: connections, nodes (SIGTERM), then nats-server. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.connections.splice(0).map((nc) => nc.close()));
    await Promise.allSettled([...this.nodes.values()].map((p) => p.stop()));
    this.nodes.clear();
    await this.nats?.stop();
    this.nats = null;
  }

  /** The server's log written after `offset` (its length before an attempt). */
  async serverLogSince(offset: number): Promise<string> {
    return (await readFile(this.nats!.logFile, 'utf8')).slice(offset);
  }

  async serverLogLength(): Promise<number> {
    return (await readFile(this.nats!.logFile, 'utf8')).length;
  }

  /** The client connections the server holds (its /connz), with their TLS version. */
  async serverConnections(): Promise<{ name?: string; tls_version?: string; tls_cipher_suite?: string }[]> {
    const res = await fetch(`${this.nats!.monitorUrl}/connz?limit=1024`, { signal: AbortSignal.timeout(2000) });
    return ((await res.json()) as { connections: { name?: string; tls_version?: string; tls_cipher_suite?: string }[] }).connections;
  }
}

/** What connect() rejected with: its code (a NatsError's, or Node's TLS/socket error code). */
async function refusal(attempt: Promise<NatsConnection>): Promise<string> {
  try {
    const nc = await attempt;
    await nc.close();
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
  throw new Error('the connection was accepted');
}

/**
 * Plain NATS on a raw socket: read INFO, send CONNECT and PING in clear text. Returns the INFO
 * the server sent, everything it sent after our CONNECT, and how the socket ended.
 */
function plainTextClient(port: number): Promise<{ info: Record<string, unknown>; after: string; ended: string }> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: '127.0.0.1', port });
    let received = '';
    let infoLine: string | null = null;
    let ended = 'close';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`the server kept the plain-text connection open for 10 s; got ${JSON.stringify(received)}`));
    }, 10_000);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      received += chunk;
      if (infoLine === null && received.includes('\r\n')) {
        infoLine = received.slice(0, received.indexOf('\r\n'));
        received = received.slice(infoLine.length + 2);
        sock.write('CONNECT {"verbose":true,"pedantic":false,"tls_required":false,"name":"plain-text"}\r\nPING\r\n');
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => (ended = err.code ?? err.message));
    sock.on('close', () => {
      clearTimeout(timer);
      if (infoLine === null || !infoLine.startsWith('INFO ')) return reject(new Error(`no INFO from the server: ${JSON.stringify(received)}`));
      resolve({ info: JSON.parse(infoLine.slice(5)) as Record<string, unknown>, after: received, ended });
    });
  });
}

/** Puts twice, reads back from every node: the value written, at the revision the put returned. */
async function putGetEverywhere(store: ZiClient, ids: string[], key: string): Promise<void> {
  const first = await store.put(key, 'over tls, first');
  expect(Number.isInteger(first.revision) && first.revision > 0).toBe(true);
  const second = await store.put(key, 'over tls, second');
  expect(second.revision).toBeGreaterThan(first.revision);
  // A stale conditional write is refused: the revision the store compares is the one it returned.
  const stale = await store.put(key, 'stale', { ifRevision: first.revision }).catch((err: unknown) => err);
  expect(stale).toBeInstanceOf(ZiStoreError);
  expect((stale as ZiStoreError).code).toBe(409);
  for (const node of ids) {
    const got = await store.get(key, { node });
    expect(got, `get ${key} on ${node}`).not.toBeNull();
    expect(got!.text()).toBe('over tls, second');
    expect(got!.revision).toBe(second.revision);
  }
  const binary = Uint8Array.from([0, 1, 2, 253, 254, 255]);
  const third = await store.put(`${key}-bytes`, binary);
  const gotBytes = await store.get(`${key}-bytes`, { node: ids[ids.length - 1] });
  expect(Buffer.from(gotBytes!.value).equals(Buffer.from(binary))).toBe(true);
  expect(gotBytes!.revision).toBe(third.revision);
}

describe('TLS required: nodes with --tls-ca', () => {
  const c = new TlsCluster('tls', 2);
  const ids = ['n1', 'n2', 'n3'];
  let store: ZiClient;

  beforeAll(async () => {
    await c.startNats(false);
    for (const id of ids) await c.startNode(id, ['--tls-ca', certs!.ca.cert]);
    store = new ZiClient(await c.connect({ tls: { caFile: certs!.ca.cert } }), { cluster: c.name });
    await c.waitServing(store, ids);
  });

  afterAll(async () => {
    await c.stop();
  });

  it('tls - the server requires TLS, and every connection it holds (nodes and client) is TLS', async () => {
    expect(store.nc.info?.tls_required).toBe(true);
    const conns = await c.serverConnections();
    for (const id of ids) {
      const node = conns.find((x) => x.name === `zistore-${c.name}-${id}`);
      expect(node, `connection of ${id} in /connz`).toBeDefined();
    }
    expect(conns.length).toBeGreaterThanOrEqual(ids.length + 1);
    for (const conn of conns) expect(conn.tls_version, `TLS version of ${conn.name}`).toMatch(/^1\.[23]$/);
  });

  it('tls - the typed client puts and gets over TLS, through every node', async () => {
    await putGetEverywhere(store, ids, 'tls-key');
  });

  it('tls - a client speaking plain NATS is refused: the server answers only with INFO, then hangs up', async () => {
    const offset = await c.serverLogLength();
    const plain = await plainTextClient(c.nats!.port);
    expect(plain.info.tls_required).toBe(true);
    // No +OK for the verbose CONNECT, no PONG: nothing in clear text is accepted.
    expect(plain.after).toBe('');
    expect(['close', 'ECONNRESET']).toContain(plain.ended);
    await eventually(async () => /TLS handshake error/.test(await c.serverLogSince(offset)), 5000, 'the refusal in the server log');
    // nats.js with a plain nats:// URL and no CA tries TLS and does not trust the server.
    expect(await refusal(connect({ servers: c.nats!.url, reconnect: false }))).toBe(UNTRUSTED_SERVER);
  });

  it('tls - a TLS client that does not trust the CA is refused', async () => {
    expect(await refusal(connect({ servers: c.nats!.url, reconnect: false, tls: { caFile: certs!.rogueCa.cert } }))).toBe(UNTRUSTED_SERVER);
  });

  it('tls - a node without --tls-ca does not join: it stops at once (status 1), naming the certificate it cannot verify', async () => {
    const n4 = await c.startNode('n4', []);
    // A TLS refusal is not cured by retrying: the node exits instead of retrying for ever.
    const exit = await n4.exited;
    expect(exit.code).toBe(1);
    expect(await tailFile(n4.logFile, 8192)).toMatch(/unable to verify the first certificate/);
    const view = await store.members({ node: 'n1' });
    expect(view.members.map((m) => m.id).sort()).toEqual(ids);
    c.nodes.delete('n4');
  });
});

describe('mutual TLS: nats-server with verify, nodes with --tls-ca --tls-cert --tls-key', () => {
  const c = new TlsCluster('mtls', 2);
  const ids = ['n1', 'n2'];
  let store: ZiClient;

  beforeAll(async () => {
    await c.startNats(true);
    for (const id of ids) await c.startNode(id, ['--tls-ca', certs!.ca.cert, '--tls-cert', certs!.client.cert, '--tls-key', certs!.client.key]);
    store = new ZiClient(await c.connect({ tls: { caFile: certs!.ca.cert, certFile: certs!.client.cert, keyFile: certs!.client.key } }), { cluster: c.name });
    await c.waitServing(store, ids);
  });

  afterAll(async () => {
    await c.stop();
  });

  it('mtls - the server verifies client certificates, and every connection it holds is TLS', async () => {
    expect(store.nc.info?.tls_required).toBe(true);
    expect(store.nc.info?.tls_verify).toBe(true);
    const conns = await c.serverConnections();
    for (const id of ids) expect(conns.some((x) => x.name === `zistore-${c.name}-${id}`), `connection of ${id} in /connz`).toBe(true);
    for (const conn of conns) expect(conn.tls_version, `TLS version of ${conn.name}`).toMatch(/^1\.[23]$/);
  });

  it('mtls - the typed client puts and gets over mutual TLS, through every node', async () => {
    await putGetEverywhere(store, ids, 'mtls-key');
  });

  it('mtls - a client trusting the CA but without a certificate is refused', async () => {
    const offset = await c.serverLogLength();
    expect(REJECTED_CLIENT_CERT).toContain(await refusal(connect({ servers: c.nats!.url, reconnect: false, tls: { caFile: certs!.ca.cert } })));
    await eventually(async () => /client didn't provide a certificate/.test(await c.serverLogSince(offset)), 5000, 'the refusal in the server log');
  });

  it('mtls - a client certificate from another CA is refused', async () => {
    const offset = await c.serverLogLength();
    const rogue = { caFile: certs!.ca.cert, certFile: certs!.rogueClient.cert, keyFile: certs!.rogueClient.key };
    expect(REJECTED_CLIENT_CERT).toContain(await refusal(connect({ servers: c.nats!.url, reconnect: false, tls: rogue })));
    await eventually(async () => /certificate signed by unknown authority/.test(await c.serverLogSince(offset)), 5000, 'the refusal in the server log');
  });

  it('mtls - a client with a good certificate that does not trust the CA is refused, and plain NATS too', async () => {
    const untrusting = { caFile: certs!.rogueCa.cert, certFile: certs!.client.cert, keyFile: certs!.client.key };
    expect(await refusal(connect({ servers: c.nats!.url, reconnect: false, tls: untrusting }))).toBe(UNTRUSTED_SERVER);
    const plain = await plainTextClient(c.nats!.port);
    expect(plain.info).toMatchObject({ tls_required: true, tls_verify: true });
    expect(plain.after).toBe('');
    // What was written is still there for a good client.
    expect((await store.get('mtls-key'))?.text()).toBe('over tls, second');
  });
});
