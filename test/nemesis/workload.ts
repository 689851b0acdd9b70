// Closed-loop clients: each on its own NATS connection, issuing a random mix of get / put /
// delete / conditional put and delete / keep-alive / scan / two-key transaction over a few keys,
// to a random node's own subjects or to the queue-group subjects, and recording every operation
// with its outcome.
import { Buffer } from 'node:buffer';
import type { NatsConnection, NatsError } from 'nats';
import { readBinaryScanReply, type ScanResult } from '../../actors/scan.ts';
import { FAILED_COMPARE_HEADER, NO_TTL_DESCRIPTION } from '../../actors/protocol.ts';
import type { TxnResult } from '../../actors/txn.ts';
import { txnBody } from '../support/txn-body.ts';
import type { KvInput, KvOutput } from '../check/index.ts';
import { raw, type RawReply } from '../support/raw-client.ts';
import type { Recorder, RecordedOp } from './history.ts';
import { Rng } from '../sim/rng.ts';
import { LONG_TTL_MS, SHORT_TTL_MS } from '../sim/workload.ts';

export interface WorkloadContext {
  cluster: string;
  nodeIds: readonly string[];
  keys: readonly string[];
  recorder: Recorder;
  clientTimeoutMs: number;
  queueGroupShare: number;
  /** Last revision anyone observed per key (0: observed missing); feeds conditional writes. */
  seen: Map<string, number>;
}

export function keyNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `k${i}`);
}

/** The PROTOCOL.md outcome of a reply, for the checker. */
export function classify(input: KvInput, reply: RawReply, binaryScan = false): { output: KvOutput; replied: boolean; code: string } {
  if (reply.code === 0) return { output: { status: 'unknown' }, replied: false, code: 'timeout' };
  const code = String(reply.code);
  switch (reply.code) {
    case 200: {
      const revision = reply.revision ?? undefined;
      if (input.op === 'get') return { output: { status: 'ok', value: reply.text, revision }, replied: true, code };
      if (input.op === 'txn') {
        // One that wrote nothing has no revision of its own.
        const result = JSON.parse(reply.text) as TxnResult;
        return { output: { status: 'ok', revision: result.written > 0 ? result.revision : undefined }, replied: true, code };
      }
      if (input.op === 'scan') {
        const result = binaryScan ? readBinaryScanReply(reply.data) : (JSON.parse(reply.text) as ScanResult);
        // A page that stops early would leave keys unchecked; the workload's few keys fit in one.
        if (result.more === true) return { output: { status: 'unknown' }, replied: true, code: 'scan-stopped-early' };
        const text = (v: Uint8Array | string | undefined) => (typeof v === 'string' ? Buffer.from(v, 'base64').toString() : v === undefined ? '' : Buffer.from(v).toString());
        const entries = (result.entries ?? []).map((e) => ({ key: e.key, revision: e.revision, value: text(e.value) }));
        return { output: { status: 'ok', revision, entries }, replied: true, code };
      }
      return { output: { status: 'ok', revision }, replied: true, code };
    }
    case 404:
      return { output: { status: 'not-found' }, replied: true, code };
    case 409: {
      const failed = reply.headers.get(FAILED_COMPARE_HEADER)?.[0];
      return { output: { status: 'conflict', ...(failed !== undefined ? { failedCompare: Number(failed) } : {}) }, replied: true, code };
    }
    case 503:
      return { output: { status: 'unavailable' }, replied: true, code };
    case 400:
      // A keep-alive of a value put without a time to live; any other 400 is an anomaly (below).
      if (input.op === 'keepalive' && reply.description === NO_TTL_DESCRIPTION) return { output: { status: 'no-ttl' }, replied: true, code: 'no-ttl' };
      return { output: { status: 'unknown' }, replied: true, code };
    default:
      // 504: may or may not have happened. 500 (a bug), 400 and 413 (cannot happen with this
      // workload) are reported as anomalies and treated as unknown by the checker.
      return { output: { status: 'unknown' }, replied: true, code };
  }
}

let scansSent = 0;

/** One request with exact headers; never throws. */
export async function perform(
  nc: NatsConnection,
  ctx: Pick<WorkloadContext, 'cluster' | 'recorder' | 'clientTimeoutMs'>,
  client: string,
  target: string,
  input: KvInput,
): Promise<RecordedOp> {
  const subject = target === 'any' ? `zistore.${ctx.cluster}.${input.op}` : `zistore.${ctx.cluster}.node.${target}.${input.op}`;
  const headers: [string, string][] = [];
  // Every other scan in the binary format.
  const binaryScan = input.op === 'scan' && scansSent++ % 2 === 1;
  if (input.op === 'scan') {
    headers.push(['Zi-Scan', 'values']);
    if (input.key !== '') headers.push(['Zi-Prefix', input.key]);
    if (binaryScan) headers.push(['Zi-Scan-Format', 'binary']);
  } else if (input.op !== 'txn') {
    headers.push(['Zi-Key', input.key]);
  }
  if (input.op !== 'get' && input.ifRevision !== undefined) headers.push(['Zi-If-Revision', String(input.ifRevision)]);
  if (input.op === 'put' && input.ttlMs !== undefined) headers.push(['Zi-TTL', String(input.ttlMs)]);
  const data = input.op === 'put' ? input.value : input.op === 'txn' ? txnBody(input.txn) : undefined;
  const op = ctx.recorder.begin(client, target, input);
  try {
    const reply = await raw(nc, subject, { headers, data, timeoutMs: ctx.clientTimeoutMs });
    const c = classify(input, reply, binaryScan);
    ctx.recorder.finish(op, c.output, c.code, c.replied);
  } catch (err) {
    const code = (err as NatsError).code;
    if (code === '503') {
      // NATS "no responders": nobody subscribes to the subject, so nobody got the request.
      ctx.recorder.finish(op, { status: 'unavailable' }, 'no-responders', true);
    } else {
      ctx.recorder.finish(op, { status: 'unknown' }, `error: ${(err as Error).message}`, false);
    }
  }
  return op;
}

export class Client {
  private seq = 0;
  constructor(
    readonly name: string,
    private readonly nc: NatsConnection,
    private readonly rng: Rng,
    private readonly ctx: WorkloadContext,
  ) {}

  private nextInput(): KvInput {
    const { rng, ctx } = this;
    const key = rng.pick(ctx.keys);
    const known = ctx.seen.get(key);
    const r = rng.next();
    const value = () => `${this.name}-${++this.seq}`;
    // Every key, or the keys starting with one key's name (k1 covers k1, k10, …).
    if (r < 0.08) return { op: 'scan', key: rng.chance(0.7) ? '' : key };
    if (r < 0.12) {
      // Two keys written at once; a compare on what was last seen of one of them, half the time.
      const [a, b] = rng.shuffle([...ctx.keys]);
      const seenA = ctx.seen.get(a!);
      const compare = seenA !== undefined && rng.chance(0.5) ? [seenA === 0 ? { key: a!, absent: true as const } : { key: a!, revision: seenA }] : [];
      return { op: 'txn', key: '', txn: { compare, ops: [{ op: 'put', key: a!, value: value() }, { op: 'put', key: b!, value: value() }] } };
    }
    if (r < 0.37) return { op: 'get', key };
    if (r < 0.4) return { op: 'keepalive', key };
    // A quarter with a time to live: half of them run out within the run (the checker places each
    // expiry in time), half never do (the deadline goes through every fault).
    if (r < 0.65) return { op: 'put', key, value: value(), ...(rng.chance(0.25) ? { ttlMs: rng.chance(0.5) ? rng.int(...SHORT_TTL_MS) : LONG_TTL_MS } : {}) };
    if (r < 0.82) {
      const ifRevision = known !== undefined && rng.chance(0.8) ? known : rng.chance(0.7) ? 0 : rng.int(1, 1000);
      return { op: 'put', key, value: value(), ifRevision };
    }
    if (r < 0.94) return { op: 'delete', key };
    return { op: 'delete', key, ifRevision: known !== undefined && known > 0 && rng.chance(0.8) ? known : rng.int(1, 1000) };
  }

  private nextTarget(): string {
    return this.rng.chance(this.ctx.queueGroupShare) ? 'any' : this.rng.pick(this.ctx.nodeIds);
  }

  private learn(op: RecordedOp): void {
    const { seen } = this.ctx;
    if (op.input.op === 'scan' || op.input.op === 'txn') return;
    const out = op.output;
    if (out.status === 'ok') {
      if (op.input.op === 'delete') seen.set(op.input.key, 0);
      else if (out.revision !== undefined) seen.set(op.input.key, out.revision);
    } else if (out.status === 'not-found') {
      seen.set(op.input.key, 0);
    }
  }

  /** Runs operations back to back until `running()` turns false. */
  async run(running: () => boolean): Promise<void> {
    while (running()) {
      const op = await perform(this.nc, this.ctx, this.name, this.nextTarget(), this.nextInput());
      this.learn(op);
      // A refused or unreachable request returns at once; do not spin on it.
      if (op.output.status === 'unavailable') await new Promise((r) => setTimeout(r, 20 + this.rng.int(0, 30)));
    }
  }
}
