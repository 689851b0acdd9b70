// One seed of the whole-cluster simulation (TigerBeetle's VOPR, FoundationDB's simulation):
// start a cluster, run concurrent clients under random faults, heal everything, let it settle,
// read every key through every node, then check the history for linearizability, the final
// copies for convergence, and the invariants recorded along the way.
import { checkHistory, formatFailure } from '../check/index.ts';
import type { Operation } from '../check/history.ts';
import { checkChangeLogs, type NodeChanges } from '../check/watch-check.ts';
import { SimCluster, type Violation } from './cluster.ts';
import { Rng } from './rng.ts';
import { chooseProfile, DEFAULT_FAULTS, runClients, runNemesis, type FaultKind } from './workload.ts';

export interface SeedOptions {
  seed: number;
  /** Fault kinds to inject; default all. */
  faults?: ReadonlySet<FaultKind>;
  trace?: boolean;
  /** Virtual time with faults and clients; default 8–20 s from the seed. */
  faultMs?: number;
  nodes?: number;
  /** Copies on a simulated disk; default: half the seeds, chosen by the seed. */
  durable?: boolean;
  /** Clients scan and run transactions too; off by default, which keeps every earlier seed's run as it was. */
  multiKey?: boolean;
}

export interface SeedResult {
  seed: number;
  ok: boolean;
  /** Failure kinds: invariant, linearizability, convergence, watch, liveness, crash, checker-budget. */
  failures: string[];
  /** One line. */
  summary: string;
  /** Multi-line: the checker's formatted failure, violations, final views. */
  details: string;
  history: Operation[];
  virtualMs: number;
  events: number;
  /** Changes at or below this revision are at no node's watch history at the end (0: none lost). */
  historyLostThrough: number;
  /** Keys the cluster expired, as the node's watch history that tells the most of them says. */
  expiries: number;
  /** Node log lines at error level (not failures by themselves; e.g. data-loss warnings). */
  errors: string[];
  violations: Violation[];
  trace: string[];
}

const SETUP_MS_MAX = 10_000;
const POST_HEAL_LOAD_MS = 3_000;
const SETTLE_MS_MAX = 25_000;

let activeRejections: unknown[] | null = null;
process.on('unhandledRejection', (reason) => {
  // Attributed to the seed being run; without a run, let Node's default reporting see it.
  if (activeRejections !== null) activeRejections.push(reason);
});

export async function runSeed(options: SeedOptions): Promise<SeedResult> {
  const seed = options.seed;
  const faults = options.faults ?? new Set(DEFAULT_FAULTS);
  const params = new Rng(seed, 'params');
  const nodes = options.nodes ?? params.int(3, 5);
  const clients = params.int(2, 4);
  const keys = Array.from({ length: params.int(2, 4) }, (_, i) => `k${i + 1}`);
  const faultMs = options.faultMs ?? params.int(8_000, 20_000);
  const gapMsMean = params.pick([600, 1200, 2500]);
  const profile = chooseProfile(params.fork('profile'), faults);
  // Half the seeds keep copies on disk (a sync takes up to 5 ms): crashes, whole-cluster ones too, keep them.
  const durable = options.durable ?? params.fork('disk').chance(0.5);
  const diskSyncMs = durable ? params.fork('disk-sync').range(0.1, 5) : undefined;

  const cluster = new SimCluster({ seed, nodes, trace: options.trace ?? false, diskSyncMs });
  const outcome = new Outcome();
  await outcome.guard(async () => {
    await cluster.start();
    if (!(await cluster.waitFor(() => cluster.allServing(), SETUP_MS_MAX))) {
      outcome.fail('liveness', `no serving cluster after ${SETUP_MS_MAX} ms without faults: ${cluster.describe()}`);
    }
    cluster.setProfile(profile);
    const healAt = cluster.now() + faultMs;
    let clientsDone = false;
    void runClients(cluster, params.fork('clients'), {
      clients,
      keys,
      untilMs: healAt + POST_HEAL_LOAD_MS,
      thinkMsMin: 5,
      thinkMsMax: 150,
      scanWeight: options.multiKey ? 15 : 0,
      txnWeight: options.multiKey ? 15 : 0,
      ttlShare: options.multiKey ? 0.25 : 0,
    }).then(() => (clientsDone = true));
    void runNemesis(cluster, params.fork('nemesis'), { faults, untilMs: healAt, gapMsMean });
    await cluster.scheduler.runUntil(healAt);
    cluster.healAll();
    await cluster.scheduler.runUntil(healAt + POST_HEAL_LOAD_MS);
    await cluster.waitFor(() => clientsDone, cluster.config.opTimeoutMs + 2000);
    await settleAndVerify(cluster, keys, outcome);
  });
  const shape = `nodes=${nodes} clients=${clients} keys=${keys.length}${options.multiKey ? ' multi-key' : ''} faults=${faultMs}ms gap=${gapMsMean}ms drop=${profile.dropRate} dup=${profile.duplicateRate} reorder=${profile.reorder}${durable ? ` disk=${diskSyncMs!.toFixed(1)}ms` : ''}`;
  return assess(cluster, outcome, `seed=${seed}`, shape, seed);
}

/** Failures collected over one run; `guard` turns an exception of the harness into a failure. */
export class Outcome {
  readonly failures: string[] = [];
  readonly details: string[] = [];
  readonly rejections: unknown[] = [];
  /** The lowest watch-history floor over the nodes at the end: changes at or below it are at no node any more. */
  historyLostThrough = 0;
  expiries = 0;

  fail(kind: string, ...details: string[]): void {
    this.failures.push(kind);
    this.details.push(...details);
  }

  async guard(work: () => Promise<void>): Promise<void> {
    activeRejections = this.rejections;
    try {
      await work();
    } catch (err) {
      this.fail('crash', `simulation threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      activeRejections = null;
    }
  }
}

/**
 * The end of every run: wait until every node is back, connected and serving under one leader;
 * read every key through every node (the checker then verifies that every acknowledged write, or
 * a later one, is what the cluster holds); compare the copies.
 */
export async function settleAndVerify(cluster: SimCluster, keys: readonly string[], outcome: Outcome, settleMsMax = SETTLE_MS_MAX): Promise<void> {
  if (!(await cluster.waitFor(() => cluster.allServing(), settleMsMax))) {
    outcome.fail('liveness', `not settled ${settleMsMax} ms after healing: ${cluster.describe()}`);
    const head = cluster.electionHead();
    if (head !== null && cluster.isUp(head) && cluster.view(head).role !== 'leader' && cluster.view(head).session === 'connected') {
      outcome.details.push(`${head} heads the election queue but does not lead`);
    }
  }
  await cluster.run(500);
  const finals: Promise<unknown>[] = [];
  for (const id of cluster.ids) for (const key of keys) finals.push(cluster.op(`final-${id}`, id, { op: 'get', key }));
  let finalsDone = false;
  void Promise.all(finals).then(() => (finalsDone = true));
  await cluster.waitFor(() => finalsDone, cluster.config.opTimeoutMs + 2000);
  // What watches would read at each node: checked whatever else happened.
  const logs = cluster.ids.map((id) => cluster.changesOf(id)).filter((l): l is NodeChanges => l !== null);
  const watchProblems = checkChangeLogs(cluster.history, logs);
  outcome.historyLostThrough = logs.length === 0 ? 0 : Math.min(...logs.map((l) => l.floor));
  outcome.expiries = Math.max(0, ...logs.map((l) => l.changes.filter((c) => c.kind === 'expire').length));
  if (watchProblems.length > 0) outcome.fail('watch', 'watch history broken:', ...watchProblems.map((p) => `  ${p}`));
  if (!outcome.failures.includes('liveness')) {
    // A key whose time to live ran out meanwhile is being expired (a write): compare once it is done.
    await cluster.waitFor(() => !cluster.leaderWriting(), 2000);
    const diverged = cluster.convergence();
    if (diverged.length > 0) outcome.fail('convergence', 'copies differ after settling:', ...diverged.slice(0, 10).map((d) => `  ${d}`));
  }
}

/** Invariants, crashes and the linearizability check: any failure fails the run. */
export function assess(cluster: SimCluster, outcome: Outcome, name: string, shape: string, seed: number): SeedResult {
  const { failures, details } = outcome;
  if (cluster.violations.length > 0) {
    failures.push('invariant');
    details.push('invariants broken:', ...cluster.violations.map((v) => `  t=${v.timeMs.toFixed(1)} ${v.kind}: ${v.text}`));
  }
  const thrown = [...cluster.scheduler.errors, ...outcome.rejections];
  if (thrown.length > 0) {
    failures.push('crash');
    for (const err of thrown.slice(0, 5)) details.push(`uncaught: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  const fatals = cluster.trace.problems.filter((p) => p.level === 'fatal');
  if (fatals.length > 0) {
    failures.push('crash');
    for (const f of fatals.slice(0, 5)) details.push(`fatal at t=${f.timeMs.toFixed(1)} on ${String(f.bindings.node)}: ${f.msg} ${describeObj(f.obj)}`);
  }
  const errors = cluster.trace.problems
    .filter((p) => p.level === 'error')
    .map((p) => `t=${p.timeMs.toFixed(1)} ${String(p.bindings.node)}: ${p.msg} ${describeObj(p.obj)}`);

  const history = cluster.history;
  const check = checkHistory(history, { budgetMs: 20_000, maxSteps: 3_000_000, shrinkBudgetMs: 5_000, takeovers: cluster.takeovers });
  if (check.ok === false) {
    failures.push('linearizability');
    details.unshift(formatFailure(check));
  } else if (check.ok === 'unknown') {
    failures.push('checker-budget');
    details.push(`checker ran out of budget on key ${check.key ?? '?'}`);
  }

  const unique = [...new Set(failures)];
  const counts = countOutcomes(history);
  const summary =
    unique.length === 0
      ? `${name} ok ${shape} ops=${history.length} (${counts}) t=${cluster.now().toFixed(0)}ms events=${cluster.scheduler.events}${outcome.historyLostThrough > 0 ? ` watch-history-lost-through=${outcome.historyLostThrough}` : ''}`
      : `${name} FAILED [${unique.join(', ')}] ${shape} ops=${history.length} (${counts}) t=${cluster.now().toFixed(0)}ms`;
  if (unique.length > 0) details.push(`final: ${cluster.describe()}`);
  return {
    seed,
    ok: unique.length === 0,
    failures: unique,
    summary,
    details: details.join('\n'),
    history,
    virtualMs: cluster.now(),
    historyLostThrough: outcome.historyLostThrough,
    expiries: outcome.expiries,
    events: cluster.scheduler.events,
    errors,
    violations: cluster.violations,
    trace: cluster.trace.lines,
  };
}

function countOutcomes(history: readonly Operation[]): string {
  const counts = new Map<string, number>();
  for (const op of history) counts.set(op.output.status, (counts.get(op.output.status) ?? 0) + 1);
  return [...counts].map(([k, v]) => `${k}=${v}`).join(' ');
}

function describeObj(obj: object): string {
  return Object.entries(obj)
    .map(([k, v]) => `${k}=${v instanceof Error ? `${v.name}: ${v.message}` : JSON.stringify(v)}`)
    .join(' ');
}

