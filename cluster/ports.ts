import { createServer } from 'node:net';

/** Ports handed out recently by freePort() in this process, so two calls never return the same one. */
const recentlyGiven = new Map<number, number>();
const REMEMBER_MS = 60_000;

function listenOnce(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolvePort(port) : reject(new Error('could not read the bound port'))));
    });
  });
}

/**
 * A TCP port that is free on `host` (default 127.0.0.1) right now: the kernel picks one,
 * we release it and return it. Another process may still grab it before you bind it;
 * within this process the same port is not returned twice in a row of calls within a minute.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const now = Date.now();
  for (const [port, at] of recentlyGiven) if (now - at > REMEMBER_MS) recentlyGiven.delete(port);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(host);
    if (!recentlyGiven.has(port)) {
      recentlyGiven.set(port, now);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused port after 50 attempts');
}

/** `count` distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(await freePort(host));
  return out;
}
