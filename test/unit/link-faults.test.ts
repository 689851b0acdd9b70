// Goal: the in-process link faults `zistore up` relies on really cut sockets: 'close' destroys
// the sockets to the link's servers (the server sees them close) and refuses new connects;
// 'drop' black-holes them both ways without telling the client; restore lets connects through
// and closes black-holed sockets so clients reconnect; other connections are never touched.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { installLinkFaults, natsEndpoints, zkEndpoints, type LinkFaults } from '../../cluster/link-faults.ts';

interface Server {
  port: number;
  sockets: net.Socket[];
  received: string[];
  close(): Promise<void>;
}

async function echoServer(greeting = ''): Promise<Server> {
  const sockets: net.Socket[] = [];
  const received: string[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      received.push(String(d));
      s.write(d);
    });
    if (greeting) s.write(greeting);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function open(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

function events(s: net.Socket) {
  const seen = { data: '', closed: false, ended: false };
  s.on('data', (d) => (seen.data += String(d)));
  s.on('end', () => (seen.ended = true));
  s.on('close', () => (seen.closed = true));
  s.on('error', () => undefined);
  return seen;
}

let faults: LinkFaults | null = null;
const servers: Server[] = [];
afterEach(async () => {
  faults?.uninstall();
  faults = null;
  for (const s of servers.splice(0)) await s.close();
});

describe('link faults', () => {
  it('parses NATS URLs and ZooKeeper connect strings', () => {
    expect(natsEndpoints(['nats://127.0.0.1:4222', 'localhost', 'tls://h:1'])).toEqual([
      { host: '127.0.0.1', port: 4222 },
      { host: 'localhost', port: 4222 },
      { host: 'h', port: 1 },
    ]);
    expect(zkEndpoints('127.0.0.1:2181,h:2/chroot')).toEqual([
      { host: '127.0.0.1', port: 2181 },
      { host: 'h', port: 2 },
    ]);
  });

  it("'close' destroys the link's sockets and refuses new connects until restored; other links are untouched", async () => {
    const nats = await echoServer();
    const other = await echoServer();
    servers.push(nats, other);
    faults = installLinkFaults({ nats: [{ host: 'localhost', port: nats.port }], zk: [] });
    const a = await open(nats.port);
    const b = await open(other.port);
    const seenA = events(a);
    const seenB = events(b);
    expect(faults.socketCount('nats')).toBe(1);

    expect(faults.set('nats', 'close')).toBe(1);
    await sleep(50);
    expect(seenA.closed).toBe(true);
    // The server really sees its side end.
    expect(nats.sockets[0]!.readableEnded || nats.sockets[0]!.destroyed).toBe(true);
    await expect(open(nats.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(nats.sockets).toHaveLength(1);

    b.write('still');
    await sleep(50);
    expect(seenB.data).toBe('still');
    expect(seenB.closed).toBe(false);

    faults.set('nats', null);
    const c = await open(nats.port);
    const seenC = events(c);
    c.write('back');
    await sleep(50);
    expect(seenC.data).toBe('back');
    c.destroy();
    b.destroy();
  });

  it("'drop' black-holes both ways without telling the client; restore closes the socket", async () => {
    const zk = await echoServer();
    servers.push(zk);
    faults = installLinkFaults({ nats: [], zk: [{ host: '127.0.0.1', port: zk.port }] });
    const a = await open(zk.port);
    const seen = events(a);
    a.write('before');
    await sleep(50);
    expect(seen.data).toBe('before');

    expect(faults.set('zk', 'drop')).toBe(1);
    let written = false;
    a.write('lost', () => (written = true));
    zk.sockets[0]!.write('unseen');
    await sleep(50);
    expect(written).toBe(true);
    expect(zk.received.join('')).toBe('before');
    expect(seen.data).toBe('before');
    // The server closing its side is not reported either.
    zk.sockets[0]!.destroy();
    await sleep(50);
    expect(seen.closed).toBe(false);
    expect(seen.ended).toBe(false);

    // New connects are accepted and black-holed at once.
    const b = await open(zk.port);
    const seenB = events(b);
    b.write('nothing');
    await sleep(50);
    expect(zk.sockets).toHaveLength(2);
    expect(zk.received.join('')).toBe('before');

    expect(faults.set('zk', null)).toBe(2);
    await sleep(50);
    expect(seen.closed).toBe(true);
    expect(seenB.closed).toBe(true);
    const c = await open(zk.port);
    const seenC = events(c);
    c.write('again');
    await sleep(50);
    expect(seenC.data).toBe('again');
    c.destroy();
  });

  it("'close' after 'drop' tells the client at once", async () => {
    const nats = await echoServer();
    servers.push(nats);
    faults = installLinkFaults({ nats: [{ host: '127.0.0.1', port: nats.port }], zk: [] });
    const a = await open(nats.port);
    const seen = events(a);
    faults.set('nats', 'drop');
    faults.set('nats', 'close');
    await sleep(50);
    expect(seen.closed).toBe(true);
    await expect(open(nats.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
