// What the scripted stories of the simulation share: a 3-node cluster serving, its trace printed
// (SIM_TRACE=1) however the story ends, and the seed checks every story ends with.
import { afterEach, expect } from 'vitest';
import { SimCluster, type ClusterOptions } from './cluster.ts';
import { assess, Outcome, settleAndVerify, type SeedResult } from './run.ts';

let current: SimCluster | null = null;
afterEach(() => {
  if (process.env.SIM_TRACE === '1' && current !== null) console.log(current.trace.lines.join('\n'));
  current = null;
});

export const report = (r: SeedResult) => `${r.summary}\n${r.details}`;

/** Seed 1, 3 nodes, serving. */
export async function startStory(options: Partial<ClusterOptions> = {}): Promise<SimCluster> {
  const c = new SimCluster({ seed: 1, nodes: 3, trace: process.env.SIM_TRACE === '1', ...options });
  current = c;
  await c.start();
  expect(await c.waitFor(() => c.allServing(), 5_000)).toBe(true);
  return c;
}

/** Heal, settle, read every key back, check: linearizability, convergence, invariants. */
export async function verifyStory(c: SimCluster, keys: string[], name: string): Promise<SeedResult> {
  c.healAll();
  const outcome = new Outcome();
  await outcome.guard(() => settleAndVerify(c, keys, outcome, 20_000));
  return assess(c, outcome, name, 'story', c.options.seed);
}

/** Cut `id` off the bus until `leader` has removed it from the replica set (it keeps its copy). */
export async function isolateUntilRemoved(c: SimCluster, leader: string, id: string): Promise<void> {
  c.isolate(id);
  expect(await c.waitFor(() => !(c.node(leader)?.status().replicas ?? []).includes(id), 10_000), c.describe()).toBe(true);
}

/** The trace lines from line `from` on that `pattern` matches. */
export function traceSince(c: SimCluster, from: number, pattern: RegExp): string[] {
  return c.trace.lines.slice(from).filter((l) => pattern.test(l));
}
