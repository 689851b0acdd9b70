// The floors every table compares against: bare NATS request-reply responders in their own Node
// processes, shaped like ZiStore exchanges but doing no work.
//   node --import tsx bench/echo-responder.ts NATS_URL INDEX COUNT
// Responder INDEX (of COUNT) serves:
//   bench.echo.<INDEX>.<replyBytes>            answer with a preallocated body of replyBytes and a
//                                              `Zi-Revision` header: a `get` (replyBytes = value size)
//                                              or a `put` (0) without the store.
//   bench.relay.<INDEX>.<fanout>.<replyBytes>  first send the request body to the next `fanout`
//                                              responders (bench.echo.<j>.0) in parallel, then answer
//                                              as above: the message pattern of a replicated put
//                                              (client → leader → every follower → leader → client)
//                                              without the store.
import { connect, headers as natsHeaders, type Msg } from 'nats';
import { RequestMux } from '../bus/request-mux.ts';

async function main(): Promise<void> {
  const [url, indexText, countText] = process.argv.slice(2);
  const index = Number(indexText ?? 0);
  const count = Number(countText ?? 1);
  if (!url || !Number.isInteger(index) || !Number.isInteger(count) || index < 0 || index >= count) {
    throw new Error('usage: echo-responder.ts NATS_URL INDEX COUNT');
  }
  const nc = await connect({ servers: url, name: `zistore-bench-echo-${index}` });
  // Relayed requests take the path a ZiStore leader's replication requests take.
  const relay = new RequestMux(nc);
  const bodies = new Map<number, Uint8Array>();
  const body = (size: number): Uint8Array => {
    let b = bodies.get(size);
    if (b === undefined) {
      b = new Uint8Array(Number.isSafeInteger(size) && size > 0 ? size : 0).fill(0x61);
      bodies.set(size, b);
    }
    return b;
  };
  const answer = (msg: Msg, replyBytes: number): void => {
    const h = natsHeaders();
    h.set('Zi-Revision', '1');
    msg.respond(body(replyBytes), { headers: h });
  };

  nc.subscribe(`bench.echo.${index}.*`, {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      answer(msg, Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1)));
    },
  });
  nc.subscribe(`bench.relay.${index}.*.*`, {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const [, , , fanoutText, replyText] = msg.subject.split('.');
      const fanout = Math.min(Number(fanoutText), count - 1);
      const peers = Array.from({ length: fanout }, (_, k) => (index + 1 + k) % count);
      Promise.all(peers.map((j) => relay.request(`bench.echo.${j}.0`, msg.data, 5000))).then(
        () => answer(msg, Number(replyText)),
        (e: unknown) => process.stderr.write(`relay failed: ${String(e)}\n`),
      );
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
