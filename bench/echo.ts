// The NATS echo peers: spawn COUNT responders (bench/echo-responder.ts) on the cluster's
// nats-server and build closed-loop operations against them that mirror ZiStore's messages.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { RequestMux } from '../bus/request-mux.ts';
import { spawnManaged, type ManagedProcess } from '../cluster/child-process.ts';
import type { Operation } from './load.ts';

const BENCH_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)));

export interface EchoPeers {
  readonly pids: number[];
  stop(): Promise<void>;
}

/** Start `count` responders and wait until each answers. */
export async function startEchoPeers(nc: NatsConnection, natsUrl: string, logDir: string, count: number): Promise<EchoPeers> {
  const procs: ManagedProcess[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
  };
  try {
    for (let i = 0; i < count; i++) {
      procs.push(
        await spawnManaged({
          name: `bench-echo-${i}`,
          command: process.execPath,
          args: ['--import', 'tsx', join(BENCH_DIR, 'echo-responder.ts'), natsUrl, String(i), String(count)],
          cwd: resolve(BENCH_DIR, '..'),
          logFile: join(logDir, `echo-responder-${i}.log`),
          stopGraceMs: 2000,
        }),
      );
    }
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < count; i++) {
      for (;;) {
        try {
          await nc.request(`bench.echo.${i}.0`, new Uint8Array(0), { timeout: 500 });
          break;
        } catch (err) {
          if (!procs[i]!.isRunning()) throw new Error(`echo responder ${i} exited during start-up (log ${join(logDir, `echo-responder-${i}.log`)})`, { cause: err });
          if (Date.now() > deadline) throw new Error(`echo responder ${i} did not answer within 20 s`, { cause: err });
          await sleep(100);
        }
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { pids: procs.map((p) => p.pid), stop };
}

export interface EchoShape {
  /** Sent as the request body (a put's value; empty for a get). */
  requestBody: Uint8Array;
  /** Bytes in the reply body (a get's value; 0 for a put). */
  replyBytes: number;
  /** 0: plain echo; n: the first responder relays to n others before it answers (a replicated put). */
  fanout?: number;
}

/** One request mux per connection, as ZiStore's client keeps one. */
const muxes = new WeakMap<NatsConnection, RequestMux>();
function muxOf(nc: NatsConnection): RequestMux {
  let mux = muxes.get(nc);
  if (mux === undefined) {
    mux = new RequestMux(nc);
    muxes.set(nc, mux);
  }
  return mux;
}

/**
 * An echo exchange with a `Zi-Key` header, like a ZiStore request, to responder 0. It goes
 * through the same request path as ZiStore's client (bus/request-mux.ts), so that the floor
 * differs from a ZiStore request only by what the store does.
 */
export function echoOperation(nc: NatsConnection, shape: EchoShape, timeoutMs = 5000): Operation {
  const mux = muxOf(nc);
  const fanout = shape.fanout ?? 0;
  const subject = fanout > 0 ? `bench.relay.0.${fanout}.${shape.replyBytes}` : `bench.echo.0.${shape.replyBytes}`;
  return async (seq) => {
    const h = natsHeaders();
    h.set('Zi-Key', `echo/${seq & 1023}`);
    const reply = await mux.request(subject, shape.requestBody, timeoutMs, h);
    if (reply.data.byteLength !== shape.replyBytes) throw new Error(`echo: expected ${shape.replyBytes} bytes, got ${reply.data.byteLength}`);
  };
}
