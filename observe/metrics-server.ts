// The Prometheus scrape endpoint of one node: GET /metrics on a small node:http server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Log } from '../actors/ports.ts';

export interface MetricsServerOptions {
  registry: Registry;
  port: number;
  /** Interface to listen on; all of them when omitted (Prometheus scrapes from elsewhere). */
  host?: string;
  log: Log;
}

export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  /** http://host:port/metrics (127.0.0.1 when listening on every interface). */
  readonly url: string;
  close(): Promise<void>;
}

/** `--metrics-port` takes PORT or HOST:PORT; PORT alone listens on every interface. */
export function parseMetricsAddress(text: string): { host: string | undefined; port: number } | null {
  const match = /^(?:(.+):)?(\d{1,5})$/.exec(text);
  if (!match) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  const host = match[1]?.replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry, log } = options;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        log.error({ err }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  server.on('clientError', (err, socket) => {
    log.debug({ err }, 'metrics client error');
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host: options.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics server error'));
  const address = server.address() as AddressInfo;
  const wildcard = options.host === undefined || options.host === '0.0.0.0' || options.host === '::';
  const urlHost = wildcard ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    host: address.address,
    port: address.port,
    url: `http://${urlHost}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
