// etcd peer: a three-member etcd cluster (Debian's etcd 3.4) on loopback, spoken to over its
// HTTP/JSON gRPC gateway (`/v3/kv/put`, `/v3/kv/range`, base64 keys and values) through
// node:http with a keep-alive agent per session (no npm etcd client is installed; node's global
// fetch cannot take a keep-alive dispatcher without the undici package). Ranges are
// linearizable (the default: `serializable` false), so a read costs a ReadIndex round at the
// leader like a ZiStore read costs its lease check. Requests go to the leader member.
import { spawnSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findExecutable, spawnManaged, tailFile, type ManagedProcess } from '../../cluster/child-process.ts';
import { freePort } from '../../cluster/ports.ts';
import { makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';
import type { WatchedProcess } from '../cpu.ts';
import { GUARD_VALUE, type KvPeer, type KvSession } from './types.ts';

const MEMBERS = 3;
const REQUEST_TIMEOUT_MS = 10_000;

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  proc: ManagedProcess;
}

/** POST a JSON body to an etcd member's gateway and parse the JSON answer. */
function post<T>(agent: Agent, port: number, path: string, body: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            reject(Object.assign(new Error(`etcd ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`), { code: `HTTP${res.statusCode}` }));
            return;
          }
          try {
            resolve(JSON.parse(text) as T);
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error(`etcd ${path}: no answer in ${REQUEST_TIMEOUT_MS} ms`), { code: 'TIMEOUT' })));
    req.end(body);
  });
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Base64 of a value, cached per buffer (the load reuses one buffer per size). */
const encoded = new WeakMap<Uint8Array, string>();
function b64Value(v: Uint8Array): string {
  let s = encoded.get(v);
  if (s === undefined) {
    s = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    encoded.set(v, s);
  }
  return s;
}

interface RangeReply {
  kvs?: { value?: string }[];
}

/** A range_end of one zero byte: every key at or above the start. */
const TO_THE_END = b64('\0');
interface StatusReply {
  header?: { member_id?: string };
  leader?: string;
  version?: string;
}

class EtcdSession implements KvSession {
  constructor(
    private readonly agent: Agent,
    private readonly port: number,
  ) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    await post(this.agent, this.port, '/v3/kv/put', `{"key":"${b64(key)}","value":"${b64Value(value)}"}`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const r = await post<RangeReply>(this.agent, this.port, '/v3/kv/range', `{"key":"${b64(key)}"}`);
    const v = r.kvs?.[0];
    if (!v) return null;
    return v.value ? new Uint8Array(Buffer.from(v.value, 'base64')) : new Uint8Array(0);
  }

  async delete(key: string): Promise<void> {
    await post(this.agent, this.port, '/v3/kv/deleterange', `{"key":"${b64(key)}"}`);
  }

  async txn(guard: string, keys: string[], value: Uint8Array): Promise<void> {
    const puts = keys.map((key) => `{"request_put":{"key":"${b64(key)}","value":"${b64Value(value)}"}}`).join(',');
    const r = await post<{ succeeded?: boolean }>(
      this.agent,
      this.port,
      '/v3/kv/txn',
      `{"compare":[{"key":"${b64(guard)}","target":"VALUE","result":"EQUAL","value":"${b64Value(GUARD_VALUE)}"}],"success":[${puts}]}`,
    );
    if (r.succeeded !== true) throw new Error('etcd txn: the guard did not hold');
  }

  async scan(startKey: string, count: number): Promise<number> {
    const r = await post<RangeReply>(this.agent, this.port, '/v3/kv/range', `{"key":"${b64(startKey)}","range_end":"${TO_THE_END}","limit":${count}}`);
    return r.kvs?.length ?? 0;
  }

  /** The gateway's /v3/watch: one streamed response (a JSON object per line) on a connection of its own. */
  watch(prefix: string, onChange: (key: string) => void): Promise<() => Promise<void>> {
    const rangeEnd = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
    const body = JSON.stringify({ create_request: { key: b64(prefix), range_end: b64(rangeEnd) } });
    return new Promise((resolve, reject) => {
      let created = false;
      const req = request(
        { host: '127.0.0.1', port: this.port, path: '/v3/watch', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let pending = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            pending += chunk;
            for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
              const line = pending.slice(0, nl).trim();
              pending = pending.slice(nl + 1);
              if (line === '') continue;
              const message = JSON.parse(line) as { result?: { created?: boolean; events?: { kv: { key: string } }[] } };
              for (const e of message.result?.events ?? []) onChange(Buffer.from(e.kv.key, 'base64').toString('utf8'));
              if (message.result?.created && !created) {
                created = true;
                resolve(async () => void req.destroy());
              }
            }
          });
        },
      );
      req.on('error', (err) => {
        if (!created) reject(err);
      });
      req.end(body);
    });
  }
}

export function etcdVersion(binary: string): string {
  const out = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return /etcd Version:\s*(\S+)/.exec(out)?.[1] ?? 'unknown';
}

export async function startEtcd(): Promise<KvPeer> {
  const binary = findExecutable('etcd', ['/usr/bin/etcd', '/usr/local/bin/etcd']);
  if (!binary) throw new Error('etcd is not installed (sh bench/setup-peers.sh installs Debian\'s etcd-server)');
  const version = etcdVersion(binary);
  const dir = await makeTempDir('etcd');
  const token = `zistore-bench-${process.pid}-${Date.now()}`;
  const ports: { clientPort: number; peerPort: number }[] = [];
  for (let i = 0; i < MEMBERS; i++) ports.push({ clientPort: await freePort(), peerPort: await freePort() });
  const initialCluster = ports.map((p, i) => `e${i + 1}=http://127.0.0.1:${p.peerPort}`).join(',');
  const members: Member[] = [];
  const agents: Agent[] = [];
  const stop = async () => {
    for (const a of agents) a.destroy();
    await Promise.allSettled(members.map((m) => m.proc.stop()));
    await removeTempDir(dir).catch(() => undefined);
  };
  try {
    for (let i = 0; i < MEMBERS; i++) {
      const name = `e${i + 1}`;
      const { clientPort, peerPort } = ports[i]!;
      const proc = await spawnManaged({
        name: `etcd-${name}`,
        command: binary,
        args: [
          '--name', name,
          '--data-dir', join(dir, name),
          '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
          '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
          '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
          '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
          '--initial-cluster', initialCluster,
          '--initial-cluster-state', 'new',
          '--initial-cluster-token', token,
          // Room for the bench's writes (MVCC keeps history until compacted): compact every minute.
          '--quota-backend-bytes', String(8 * 1024 ** 3),
          '--auto-compaction-mode', 'periodic',
          '--auto-compaction-retention', '1m',
          '--logger', 'zap',
          '--log-outputs', 'stderr',
          '--log-level', 'warn',
        ],
        cwd: dir,
        logFile: join(dir, `${name}.log`),
        stopGraceMs: 5000,
      });
      members.push({ name, clientPort, peerPort, proc });
    }
    const control = new Agent({ keepAlive: true, maxSockets: 4 });
    agents.push(control);
    // Ready when every member answers a linearizable read (which needs an elected leader).
    const deadline = Date.now() + 30_000;
    for (const m of members) {
      for (;;) {
        try {
          await post(control, m.clientPort, '/v3/kv/range', `{"key":"${b64('bench/ready')}"}`);
          break;
        } catch (err) {
          if (!m.proc.isRunning()) throw new Error(`etcd member ${m.name} exited during start-up:\n${await tailFile(m.proc.logFile, 2000)}`, { cause: err });
          if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not ready within 30 s: ${(err as Error).message}`, { cause: err });
          await sleep(100);
        }
      }
    }
    // The leader member: the one whose own id is the leader it reports.
    let leader: Member | undefined;
    for (const m of members) {
      const s = await post<StatusReply>(control, m.clientPort, '/v3/maintenance/status', '{}');
      if (s.leader !== undefined && s.header?.member_id === s.leader) leader = m;
    }
    if (!leader) throw new Error('etcd: no member reports itself as the leader');
    const target = leader;
    const sessions = new Map<number, EtcdSession>();
    return {
      id: 'etcd',
      name: 'etcd',
      description: `etcd ${version}, ${MEMBERS} members on loopback, HTTP/JSON gateway`,
      durability:
        'each member appends a write to its WAL and fdatasyncs it before acknowledging it to the leader; the leader ' +
        'answers once a majority (2 of 3) has it on disk (concurrent writes share an fsync: group commit)',
      routing: `every request to the leader member (${target.name}); ranges linearizable (ReadIndex)`,
      async session(writer) {
        let s = sessions.get(writer);
        if (!s) {
          // One keep-alive agent per writer; sockets grow with the writer's requests in flight.
          const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
          agents.push(agent);
          s = new EtcdSession(agent, target.clientPort);
          sessions.set(writer, s);
        }
        return s;
      },
      watched: (): WatchedProcess[] => members.map((m) => ({ name: `etcd-${m.name}`, pid: m.proc.pid })),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
