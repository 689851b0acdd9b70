// One nemesis run: start a LocalCluster, run the clients and the nemesis for the duration,
// heal, wait for every node to serve, read every key everywhere, check the history for
// linearizability, write history.json and summary.json, stop everything.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { checkHistory, formatFailure, formatOperations, type CheckFailure, type CheckResult } from '../check/index.ts';
import { finalReads, waitAllServing, type Convergence } from './final.ts';
import { Recorder, type RecordedOp } from './history.ts';
import { Nemesis, type FaultRecord, type NemesisEvent } from './nemesis.ts';
import { buildTimeline, leaderTakeovers } from './timeline.ts';
import { changedSources, stampSources } from './sources.ts';
import type { NemesisOptions } from './options.ts';
import { Rng } from '../sim/rng.ts';
import { formatSummary, summarize, type Summary } from './summary.ts';
import { RunWatcher } from './watcher.ts';
import { Client, keyNames, type WorkloadContext } from './workload.ts';

export interface NemesisResult {
  /** Every check passed. */
  ok: boolean;
  /** The linearizability search ran out of budget (no verdict). */
  inconclusive: boolean;
  aborted: boolean;
  seed: number;
  /** Date.now() at the run's time 0 (node logs carry wall-clock times). */
  t0Wall: number;
  resultsDir: string;
  /** The cluster data dir with the node logs (`<id>.log`), when kept. */
  logsDir: string | null;
  failures: string[];
  summary: Summary;
  faults: FaultRecord[];
  events: NemesisEvent[];
  convergence: Convergence | null;
  check: CheckResult | null;
  notServingAfterHeal: Record<string, string>;
  /** Source files that changed while the run was going (restarted nodes ran other code). */
  sourcesChanged: string[];
  /** Watches that ended with 410 (no node kept the history they needed). */
  watchEnded: string[];
  history: RecordedOp[];
  /** The whole text report, as printed by `npm run nemesis`. */
  report: string;
}

/** How far a takeover read from a node's log may be off the run's clock (Date.now() against performance.now(), log latency), ms. */
const TAKEOVER_SLACK_MS = 20;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    if (signal?.aborted) return r();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      r();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * When shrinking left a long history, the operations on the key shortly before the one the
 * search got stuck on (the first known-outcome op missing from the longest linearization).
 */
function aroundFailure(failure: CheckFailure, keyOps: readonly RecordedOp[]): string {
  if (failure.kind !== 'not-linearizable' || failure.ops.length <= 12) return '';
  const placed = new Set((failure.linearized ?? []).map((x) => x.id));
  const stuck = failure.ops
    .filter((x) => !placed.has(x.id) && x.ret !== null && x.output.status !== 'unknown')
    .sort((a, b) => (a.ret as number) - (b.ret as number))[0];
  if (!stuck) return '';
  const near = keyOps.filter((x) => x.call <= (stuck.ret as number) && (x.ret ?? Infinity) >= stuck.call - 500);
  return `\noperations on this key in the 500 ms before op${stuck.id} (where the search got stuck):\n${formatOperations(near).join('\n')}`;
}

export async function runNemesis(o: NemesisOptions): Promise<NemesisResult> {
  const log = o.log ?? (() => undefined);
  const resultsDir = o.resultsDir ? resolve(o.resultsDir) : await mkdtemp(join(tmpdir(), `zistore-nemesis-${o.seed}-`));
  await mkdir(resultsDir, { recursive: true });
  const dataDir = join(resultsDir, 'cluster');
  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  log(`nemesis seed=${o.seed} duration=${o.durationS}s nodes=${o.nodes} clients=${o.clients} keys=${o.keys} faults=${o.faults.join(',') || 'none'} copies=${o.durable ? `data dir, --fsync ${o.fsync}` : 'memory'}`);
  log(`results: ${resultsDir}`);

  const sourcesBefore = await stampSources();
  let recorder = new Recorder(performance.now());
  let t0Wall = Date.now();
  const connections: NatsConnection[] = [];
  let cluster: LocalCluster | null = null;
  let nemesis: Nemesis | null = null;
  let convergence: Convergence | null = null;
  let check: CheckResult | null = null;
  let notServing = new Map<string, string>();
  let faultPhaseMs = 0;
  let passed = false;
  const failures: string[] = [];
  let inconclusive = false;
  let failingKeyText = '';
  let watchProblems: string[] = [];
  /**
   * Watches that ended with 410 (no node kept the history): failures. A run keeps far fewer
   * changes than the nodes' retention, and no fault here loses what a disk holds, so every
   * change is at some node.
   */
  let watchEnded: string[] = [];
  let progress: NodeJS.Timeout | null = null;
  let detach = () => undefined as void;

  try {
    cluster = await LocalCluster.start({
      nodes: o.nodes,
      cluster: o.cluster,
      sessionTimeoutMs: o.sessionTimeoutMs,
      opTimeoutMs: o.opTimeoutMs,
      dataDir,
      durable: o.durable ? o.fsync : undefined,
    });
    await cluster.waitServing(60_000);
    log(`cluster up: nodes ${[...cluster.nodes.keys()].join(', ')}, NATS ${cluster.natsUrl}, ZooKeeper ${cluster.zkConnectString}, logs ${dataDir}`);
    const control = await cluster.connectClient();
    connections.push(control);
    // Times in the history, the fault table and the log lines count from here.
    recorder = new Recorder(performance.now());
    t0Wall = Date.now();

    const ctx: WorkloadContext = {
      cluster: o.cluster,
      nodeIds: ids,
      keys: keyNames(o.keys),
      recorder,
      clientTimeoutMs: o.clientTimeoutMs,
      queueGroupShare: o.queueGroupShare,
      seen: new Map(),
    };
    const watchConnection = await cluster.connectClient();
    connections.push(watchConnection);
    // Both ways of watching: long polls, and the change feed (push) on a connection of its own.
    const pushConnection = await cluster.connectClient();
    connections.push(pushConnection);
    const watchers = [new RunWatcher(watchConnection, o.cluster, o.clientTimeoutMs, false), new RunWatcher(pushConnection, o.cluster, o.clientTimeoutMs, true)];
    const clients: Client[] = [];
    for (let i = 0; i < o.clients; i++) {
      const nc = await cluster.connectClient();
      connections.push(nc);
      clients.push(new Client(`c${i + 1}`, nc, new Rng(o.seed, `client-${i}`), ctx));
    }

    // Fault phase: clients and nemesis for the duration.
    const phase = new AbortController();
    const onAbort = () => phase.abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    detach = () => o.signal?.removeEventListener('abort', onAbort);
    nemesis = new Nemesis({
      cluster,
      nc: control,
      rng: new Rng(o.seed, "nemesis"),
      recorder,
      faults: o.faults,
      intervalMs: o.faultIntervalMs,
      restartMode: o.restartMode,
      recoverTimeoutMs: o.healTimeoutMs,
      sessionTimeoutMs: o.sessionTimeoutMs,
      log,
      signal: phase.signal,
    });
    let clientsRunning = true;
    const running = () => clientsRunning && !o.signal?.aborted;
    const startedAt = recorder.now();
    recorder.phase = 'faults';
    const clientsDone = Promise.all(clients.map((c) => c.run(running)));
    const nemesisDone = nemesis.run(() => !phase.signal.aborted);
    progress = setInterval(() => {
      const done = recorder.ops.filter((x) => x.ret !== null).length;
      log(`[${(recorder.now() / 1000).toFixed(1).padStart(6)}s] ${recorder.ops.length} ops, ${done} answered; healthy: ${nemesis?.healthyNodes().join(',')}`);
    }, 10_000);
    await sleep(o.durationS * 1000, phase.signal);
    phase.abort();
    await nemesisDone;
    clearInterval(progress);
    progress = null;
    faultPhaseMs = recorder.now() - startedAt;

    // Heal everything, wait for every node to serve, keep the clients going a little longer.
    recorder.phase = 'heal';
    log(`[${(recorder.now() / 1000).toFixed(1).padStart(6)}s] healing everything`);
    await nemesis.healAll();
    if (!o.signal?.aborted) {
      const waited = await waitAllServing(control, o.cluster, ids, o.healTimeoutMs);
      notServing = waited.notServing;
      log(
        `[${(recorder.now() / 1000).toFixed(1).padStart(6)}s] ` +
          (notServing.size === 0 ? `all nodes serving (${(waited.ms / 1000).toFixed(1)}s after heal)` : `NOT serving after ${o.healTimeoutMs / 1000}s: ${[...notServing].map(([n, s]) => `${n} (${s})`).join(', ')}`),
      );
      recorder.phase = 'after-heal';
      await sleep(o.afterHealS * 1000, o.signal);
    }
    clientsRunning = false;
    await clientsDone;

    if (!o.signal?.aborted) {
      recorder.phase = 'final';
      await sleep(500, o.signal);
      log(`[${(recorder.now() / 1000).toFixed(1).padStart(6)}s] final reads of ${o.keys} keys at ${ids.length} nodes`);
      convergence = await finalReads(control, ctx, ids, o.finalReadTimeoutMs, o.signal);
      watchProblems = [];
      watchEnded = [];
      for (const watcher of watchers) {
        const problems = (await watcher.finish(recorder.ops, 30_000)).map((p) => `${watcher.name}: ${p}`);
        log(`[${(recorder.now() / 1000).toFixed(1).padStart(6)}s] ${watcher.name}: ${watcher.count} changes${problems.length > 0 ? `, ${problems.length} problem(s)` : ', every acknowledged write of its spans once, in order'}`);
        watchProblems.push(...problems);
        for (const e of watcher.ended) log(`${watcher.name} ended (410) ${e}`);
        watchEnded.push(...watcher.ended);
      }
    }
    await nemesis.dispose();

    if (!o.signal?.aborted) {
      log(`checking ${recorder.ops.length} operations for linearizability`);
      // Takeovers from the node logs (wall clock, ms): a few ms either way.
      const takeovers = await leaderTakeovers(dataDir, ids, t0Wall);
      check = checkHistory(recorder.ops, { budgetMs: o.checkBudgetMs, shrinkBudgetMs: 15_000, takeovers, takeoverSlackMs: TAKEOVER_SLACK_MS });
      if (check.ok === false) {
        const key = check.key;
        const keyOps = recorder.ops.filter((x) => x.input.key === key);
        failures.push(`not linearizable (${check.kind}):\n${formatFailure(check)}${aroundFailure(check, keyOps)}`);
        failingKeyText = [`full history of key ${key}:`, ...formatOperations(keyOps)].join('\n');
      } else if (check.ok === 'unknown') {
        inconclusive = true;
        failures.push(`linearizability check inconclusive: search budget of ${o.checkBudgetMs} ms ran out (at key ${check.key ?? '?'})`);
      }
      if (convergence && !convergence.ok) {
        for (const m of convergence.mismatches) {
          failures.push(`no convergence on key ${m.key}: ${m.reads.map((r) => `${r.node}=${r.code === '200' ? `${JSON.stringify(r.value)}@${r.revision}` : r.code}`).join(' ')}`);
        }
      }
      failures.push(...watchProblems);
      for (const e of watchEnded) failures.push(`a watch ended with 410 though the run is well within the history the nodes keep: ${e}`);
      for (const [n, s] of notServing) failures.push(`node ${n} not serving ${o.healTimeoutMs / 1000}s after the final heal (last state: ${s})`);
      for (const a of nemesis.anomalies) failures.push(a);
      const bugs = recorder.ops.filter((x) => x.code === '500');
      if (bugs.length > 0) failures.push(`${bugs.length} replies with code 500 (internal error), e.g. op${bugs[0]?.id}`);
      const bad = recorder.ops.filter((x) => x.code === '400' || x.code === '413');
      if (bad.length > 0) failures.push(`${bad.length} replies with code 400/413 to well-formed requests, e.g. op${bad[0]?.id}`);
      const noRev = recorder.ops.filter((x) => x.output.status === 'ok' && x.output.revision === undefined);
      if (noRev.length > 0) failures.push(`${noRev.length} ok replies without Zi-Revision, e.g. op${noRev[0]?.id}`);
      passed = failures.length === 0;
    }
  } finally {
    if (progress) clearInterval(progress);
    detach();
    if (nemesis) await nemesis.dispose().catch(() => undefined);
    for (const nc of connections) await nc.close().catch(() => undefined);
    if (cluster) await cluster.stop();
  }

  const aborted = o.signal?.aborted ?? false;
  const sourcesChanged = changedSources(sourcesBefore, await stampSources());
  const keepLogs = o.keepLogs || !passed;
  const timeline = await buildTimeline(dataDir, ids, nemesis?.events ?? [], t0Wall).catch(() => '');
  if (!keepLogs) await rm(dataDir, { recursive: true, force: true });

  const summary = summarize(recorder.ops, faultPhaseMs);
  const faults = nemesis?.faults ?? [];
  const lines: string[] = [];
  lines.push(`seed ${o.seed}: ${o.durationS}s, ${o.nodes} nodes, ${o.clients} clients, ${o.keys} keys, faults ${o.faults.join(',') || 'none'}, copies ${o.durable ? `on data dirs (--fsync ${o.fsync})` : 'in memory'}`);
  lines.push('');
  lines.push(formatSummary(summary, faults));
  lines.push('');
  if (notServing.size === 0 && !aborted) lines.push('recovery: every node serving after the final heal');
  if (convergence) lines.push(convergence.ok ? `convergence: all ${o.keys} keys identical at all ${o.nodes} nodes` : `convergence: FAILED on ${convergence.mismatches.length} keys`);
  if (watchEnded.length > 0) lines.push(`watch: ended ${watchEnded.length} time(s) with 410 (history no node kept), resumed from the current revision: ${watchEnded.join('; ')}`);
  if (check) lines.push(check.ok === true ? `linearizability: ok (${recorder.ops.length} ops)` : check.ok === 'unknown' ? 'linearizability: inconclusive (budget)' : 'linearizability: FAILED');
  if (failures.length > 0) {
    lines.push('');
    lines.push('FAILURES:');
    for (const f of failures) lines.push(`- ${f}`);
  }
  if (sourcesChanged.length > 0) {
    lines.push('');
    lines.push(`WARNING: store sources changed during the run (${sourcesChanged.join(', ')}); nodes started after the change ran other code than the rest`);
  }
  lines.push('');
  lines.push(aborted ? 'ABORTED' : passed ? 'PASS' : inconclusive && failures.length === 1 ? 'INCONCLUSIVE' : 'FAIL');
  lines.push(`seed ${o.seed}; results in ${resultsDir}${keepLogs ? ` (timeline.txt: node logs and faults on the run's clock); node logs in ${dataDir}` : ''}`);
  const report = lines.join('\n');

  const result: NemesisResult = {
    ok: passed,
    inconclusive,
    aborted,
    seed: o.seed,
    t0Wall,
    resultsDir,
    logsDir: keepLogs ? dataDir : null,
    failures,
    summary,
    faults,
    events: nemesis?.events ?? [],
    convergence,
    check,
    notServingAfterHeal: Object.fromEntries(notServing),
    sourcesChanged,
    watchEnded,
    history: recorder.ops,
    report,
  };
  const { log: _log, signal: _signal, ...options } = o;
  const { history: _history, ...rest } = result;
  await writeFile(join(resultsDir, 'history.json'), JSON.stringify({ seed: o.seed, clock: 'ms since the run started', ops: recorder.ops }));
  await writeFile(join(resultsDir, 'summary.json'), JSON.stringify({ options, ...rest }, null, 2));
  if (keepLogs) await writeFile(join(resultsDir, 'timeline.txt'), timeline);
  await writeFile(join(resultsDir, 'report.txt'), report + (failingKeyText ? `\n\n${failingKeyText}\n` : '\n'));
  return result;
}
