import { existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, freePorts } from '../../cluster/ports.ts';
import { startTcpProxy } from '../../cluster/tcp-proxy.ts';
import { isOurTempDir, makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';

let echo: Server;
let echoPort = 0;
const serverSockets = new Set<Socket>();

beforeAll(async () => {
  echo = createServer((s) => {
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of serverSockets) s.destroy();
  await new Promise<void>((r) => echo.close(() => r()));
});

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

/** Connect, send `text`, resolve with what came back within `ms` ('' if nothing), or 'closed'/'error'. */
async function roundTrip(port: number, text: string, ms = 300): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (v: string): void => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(got), ms);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(text));
    s.on('data', (d: string) => {
      got += d;
      if (got === text) done(got);
    });
    s.on('error', () => done('error'));
    s.on('close', () => done(got === '' ? 'closed' : got));
  });
}

describe('cluster helpers (unit)', () => {
  it('freePort - returns distinct bindable ports', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    const p = await freePort();
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(p, '127.0.0.1', () => r()));
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('temp-dir - makes zistore- dirs under tmpdir and refuses to remove anything else', async () => {
    const d = await makeTempDir('unit');
    expect(d.startsWith(tmpdir())).toBe(true);
    expect(isOurTempDir(d)).toBe(true);
    await removeTempDir(d);
    expect(existsSync(d)).toBe(false);
    await expect(removeTempDir('/etc')).rejects.toThrow(/refusing/);
    await expect(removeTempDir(tmpdir())).rejects.toThrow(/refusing/);
  });

  it('tcp proxy - forwards, cuts with close and drop, restores, and stops cleanly', async () => {
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echoPort } });
    try {
      expect(await roundTrip(proxy.port, 'hello')).toBe('hello');

      // A long-lived connection is destroyed by cut('close').
      const live = connect(proxy.port, '127.0.0.1');
      live.on('error', () => {});
      await new Promise((r) => live.once('connect', r));
      await sleep(20);
      expect(proxy.connectionCount).toBe(1);
      const liveClosed = new Promise((r) => live.once('close', r));
      proxy.cut('close');
      await liveClosed;
      expect(proxy.connectionCount).toBe(0);
      expect(['closed', 'error']).toContain(await roundTrip(proxy.port, 'x'));

      proxy.restore();
      expect(await roundTrip(proxy.port, 'again')).toBe('again');
      await until(() => proxy.connectionCount === 0);

      // drop: accepted, but nothing comes back; the connection stays open.
      proxy.cut('drop');
      expect(await roundTrip(proxy.port, 'void', 300)).toBe('');
      const held = connect(proxy.port, '127.0.0.1');
      held.on('error', () => {});
      await new Promise((r) => held.once('connect', r));
      held.write('lost');
      await until(() => proxy.connectionCount === 1); // the closed 'void' connection is forgotten
      expect(held.destroyed).toBe(false);
      const heldClosed = new Promise((r) => held.once('close', r));
      proxy.restore(); // black-holed connections are destroyed so clients reconnect
      await heldClosed;
      expect(await roundTrip(proxy.port, 'works')).toBe('works');
    } finally {
      await proxy.stop();
    }
    expect(proxy.connectionCount).toBe(0);
    expect(await roundTrip(proxy.port, 'x')).toMatch(/closed|error/);
  });

  it('tcp proxy - an existing connection is black-holed by drop, both ways', async () => {
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echoPort } });
    try {
      const s = connect(proxy.port, '127.0.0.1');
      s.on('error', () => {});
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (got += d));
      await new Promise((r) => s.once('connect', r));
      s.write('a');
      await sleep(50);
      expect(got).toBe('a');
      proxy.cut('drop');
      s.write('b');
      await sleep(100);
      expect(got).toBe('a');
      expect(s.destroyed).toBe(false);
      s.destroy();
    } finally {
      await proxy.stop();
    }
  });

  it('tcp proxy - delivers everything the target wrote before closing', async () => {
    const size = 16 * 1024 * 1024;
    const blob = createServer((sock) => {
      sock.on('error', () => {});
      sock.end(Buffer.alloc(size, 3));
    });
    await new Promise<void>((r) => blob.listen(0, '127.0.0.1', () => r()));
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: (blob.address() as { port: number }).port } });
    try {
      const received = await new Promise<number>((resolve, reject) => {
        const c = connect(proxy.port, '127.0.0.1');
        let n = 0;
        c.on('data', (b: Buffer) => (n += b.length));
        c.on('end', () => (c.end(), resolve(n)));
        c.on('error', reject);
      });
      expect(received).toBe(size);
      await until(() => proxy.connectionCount === 0);
    } finally {
      await proxy.stop();
      await new Promise<void>((r) => blob.close(() => r()));
    }
  });
});
