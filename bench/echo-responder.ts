// The floor every table compares against: a bare NATS request-reply responder in its own Node
// process, shaped like a ZiStore exchange but doing no work. A request on
// `bench.echo.<replyBytes>` is answered with a preallocated body of that many bytes and a
// `Zi-Revision` header, as a `get` is; `bench.echo.0` answers like a `put`.
//   node --import tsx bench/echo-responder.ts nats://127.0.0.1:4222
import { connect, headers as natsHeaders } from 'nats';

const ECHO_PREFIX = 'bench.echo';

async function main(): Promise<void> {
  const url = process.argv[2];
  if (!url) throw new Error('usage: echo-responder.ts NATS_URL');
  const nc = await connect({ servers: url, name: 'zistore-bench-echo' });
  const bodies = new Map<number, Uint8Array>();
  nc.subscribe(`${ECHO_PREFIX}.*`, {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const size = Number(msg.subject.slice(ECHO_PREFIX.length + 1));
      let body = bodies.get(size);
      if (body === undefined) {
        body = new Uint8Array(Number.isSafeInteger(size) && size > 0 ? size : 0).fill(0x61);
        bodies.set(size, body);
      }
      const h = natsHeaders();
      h.set('Zi-Revision', '1');
      msg.respond(body, { headers: h });
    },
  });
  await nc.flush();
  const stop = () => void nc.close().finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await nc.closed();
}

main().catch((err: unknown) => {
  process.stderr.write(`echo-responder: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
