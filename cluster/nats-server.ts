import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findExecutable, retryOnPortClash, SETUP_HINT, spawnManaged, waitReady, type ManagedProcess } from './child-process.ts';
import type { ClusterLogger } from './logger.ts';
import { freePort } from './ports.ts';
import { tcpExchange } from './tcp-probe.ts';
import { makeTempDir, removeTempDir, removeTempDirSync } from './temp-dir.ts';

export const DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;

export interface NatsJetStreamOptions {
  /** Default `<dir>/jetstream`. */
  storeDir?: string;
  maxMemoryBytes?: number;
  maxFileBytes?: number;
}

export interface NatsClusterRouteOptions {
  /** Cluster name; the same on every member. */
  name: string;
  /** Route listen port; a free one when omitted. */
  port?: number;
  /** Other members' route addresses: 'nats-route://127.0.0.1:P', '127.0.0.1:P' or just a port number. */
  routes: Array<string | number>;
}

export interface NatsServerOptions {
  /** Client port; a free one when omitted. */
  port?: number;
  /** Default 8 MiB. */
  maxPayloadBytes?: number;
  /** Default 64 MiB; must be >= maxPayloadBytes. */
  maxPendingBytes?: number;
  /** Server → client PING interval, seconds; default 10. */
  pingIntervalSec?: number;
  /** Missed PONGs before the server drops a client; default 3. */
  pingMax?: number;
  /** Dir for the config, the log and JetStream data. A temp dir, removed on stop(), when omitted. */
  dir?: string;
  /** server_name; default `zistore-nats-<port>` (JetStream clustering needs unique names). */
  serverName?: string;
  /** Enable JetStream (true = defaults). */
  jetstream?: boolean | NatsJetStreamOptions;
  /** Join a NATS cluster (routes). */
  cluster?: NatsClusterRouteOptions;
  /** Enable the HTTP monitoring endpoint on this port (true = a free port). */
  monitorPort?: number | true;
  /** Raw config text appended to the generated config. */
  extraConfig?: string;
  /** Start-up timeout; default 15000 ms. */
  startTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL on stop(); default 5000 ms. */
  stopGraceMs?: number;
  /** Path of nats-server; default from PATH or /usr/sbin/nats-server. */
  binary?: string;
  log?: ClusterLogger;
}

export interface NatsServerHandle {
  readonly pid: number;
  readonly port: number;
  /** 'nats://127.0.0.1:PORT' */
  readonly url: string;
  readonly serverName: string;
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** Route port when clustered. */
  readonly clusterPort?: number;
  /** 'nats-route://127.0.0.1:P' when clustered. */
  readonly routeUrl?: string;
  readonly monitorPort?: number;
  /** 'http://127.0.0.1:P' when monitoring is enabled. */
  readonly monitorUrl?: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
  /** SIGTERM, SIGKILL after the grace period, await exit; then remove the dir if we created it. */
  stop(): Promise<void>;
  /** SIGKILL now, resolves on exit. Keeps the dir (call stop() later to clean up). */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /**
   * Stop this server (SIGKILL like a crash by default, SIGTERM with `graceful`) and start a new one with the
   * same ports, name, dir and JetStream store. The new handle takes over the dir's ownership; this handle is spent.
   */
  restart(opts?: { graceful?: boolean }): Promise<NatsServerHandle>;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function routeUrl(r: string | number): string {
  if (typeof r === 'number') return `nats-route://127.0.0.1:${r}`;
  return r.includes('://') ? r : `nats-route://${r}`;
}

/** Start a nats-server on 127.0.0.1 and wait until it sends its INFO line to a TCP client. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const portsChosen = opts.port !== undefined && (opts.cluster === undefined || opts.cluster.port !== undefined) && opts.monitorPort !== true;
  return retryOnPortClash(portsChosen, () => launchNatsServer(opts, opts.dir === undefined));
}

async function launchNatsServer(opts: NatsServerOptions, ownsDir: boolean): Promise<NatsServerHandle> {
  const binary = findExecutable(opts.binary ?? 'nats-server', ['/usr/sbin/nats-server', '/usr/local/bin/nats-server']);
  if (!binary) throw new Error(`nats-server not found (not on PATH nor in /usr/sbin): ${SETUP_HINT}`);

  const maxPayload = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const maxPending = opts.maxPendingBytes ?? Math.max(64 * 1024 * 1024, maxPayload);
  if (maxPending < maxPayload) throw new Error(`maxPendingBytes (${maxPending}) must be >= maxPayloadBytes (${maxPayload})`);

  const dir = opts.dir !== undefined ? resolve(opts.dir) : await makeTempDir('nats');
  let owned = ownsDir;
  try {
    await mkdir(dir, { recursive: true });
    const port = opts.port ?? (await freePort());
    const serverName = opts.serverName ?? `zistore-nats-${port}`;
    const clusterPort = opts.cluster ? (opts.cluster.port ?? (await freePort())) : undefined;
    const monitorPort = opts.monitorPort === true ? await freePort() : opts.monitorPort;

    const lines = [
      `server_name: ${q(serverName)}`,
      `listen: "127.0.0.1:${port}"`,
      `max_payload: ${maxPayload}`,
      `max_pending: ${maxPending}`,
      `ping_interval: "${opts.pingIntervalSec ?? 10}s"`,
      `ping_max: ${opts.pingMax ?? 3}`,
      `write_deadline: "10s"`,
    ];
    if (monitorPort !== undefined) lines.push(`http: "127.0.0.1:${monitorPort}"`);
    if (opts.jetstream) {
      const js = opts.jetstream === true ? {} : opts.jetstream;
      const storeDir = js.storeDir ?? join(dir, 'jetstream');
      await mkdir(storeDir, { recursive: true });
      lines.push('jetstream {', `  store_dir: ${q(storeDir)}`);
      if (js.maxMemoryBytes !== undefined) lines.push(`  max_memory_store: ${js.maxMemoryBytes}`);
      if (js.maxFileBytes !== undefined) lines.push(`  max_file_store: ${js.maxFileBytes}`);
      lines.push('}');
    }
    if (opts.cluster) {
      const routes = opts.cluster.routes.map(routeUrl);
      lines.push(
        'cluster {',
        `  name: ${q(opts.cluster.name)}`,
        `  listen: "127.0.0.1:${clusterPort}"`,
        `  routes: [${routes.map(q).join(', ')}]`,
        '}',
      );
    }
    if (opts.extraConfig) lines.push(opts.extraConfig);
    const configFile = join(dir, 'nats-server.conf');
    await writeFile(configFile, lines.join('\n') + '\n');
    const logFile = join(dir, 'nats-server.log');

    const proc: ManagedProcess = await spawnManaged({
      name: `nats-server:${port}`,
      command: binary,
      args: ['-c', configFile],
      cwd: dir,
      logFile,
      log: opts.log,
      stopGraceMs: opts.stopGraceMs ?? 5000,
      cleanup: async () => {
        if (owned) await removeTempDir(dir);
      },
      cleanupSync: () => {
        if (owned) removeTempDirSync(dir);
      },
    });
    await waitReady({
      proc,
      what: `nats-server on 127.0.0.1:${port}`,
      timeoutMs: opts.startTimeoutMs ?? 15_000,
      intervalMs: 50,
      probe: async () => {
        // The log line tells it is *our* server that listens (another one may hold the port).
        if (!(await readFile(logFile, 'utf8')).includes('Server is ready')) return false;
        const text = await tcpExchange({ port, timeoutMs: 1000, until: (t) => t.includes('\r\n') });
        return text.startsWith('INFO ') && proc.isRunning();
      },
    });
    opts.log?.info({ pid: proc.pid, port, dir, clusterPort, monitorPort }, 'nats-server started');
    return {
      pid: proc.pid,
      port,
      url: `nats://127.0.0.1:${port}`,
      serverName,
      dir,
      configFile,
      logFile,
      clusterPort,
      routeUrl: clusterPort !== undefined ? `nats-route://127.0.0.1:${clusterPort}` : undefined,
      monitorPort,
      monitorUrl: monitorPort !== undefined ? `http://127.0.0.1:${monitorPort}` : undefined,
      exited: proc.exited,
      isRunning: () => proc.isRunning(),
      stop: () => proc.stop(),
      kill: () => proc.kill(),
      pause: () => proc.pause(),
      resume: () => proc.resume(),
      async restart(r = {}) {
        const transfer = owned;
        owned = false;
        if (!r.graceful) await proc.kill();
        await proc.stop();
        const cluster = opts.cluster ? { ...opts.cluster, port: clusterPort } : undefined;
        return launchNatsServer({ ...opts, port, dir, serverName, cluster, monitorPort }, transfer);
      },
    };
  } catch (err) {
    if (owned) await removeTempDir(dir).catch(() => {});
    throw err;
  }
}

/** GET `<monitorUrl>/healthz` until it answers 200 (JetStream ready, when enabled). */
export async function waitNatsHealthy(monitorUrl: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const res = await fetch(`${monitorUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      last = `${res.status} ${await res.text()}`;
      if (res.ok) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) throw new Error(`${monitorUrl}/healthz not healthy within ${timeoutMs} ms: ${last}`);
    await sleep(200);
  }
}

export interface NatsClusterOptions extends Omit<NatsServerOptions, 'port' | 'dir' | 'cluster' | 'monitorPort' | 'serverName' | 'jetstream'> {
  /** Number of servers; default 3. */
  size?: number;
  /** Cluster name; default 'zistore'. */
  name?: string;
  /** Enable JetStream on every member (each gets its own store dir); waits until /healthz is OK on all. */
  jetstream?: boolean | Omit<NatsJetStreamOptions, 'storeDir'>;
}

export interface NatsClusterHandle {
  readonly servers: NatsServerHandle[];
  /** Client URLs of all members. */
  readonly urls: string[];
  /** Stop every member. */
  stop(): Promise<void>;
}

/** Start `size` nats-servers routed to each other (full mesh), optionally with JetStream. */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsClusterHandle> {
  const size = opts.size ?? 3;
  const name = opts.name ?? 'zistore';
  const { size: _s, name: _n, jetstream, ...rest } = opts;
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());
  const settled = await Promise.allSettled(
    routePorts.map((routePort, i) =>
      startNatsServer({
        ...rest,
        serverName: `${name}-${i + 1}`,
        jetstream: jetstream === true ? {} : jetstream || undefined,
        monitorPort: true,
        cluster: { name, port: routePort, routes: routePorts.filter((p) => p !== routePort) },
      }),
    ),
  );
  const servers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async (): Promise<void> => {
    await Promise.allSettled(servers.map((s) => s.stop()));
  };
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  try {
    if (jetstream) await Promise.all(servers.map((s) => waitNatsHealthy(s.monitorUrl!, opts.startTimeoutMs ?? 30_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { servers, urls: servers.map((s) => s.url), stop };
}
