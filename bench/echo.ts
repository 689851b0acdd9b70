// The NATS echo peer: spawn the responder (bench/echo-responder.ts) on the cluster's
// nats-server and build closed-loop operations against it that mirror ZiStore's messages.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { spawnManaged, type ManagedProcess } from '../cluster/child-process.ts';
import type { Operation } from './load.ts';

const BENCH_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)));
export const ECHO_PREFIX = 'bench.echo';

export interface EchoPeer {
  readonly pid: number;
  stop(): Promise<void>;
}

/** Start the responder and wait until it answers. */
export async function startEcho(nc: NatsConnection, natsUrl: string, logDir: string): Promise<EchoPeer> {
  const proc: ManagedProcess = await spawnManaged({
    name: 'bench-echo',
    command: process.execPath,
    args: ['--import', 'tsx', join(BENCH_DIR, 'echo-responder.ts'), natsUrl],
    cwd: resolve(BENCH_DIR, '..'),
    logFile: join(logDir, 'echo-responder.log'),
    stopGraceMs: 2000,
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await nc.request(`${ECHO_PREFIX}.0`, new Uint8Array(0), { timeout: 500 });
      break;
    } catch (err) {
      if (!proc.isRunning()) throw new Error(`echo responder exited during start-up (log ${join(logDir, 'echo-responder.log')})`, { cause: err });
      if (Date.now() > deadline) {
        await proc.stop();
        throw new Error('echo responder did not answer within 15 s', { cause: err });
      }
      await sleep(100);
    }
  }
  return { pid: proc.pid, stop: () => proc.stop() };
}

/**
 * An echo exchange shaped like a ZiStore request: a `Zi-Key` header and `requestBody` out, a
 * `Zi-Revision` header and `replyBytes` back. Put-shaped: (value, 0); get-shaped: (empty, size).
 */
export function echoOperation(nc: NatsConnection, requestBody: Uint8Array, replyBytes: number, timeoutMs = 5000): Operation {
  const subject = `${ECHO_PREFIX}.${replyBytes}`;
  return async (seq) => {
    const h = natsHeaders();
    h.set('Zi-Key', `echo/${seq & 1023}`);
    const reply = await nc.request(subject, requestBody, { timeout: timeoutMs, headers: h });
    if (reply.data.byteLength !== replyBytes) throw new Error(`echo: expected ${replyBytes} bytes, got ${reply.data.byteLength}`);
  };
}
