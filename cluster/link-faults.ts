// Link faults injected inside a node process: how `zistore up` cuts a node's NATS or ZooKeeper
// link without a proxy between the node and the servers (so a healthy link costs no extra hop).
//
// The launcher (LocalCluster with `faults: 'socket'`) starts `zistore node` with an IPC channel
// and the variable ZISTORE_LINK_FAULTS (the faults in force at start, JSON). The node then wraps
// net.Socket.prototype.connect, remembers the sockets it opens to its NATS servers and ZooKeeper
// servers (matched by port and host), and obeys the launcher's messages:
//   - 'close': destroy those sockets now (the servers see them close: FIN) and refuse every new
//     connect to those servers with ECONNREFUSED until restored;
//   - 'drop': a black hole, like a partition without RST: the sockets stay open but nothing is
//     read from them or written to them, their closing is not reported to the client library,
//     and new connects are made and black-holed at once;
//   - restore (mode null): new connects work again; black-holed sockets are destroyed so the
//     client libraries reconnect (as TcpProxyHandle.restore does).
// Nothing changes on the data path while no fault is in force: the wrapper only runs at connect.
import net from 'node:net';
import type { CutMode } from './tcp-proxy.ts';

export type LinkName = 'nats' | 'zk';
export type LinkFaultState = Record<LinkName, CutMode | null>;

/** Set by the launcher: the faults in force when the node starts (JSON LinkFaultState). */
export const LINK_FAULTS_ENV = 'ZISTORE_LINK_FAULTS';

/** Launcher → node over the IPC channel. */
export interface LinkFaultMessage {
  zistore: 'link-fault';
  seq: number;
  link: LinkName;
  mode: CutMode | null;
}

/** Node → launcher: the message `seq` is in force; `sockets` were cut or black-holed by it. */
export interface LinkFaultAck {
  zistore: 'link-fault-ack';
  seq: number;
  sockets: number;
}

export interface Endpoint {
  host: string;
  port: number;
}

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LinkFaults {
  /** Put `mode` in force on `link` (null restores it); returns the sockets it cut or black-holed. */
  set(link: LinkName, mode: CutMode | null): number;
  state(): LinkFaultState;
  /** Open sockets of `link` this hook knows about (including black-holed ones). */
  socketCount(link: LinkName): number;
  /** Put net.Socket.prototype.connect back (tests). Open sockets keep their current state. */
  uninstall(): void;
}

export function isLinkFaultMessage(m: unknown): m is LinkFaultMessage {
  const o = m as Partial<LinkFaultMessage> | null;
  return typeof o === 'object' && o !== null && o.zistore === 'link-fault' && typeof o.seq === 'number' && (o.link === 'nats' || o.link === 'zk') && (o.mode === null || o.mode === 'close' || o.mode === 'drop');
}

export function isLinkFaultAck(m: unknown): m is LinkFaultAck {
  const o = m as Partial<LinkFaultAck> | null;
  return typeof o === 'object' && o !== null && o.zistore === 'link-fault-ack' && typeof o.seq === 'number';
}

/** 'nats://h:p', 'tls://h:p' or 'h:p' (port 4222 when omitted). */
export function natsEndpoints(urls: string[]): Endpoint[] {
  return urls.map((u) => {
    const url = new URL(u.includes('://') ? u : `nats://${u}`);
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 4222 : Number(url.port) };
  });
}

/** 'h:p,h:p[/chroot]'. */
export function zkEndpoints(connectString: string): Endpoint[] {
  const hosts = connectString.split('/')[0]!;
  return hosts.split(',').filter(Boolean).map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '']);
const sameHost = (a: string, b: string) => a === b || (LOOPBACK.has(a) && LOOPBACK.has(b));

/** The host and port a call of Socket#connect asks for (null for a path, i.e. a Unix socket). */
function connectTarget(args: unknown[]): Endpoint | null {
  let first = args[0];
  // net.connect() passes its normalized arguments as one array.
  if (Array.isArray(first)) first = first[0];
  if (typeof first === 'object' && first !== null) {
    const o = first as { port?: unknown; host?: unknown; path?: unknown };
    if (o.path !== undefined || o.port === undefined) return null;
    return { host: typeof o.host === 'string' ? o.host : 'localhost', port: Number(o.port) };
  }
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    return { host: typeof args[1] === 'string' ? args[1] : 'localhost', port: Number(first) };
  }
  return null;
}

interface Hole {
  link: LinkName;
  /** The client library closed the socket itself: its events pass again. */
  local: boolean;
  /** A 'close' the client library was not told about (it learns on restore). */
  swallowedClose: boolean;
  saved: Pick<net.Socket, 'emit' | 'write' | 'end' | 'destroy'>;
}

const PASSING_EVENTS = new Set(['connect', 'ready', 'lookup', 'timeout', 'connectionAttempt', 'connectionAttemptFailed', 'connectionAttemptTimeout']);

/**
 * Wrap net.Socket.prototype.connect for this process. One installation per process at a time.
 */
export function installLinkFaults(opts: { nats: Endpoint[]; zk: Endpoint[]; initial?: Partial<LinkFaultState>; log?: Log }): LinkFaults {
  const endpoints: Record<LinkName, Endpoint[]> = { nats: opts.nats, zk: opts.zk };
  const mode: LinkFaultState = { nats: opts.initial?.nats ?? null, zk: opts.initial?.zk ?? null };
  const open: Record<LinkName, Set<net.Socket>> = { nats: new Set(), zk: new Set() };
  const holes = new Map<net.Socket, Hole>();
  const original = net.Socket.prototype.connect;

  const classify = (target: Endpoint | null): LinkName | null => {
    if (target === null) return null;
    for (const link of ['nats', 'zk'] as const) {
      if (endpoints[link].some((e) => e.port === target.port && sameHost(e.host, target.host))) return link;
    }
    return null;
  };

  const blackHole = (sock: net.Socket, link: LinkName): void => {
    if (holes.has(sock) || sock.destroyed) return;
    const hole: Hole = { link, local: false, swallowedClose: false, saved: { emit: sock.emit, write: sock.write, end: sock.end, destroy: sock.destroy } };
    holes.set(sock, hole);
    // Read nothing more: bytes wait in the kernel, and so does a FIN or RST from the server.
    sock.pause();
    sock.write = function write(this: net.Socket, _chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
      const done = typeof encoding === 'function' ? encoding : cb;
      if (typeof done === 'function') process.nextTick(done as (err?: Error | null) => void, null);
      return true;
    } as net.Socket['write'];
    // Closing a black-holed connection is local: the server never hears of it.
    sock.end = function end(this: net.Socket): net.Socket {
      hole.local = true;
      return hole.saved.destroy.call(this);
    } as net.Socket['end'];
    sock.destroy = function destroy(this: net.Socket, err?: Error): net.Socket {
      hole.local = true;
      return hole.saved.destroy.call(this, err);
    };
    sock.emit = function emit(this: net.Socket, event: string | symbol, ...args: unknown[]): boolean {
      if (hole.local || (typeof event === 'string' && PASSING_EVENTS.has(event))) return (hole.saved.emit as (e: string | symbol, ...a: unknown[]) => boolean).call(this, event, ...args);
      if (event === 'close') hole.swallowedClose = true;
      return false;
    } as net.Socket['emit'];
  };

  const unHole = (sock: net.Socket, hole: Hole): void => {
    holes.delete(sock);
    for (const name of ['emit', 'write', 'end', 'destroy'] as const) {
      if (Object.prototype.hasOwnProperty.call(sock, name)) delete (sock as unknown as Record<string, unknown>)[name];
      if (sock[name] !== hole.saved[name]) (sock as unknown as Record<string, unknown>)[name] = hole.saved[name];
    }
  };

  const refuse = (sock: net.Socket, target: Endpoint): void => {
    const err = Object.assign(new Error(`connect ECONNREFUSED ${target.host}:${target.port} (link cut)`), {
      code: 'ECONNREFUSED',
      errno: -111,
      syscall: 'connect',
      address: target.host,
      port: target.port,
    });
    process.nextTick(() => sock.destroy(err));
  };

  const connect = function connect(this: net.Socket, ...args: unknown[]): net.Socket {
    const target = connectTarget(args);
    const link = classify(target);
    if (link === null) return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    const m = mode[link];
    if (m === 'close') {
      refuse(this, target!);
      return this;
    }
    open[link].add(this);
    this.once('close', () => open[link].delete(this));
    const result = (original as (...a: unknown[]) => net.Socket).apply(this, args);
    if (m === 'drop') blackHole(this, link);
    return result;
  } as net.Socket['connect'];
  net.Socket.prototype.connect = connect;

  return {
    set(link, m) {
      const was = mode[link];
      mode[link] = m;
      let touched = 0;
      if (m === 'close') {
        for (const sock of [...open[link]]) {
          const hole = holes.get(sock);
          if (hole) {
            // Cut for good: the client library learns of it now.
            unHole(sock, hole);
            if (hole.swallowedClose) sock.emit('close', true);
          }
          sock.destroy();
          touched++;
        }
        // Sockets closed while black-holed are no longer open but their client still waits.
        for (const [sock, hole] of [...holes]) {
          if (hole.link !== link) continue;
          unHole(sock, hole);
          if (hole.swallowedClose) sock.emit('close', true);
        }
      } else if (m === 'drop') {
        for (const sock of open[link]) {
          blackHole(sock, link);
          touched++;
        }
      } else {
        for (const [sock, hole] of [...holes]) {
          if (hole.link !== link) continue;
          unHole(sock, hole);
          if (hole.swallowedClose) sock.emit('close', true);
          else sock.destroy();
          touched++;
        }
      }
      opts.log?.info({ link, mode: m, was, sockets: touched }, m === null ? 'link restored' : 'link cut');
      return touched;
    },
    state: () => ({ ...mode }),
    socketCount: (link) => open[link].size,
    uninstall() {
      if (net.Socket.prototype.connect === connect) net.Socket.prototype.connect = original;
    },
  };
}

/**
 * In a node started by a launcher that injects link faults (IPC channel and ZISTORE_LINK_FAULTS
 * set): install the hook and obey the launcher's messages. Otherwise null, and nothing changes.
 */
export function startLinkFaultControl(opts: { nats: string[]; zk: string; log?: Log }): LinkFaults | null {
  const raw = process.env[LINK_FAULTS_ENV];
  if (raw === undefined || typeof process.send !== 'function') return null;
  let initial: Partial<LinkFaultState> = {};
  try {
    initial = JSON.parse(raw) as Partial<LinkFaultState>;
  } catch {
    opts.log?.warn({ value: raw }, `${LINK_FAULTS_ENV} is not JSON; starting with every link up`);
  }
  const faults = installLinkFaults({ nats: natsEndpoints(opts.nats), zk: zkEndpoints(opts.zk), initial, log: opts.log });
  process.on('message', (message: unknown) => {
    if (!isLinkFaultMessage(message)) return;
    const sockets = faults.set(message.link, message.mode);
    const ack: LinkFaultAck = { zistore: 'link-fault-ack', seq: message.seq, sockets };
    if (process.connected) process.send?.(ack);
  });
  // The channel alone must not keep the process alive; a launcher gone is no reason to stop.
  process.channel?.unref();
  opts.log?.info({ initial: faults.state() }, 'link faults under the launcher\'s control');
  return faults;
}
