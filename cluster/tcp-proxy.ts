import { connect, createServer, type Socket } from 'node:net';
import type { ClusterLogger } from './logger.ts';

export type CutMode = 'close' | 'drop';

export interface TcpProxyOptions {
  target: { host: string; port: number };
  /** Port to listen on; a free one when omitted. */
  listenPort?: number;
  /** Default 127.0.0.1. */
  listenHost?: string;
  log?: ClusterLogger;
}

export interface TcpProxyHandle {
  readonly port: number;
  /** 'HOST:PORT' of the proxy, e.g. to use as a ZooKeeper connect string. */
  readonly address: string;
  readonly target: { host: string; port: number };
  /**
   * 'close' (default): destroy every current connection on both sides and reset new ones at once.
   * 'drop': keep sockets open but discard all bytes both ways; new connections are accepted
   * and never connected to the target (a black hole, like a partition without RST).
   */
  cut(mode?: CutMode): void;
  /** New connections work again; connections black-holed by a drop are destroyed so clients reconnect. */
  restore(): void;
  readonly isCut: boolean;
  readonly cutMode: CutMode | null;
  /** Client connections currently open through the proxy (including black-holed ones). */
  readonly connectionCount: number;
  /** Close the listener and destroy every connection. */
  stop(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | null;
  dropped: boolean;
}

const discard = (): void => {};

/** An in-process TCP proxy to `target` for real fault injection (cut / black-hole / restore). */
export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxyHandle> {
  const { target, log } = opts;
  const listenHost = opts.listenHost ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  let mode: CutMode | null = null;
  let stopped = false;

  const destroyPair = (p: Pair): void => {
    pairs.delete(p);
    p.client.destroy();
    p.upstream?.destroy();
  };

  // A black-holed side that its peer closes is destroyed quietly (its peer is gone anyway);
  // nothing is passed on to the other side, as in a real partition.
  const destroyOnEnd = (sock: Socket): void => {
    sock.once('end', () => sock.destroy());
  };

  const blackHole = (p: Pair): void => {
    if (p.dropped) return;
    p.dropped = true;
    if (p.upstream) {
      p.client.unpipe(p.upstream);
      p.upstream.unpipe(p.client);
      p.upstream.on('data', discard).resume();
      if (p.upstream.readableEnded) p.upstream.destroy();
      else destroyOnEnd(p.upstream);
    }
    p.client.on('data', discard).resume();
    if (p.client.readableEnded) p.client.destroy();
    else destroyOnEnd(p.client);
  };

  /** Forget a black-holed pair once both of its sockets are gone. */
  const forgetIfGone = (p: Pair): void => {
    if (p.client.destroyed && (p.upstream === null || p.upstream.destroyed)) pairs.delete(p);
  };

  const onSideClose = (p: Pair, side: Socket, other: Socket | null, hadError: boolean): void => {
    if (!pairs.has(p)) return;
    // A closing side of a black-holed connection tells the other side nothing, like a real partition.
    if (p.dropped) return forgetIfGone(p);
    // A clean EOF was passed on by pipe() (other.end()): let `other` flush what it still has to write;
    // its own 'close' removes the pair. After an error or a reset, tear both down now.
    if (!hadError && side.readableEnded && other !== null && !other.destroyed) return;
    destroyPair(p);
  };

  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    client.on('error', discard);
    if (stopped || mode === 'close') {
      if (typeof client.resetAndDestroy === 'function') client.resetAndDestroy();
      else client.destroy();
      return;
    }
    const pair: Pair = { client, upstream: null, dropped: false };
    pairs.add(pair);
    client.once('close', (hadError) => onSideClose(pair, client, pair.upstream, hadError));
    if (mode === 'drop') {
      blackHole(pair);
      return;
    }
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    pair.upstream = upstream;
    upstream.on('error', (err) => {
      if (!pair.dropped) log?.debug({ err, target }, 'tcp-proxy upstream error');
    });
    upstream.once('close', (hadError) => onSideClose(pair, upstream, client, hadError));
    client.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen({ host: listenHost, port: opts.listenPort ?? 0 }, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  server.on('error', (err) => log?.warn({ err }, 'tcp-proxy server error'));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('tcp-proxy: could not read the bound address');
  const port = addr.port;
  log?.debug({ port, target }, 'tcp-proxy listening');

  return {
    port,
    address: `${listenHost}:${port}`,
    target: { ...target },
    cut(m: CutMode = 'close') {
      if (stopped) return;
      mode = m;
      log?.info({ port, target, mode: m, connections: pairs.size }, 'tcp-proxy cut');
      if (m === 'close') for (const p of [...pairs]) destroyPair(p);
      else for (const p of pairs) blackHole(p);
    },
    restore() {
      if (stopped) return;
      log?.info({ port, target, was: mode }, 'tcp-proxy restored');
      mode = null;
      for (const p of [...pairs]) if (p.dropped) destroyPair(p);
    },
    get isCut() {
      return mode !== null;
    },
    get cutMode() {
      return mode;
    },
    get connectionCount() {
      return pairs.size;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const p of [...pairs]) destroyPair(p);
      await closed;
      log?.debug({ port }, 'tcp-proxy stopped');
    },
  };
}
