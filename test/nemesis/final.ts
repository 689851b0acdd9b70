// After the final heal: wait for every node to serve, then read every key at every node (on
// the node's own subject) and compare. The reads go into the history too.
import type { NatsConnection } from 'nats';
import type { RecordedOp } from './history.ts';
import { memberState } from './nemesis.ts';
import { perform, type WorkloadContext } from './workload.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `members` at each node until it says serving; returns the ids that never did. */
export async function waitAllServing(nc: NatsConnection, cluster: string, ids: readonly string[], timeoutMs: number): Promise<{ notServing: Map<string, string>; ms: number }> {
  const start = performance.now();
  const last = new Map<string, string>();
  const pending = new Set(ids);
  while (pending.size > 0) {
    await Promise.all(
      [...pending].map(async (id) => {
        const view = await memberState(nc, cluster, id);
        last.set(id, view?.state ?? 'no answer');
        if (view?.state === 'serving') pending.delete(id);
      }),
    );
    if (pending.size === 0 || performance.now() - start > timeoutMs) break;
    await sleep(200);
  }
  return { notServing: new Map([...pending].map((id) => [id, last.get(id) ?? '?'])), ms: performance.now() - start };
}

export interface FinalRead {
  node: string;
  code: string;
  value?: string;
  revision?: number;
}

export interface Convergence {
  ok: boolean;
  /** Keys whose final reads differ between nodes, or where a node never answered. */
  mismatches: { key: string; reads: FinalRead[] }[];
  /** key -> what every node agreed on. */
  agreed: Record<string, { code: string; value?: string; revision?: number }>;
}

const settled = (op: RecordedOp) => op.output.status === 'ok' || op.output.status === 'not-found';

/** Reads until the node answers ok/404 or the deadline passes; every attempt is recorded. */
async function readAt(nc: NatsConnection, ctx: WorkloadContext, node: string, key: string, deadline: number): Promise<FinalRead> {
  let op = await perform(nc, ctx, 'final', node, { op: 'get', key });
  while (!settled(op) && performance.now() + 300 < deadline) {
    await sleep(300);
    op = await perform(nc, ctx, 'final', node, { op: 'get', key });
  }
  if (op.output.status === 'ok') return { node, code: op.code, value: op.output.value, revision: op.output.revision };
  return { node, code: op.code };
}

const same = (a: FinalRead, b: FinalRead) => a.code === b.code && a.value === b.value && a.revision === b.revision;

/**
 * Reads every key at every node. A key converges when all nodes answer the same (ok with the
 * same value and revision, or 404). Bounded by `timeoutMs` overall: a node that keeps
 * answering 503/504 or nothing shows as that code in the mismatch.
 */
export async function finalReads(nc: NatsConnection, ctx: WorkloadContext, nodes: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<Convergence> {
  const mismatches: Convergence['mismatches'] = [];
  const agreed: Convergence['agreed'] = {};
  const deadline = performance.now() + timeoutMs;
  // Each key gets at least its share of the time, so one stuck key does not starve the others.
  const share = timeoutMs / Math.max(1, ctx.keys.length);
  for (const key of ctx.keys) {
    if (signal?.aborted) break;
    const keyDeadline = Math.max(Math.min(deadline, performance.now() + 4 * share), performance.now() + ctx.clientTimeoutMs + 1000);
    let reads: FinalRead[] = [];
    let ok = false;
    // A write with an unknown outcome may still land between two reads: look again a few times.
    for (let round = 0; round < 4 && !ok; round++) {
      if (round > 0) {
        if (performance.now() + 1000 > keyDeadline || signal?.aborted) break;
        await sleep(1000);
      }
      reads = await Promise.all(nodes.map((n) => readAt(nc, ctx, n, key, keyDeadline)));
      const first = reads[0] as FinalRead;
      ok = (first.code === '200' || first.code === '404') && reads.every((r) => same(r, first));
    }
    if (ok) {
      const r = reads[0] as FinalRead;
      agreed[key] = { code: r.code, value: r.value, revision: r.revision };
    } else {
      mismatches.push({ key, reads });
    }
  }
  return { ok: mismatches.length === 0, mismatches, agreed };
}
