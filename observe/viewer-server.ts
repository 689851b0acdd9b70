// The inspector's viewer: subscribes to `zistore.<cluster>.inspect.>` on NATS, keeps a
// ViewerState, and serves on a small node:http server
//   GET /        the page (observe/viewer-page.html: inline JS and CSS, nothing from the internet)
//   GET /events  server-sent events: the whole state, at most every pushMs while it changes
//   GET /state   the same state as JSON (for tests and scripts)
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NatsConnection, Subscription } from 'nats';
import type { Log } from '../actors/ports.ts';
import { inspectSubjects } from './subjects.ts';
import { defaultViewerLimits, isInspectBatch, ViewerState, type ViewerLimits } from './viewer-state.ts';

export interface ViewerOptions {
  nc: NatsConnection;
  cluster: string;
  /** 0 (default): a free port. */
  port?: number;
  /** Default 127.0.0.1: the page shows keys and is for this machine. */
  host?: string;
  log: Log;
  pushMs?: number;
  limits?: Partial<ViewerLimits>;
}

export interface Viewer {
  readonly url: string;
  readonly port: number;
  readonly state: ViewerState;
  close(): Promise<void>;
}

const CLIENTS_MAX = 32;
/** Pushed even without news, so the page notices nodes going quiet. */
const IDLE_PUSH_MS = 1000;

let pageCache: string | null = null;
function page(): string {
  pageCache ??= readFileSync(new URL('./viewer-page.html', import.meta.url), 'utf8');
  return pageCache;
}

export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  const { nc, cluster, log } = options;
  const state = new ViewerState(cluster, { ...defaultViewerLimits, ...options.limits });
  const pushMs = options.pushMs ?? 100;
  const decoder = new TextDecoder();

  const sub: Subscription = nc.subscribe(inspectSubjects.all(cluster), {
    callback: (err, msg) => {
      if (err) {
        log.warn({ err }, 'inspect subscription error');
        return;
      }
      try {
        const batch: unknown = JSON.parse(decoder.decode(msg.data));
        if (isInspectBatch(batch)) state.apply(batch, Date.now());
        else log.debug({ subject: msg.subject }, 'ignored a message that is not an inspect batch');
      } catch (e) {
        log.debug({ err: e, subject: msg.subject }, 'bad inspect batch');
      }
    },
  });

  const clients = new Set<{ res: ServerResponse; blocked: boolean }>();
  let pushedVersion = -1;
  let pushedAt = 0;
  const push = () => {
    const now = Date.now();
    if (state.version === pushedVersion && now - pushedAt < IDLE_PUSH_MS) return;
    if (clients.size === 0) return;
    pushedVersion = state.version;
    pushedAt = now;
    const frame = `data: ${JSON.stringify(state.toJSON(now))}\n\n`;
    for (const client of clients) {
      // A slow page skips frames until its socket drains; each frame is the whole state.
      if (client.blocked) continue;
      if (!client.res.write(frame)) {
        client.blocked = true;
        client.res.once('drain', () => (client.blocked = false));
      }
    }
  };
  const timer = setInterval(push, pushMs);
  timer.unref();

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page());
        return;
      case '/state':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(state.toJSON(Date.now())));
        return;
      case '/events': {
        if (clients.size >= CLIENTS_MAX) {
          res.writeHead(503, { 'content-type': 'text/plain' }).end('too many viewers\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write('retry: 1000\n\n');
        const client = { res, blocked: false };
        clients.add(client);
        req.on('close', () => clients.delete(client));
        res.write(`data: ${JSON.stringify(state.toJSON(Date.now()))}\n\n`);
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.on('clientError', (err, socket) => {
    log.debug({ err }, 'viewer client error');
    socket.destroy();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    clearInterval(timer);
    sub.unsubscribe();
    throw err;
  }
  server.on('error', (err) => log.error({ err }, 'viewer server error'));
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    state,
    close: async () => {
      clearInterval(timer);
      sub.unsubscribe();
      for (const c of clients) c.res.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
