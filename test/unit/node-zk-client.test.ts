// Goal: closing the ZooKeeper client while its connect is still pending never ends the process.
// node-zookeeper-client, once closed (CLOSING), reads the server's connect response as a reply to
// its close request and throws from its socket handler: an uncaught exception (seen in CI as a
// node exiting 1 on a SIGTERM right after it started).
// Method: a TCP server standing in for ZooKeeper takes the connect request, waits until the
// client is being closed, then sends a well-formed connect response.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Log } from '../../actors/ports.ts';
import { createNodeZkClient } from '../../coordination/node-zk-client.ts';

const silent: Log = { child: () => silent, debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, fatal: () => {} };

/** A ConnectResponse frame: protocol version, timeout, session id (low bits not a ZooKeeper error code), password. */
function connectResponse(): Buffer {
  const body = Buffer.alloc(4 + 4 + 8 + 4 + 16);
  body.writeInt32BE(0, 0);
  body.writeInt32BE(2000, 4);
  body.writeBigInt64BE(0x0123_4567_5a5a_5a5an, 8);
  body.writeInt32BE(16, 16);
  const frame = Buffer.alloc(4);
  frame.writeInt32BE(body.length, 0);
  return Buffer.concat([frame, body]);
}

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe('node zk client', () => {
  it('node zk client - a close while the connect is pending: the late connect response ends nothing, and close resolves', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const server = createServer();
      servers.push(server);
      const connectRequest = new Promise<Socket>((resolve) => server.on('connection', (socket) => socket.once('data', () => resolve(socket))));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;

      const zk = createNodeZkClient({ connectString: `127.0.0.1:${port}`, sessionTimeoutMs: 2000, closeTimeoutMs: 500, log: silent });
      zk.connect();
      const socket = await connectRequest;
      const closing = zk.close();
      socket.write(connectResponse());
      await closing;
      // Whatever the library makes of the response happens on the socket's next reads.
      await new Promise((r) => setTimeout(r, 100));
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
