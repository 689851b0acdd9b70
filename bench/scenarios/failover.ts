// failover (thesis 5.4): how long writes stop when the leader goes away. A prober sends a put
// every few milliseconds (open loop, so a request stuck at the dead leader does not hold back
// the next one) through the cluster subject; the leader is killed (kill -9) or stopped
// gracefully (SIGTERM: it finishes its writes, hands over and leaves). Recovery = time from the
// fault to the first write acknowledged after the write outage (the new leader's). The new leader's log
// gives the moments it was elected ("became leader") and started serving ("leader serving").
// The old leader is restarted (it rejoins as a follower) before the next trial. Runs with the
// default session timeout (2000 ms, lease 1000 ms) and with 1000 ms / 500 ms.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ZiClient } from '../../client/index.ts';
import type { BenchCluster } from '../bench-cluster.ts';
import { key16 } from '../kv-systems.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';

const PROBE_INTERVAL_MS = 5;
const PROBE_TIMEOUT_MS = 1000;
const MAX_OUTSTANDING = 400;
const RECOVERY_LIMIT_MS = 20_000;

interface Config {
  key: 'default' | 'fast';
  label: string;
  sessionTimeoutMs: number;
  leaseMs: number;
  /** Passed to the cluster (undefined: the nodes' own defaults). */
  opts: { sessionTimeoutMs?: number; leaseMs?: number };
}

const CONFIGS: Config[] = [
  { key: 'default', label: 'session timeout 2000 ms, lease 1000 ms (defaults)', sessionTimeoutMs: 2000, leaseMs: 1000, opts: {} },
  { key: 'fast', label: 'session timeout 1000 ms, lease 500 ms', sessionTimeoutMs: 1000, leaseMs: 500, opts: { sessionTimeoutMs: 1000, leaseMs: 500 } },
];

type Fault = 'kill' | 'graceful';
const FAULT_LABEL: Record<Fault, string> = { kill: 'kill -9', graceful: 'graceful stop (SIGTERM)' };

/** Open-loop writer: a put every PROBE_INTERVAL_MS, each one recorded with its send and ack times. */
class Prober {
  private readonly sent: { at: number; acked: number | null }[] = [];
  private outstanding = 0;
  private running = true;
  private readonly done: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(client: ZiClient) {
    let seq = 0;
    const value = new Uint8Array(16).fill(0x70);
    this.done = (async () => {
      while (this.running) {
        if (this.outstanding < MAX_OUTSTANDING) {
          const rec = { at: performance.now(), acked: null as number | null };
          this.sent.push(rec);
          this.outstanding++;
          client
            .put(key16('fo.', seq++ % 1000), value)
            .then(
              () => {
                rec.acked = performance.now();
                for (const w of this.waiters.splice(0)) w();
              },
              () => undefined,
            )
            .finally(() => this.outstanding--);
        }
        await sleep(PROBE_INTERVAL_MS);
      }
    })();
  }

  /** First acknowledged write sent at or after `t`, waiting up to `limitMs`. */
  async firstAckAfter(t: number, limitMs: number): Promise<number | null> {
    const deadline = performance.now() + limitMs;
    for (;;) {
      let best: number | null = null;
      for (const r of this.sent) if (r.at >= t && r.acked !== null && (best === null || r.acked < best)) best = r.acked;
      if (best !== null) return best;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(Math.min(left, 50))]);
    }
  }

  /** Writes acknowledged since `t`. */
  ackedSince(t: number): number {
    return this.sent.filter((r) => r.acked !== null && r.acked >= t).length;
  }

  /** The first acknowledgement at or after `t`, and the one before it. */
  ackAround(t: number): { start: number; end: number } | null {
    const acks = this.sent.flatMap((r) => (r.acked !== null ? [r.acked] : [])).sort((a, b) => a - b);
    const i = acks.findIndex((a) => a >= t);
    return i <= 0 ? null : { start: acks[i - 1]!, end: acks[i]! };
  }

  /**
   * Fallback when the new leader's log gives no serving time: the longest gap between
   * consecutive acknowledgements that ends after `t` (from 1 s before it on).
   */
  outage(t: number): { start: number; end: number } | null {
    const acks = this.sent.flatMap((r) => (r.acked !== null && r.acked >= t - 1000 ? [r.acked] : [])).sort((a, b) => a - b);
    let best: { start: number; end: number } | null = null;
    for (let i = 1; i < acks.length; i++) {
      const gap = { start: acks[i - 1]!, end: acks[i]! };
      if (gap.end > t && (best === null || gap.end - gap.start > best.end - best.start)) best = gap;
    }
    return best;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    const deadline = performance.now() + PROBE_TIMEOUT_MS + 500;
    while (this.outstanding > 0 && performance.now() < deadline) await sleep(20);
  }
}

interface LogLine {
  time?: number;
  msg?: string;
}

/** Wall-clock times (ms since the fault) of the new leader's election lines after `sinceWall`. */
async function electionTimes(cluster: BenchCluster, id: string, sinceWall: number): Promise<{ became: number | null; serving: number | null }> {
  const file = cluster.local.nodes.get(id)?.logFile;
  if (!file) return { became: null, serving: null };
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return { became: null, serving: null };
  }
  let became: number | null = null;
  let serving: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.includes('"became leader"') && !line.includes('"leader serving"')) continue;
    let l: LogLine;
    try {
      l = JSON.parse(line) as LogLine;
    } catch {
      continue;
    }
    if (typeof l.time !== 'number' || l.time < sinceWall) continue;
    if (l.msg === 'became leader' && became === null) became = l.time - sinceWall;
    if (l.msg === 'leader serving' && serving === null) serving = l.time - sinceWall;
  }
  return { became, serving };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

async function trial(ctx: ScenarioContext, cluster: BenchCluster, fault: Fault) {
  await cluster.local.waitServing(60_000);
  const client = new ZiClient(cluster.connections[0]!, { cluster: cluster.name, writesToLeader: false, retries503: 0, timeoutMs: PROBE_TIMEOUT_MS });
  const prober = new Prober(client);
  try {
    // Steady state first: writes must be flowing before the fault.
    const warm = performance.now();
    await sleep(300);
    if (prober.ackedSince(warm) === 0 && (await prober.firstAckAfter(warm, 5000)) === null) throw new Error('no write acknowledged before the fault');
    const leader = await cluster.leader();
    const wallFault = Date.now();
    const tFault = performance.now();
    const oldProcess = cluster.local.nodes.get(leader)?.process ?? null;
    await (fault === 'kill' ? cluster.local.kill(leader) : cluster.local.stopNode(leader));
    // The old leader's process is gone: what is acknowledged from now on, the new leader did.
    const exited = performance.now();
    const ack = await prober.firstAckAfter(exited, RECOVERY_LIMIT_MS);
    if (ack !== null) await sleep(300);
    await prober.stop();
    const newLeader = await cluster.leader();
    await sleep(100); // let the node's log reach the file
    const times = await electionTimes(cluster, newLeader, wallFault);
    // The first write the new leader acknowledged: the first acknowledgement from the moment it
    // logged "leader serving" (a stopping leader may still acknowledge writes sent just after
    // the signal, so the first acknowledgement after the fault is not the measure). 2 ms of
    // slack for the log's millisecond clock.
    const outage = ack === null ? null : times.serving !== null ? prober.ackAround(tFault + times.serving - 2) : prober.outage(tFault);
    await ctx.progress.step(`restarting ${leader}`, async () => {
      await oldProcess?.stop(); // untrack the dead process (kill() leaves it in the registry)
      await cluster.local.restart(leader);
      await cluster.local.waitServing(60_000, [leader]);
    });
    return {
      oldLeader: leader,
      newLeader,
      exitMs: exited - tFault,
      recoveryMs: outage === null ? null : outage.end - tFault,
      gapMs: outage === null ? null : outage.end - outage.start,
      ...times,
    };
  } finally {
    await prober.stop();
  }
}

export const failover: Scenario = {
  name: 'failover',
  title: 'Leader failover: fault → first acknowledged write (thesis 5.4)',
  description:
    'A 3-node cluster; a prober sends a 16 B put every 5 ms (open loop, up to 400 outstanding, 1 s timeout, no client ' +
    'retries) to the cluster subject, so any node takes it and a follower forwards it to the leader. The leader is killed ' +
    '(kill -9: its ZooKeeper session must expire before another node can be elected) or stopped gracefully (SIGTERM: it ' +
    'finishes the writes in flight, refuses new ones, closes its session, and the next election starts at once). ' +
    'Recovery = fault → the first write the new leader acknowledged (the first acknowledgement from its "leader serving" ' +
    'log line on; the prober runs on until the old process has exited and writes are acknowledged again). Election and serving times come from ' +
    'the new leader\'s log ("became leader", "leader serving"; millisecond wall clock). The old leader is restarted and ' +
    'rejoins before the next trial. Run with the default session timeout (2000 ms, lease 1000 ms) and with 1000 ms / 500 ms.',
  estimate: { quick: '~35 s', full: '~3 min' },
  ownCluster: true,
  async run(ctx) {
    const trials = ctx.quick ? 3 : 7;
    ctx.section.section.settings = { nodes: 3, trials, probeIntervalMs: PROBE_INTERVAL_MS, probeTimeoutMs: PROBE_TIMEOUT_MS, configs: CONFIGS.map((c) => c.label) };
    const perTrial = ctx.section.table('trials', 'Every trial (ms after the fault)', [
      { key: 'config', label: 'session / lease', kind: 'text' },
      { key: 'fault', label: 'fault', kind: 'text', width: 23 },
      { key: 'trial', label: 'trial', kind: 'int' },
      { key: 'old', label: 'old leader', kind: 'text' },
      { key: 'new', label: 'new leader', kind: 'text' },
      { key: 'became', label: 'became leader', kind: 'int' },
      { key: 'serving', label: 'leader serving', kind: 'int' },
      { key: 'exit', label: 'old leader exited', kind: 'int' },
      { key: 'recovery', label: 'first ack', kind: 'int' },
      { key: 'gap', label: 'outage', kind: 'int' },
    ]);
    const summary = ctx.section.table('summary', 'Fault → first acknowledged write (ms)', [
      { key: 'config', label: 'session / lease', kind: 'text' },
      { key: 'fault', label: 'fault', kind: 'text' },
      { key: 'trials', label: 'trials', kind: 'int' },
      { key: 'median', label: 'median', kind: 'int' },
      { key: 'min', label: 'min', kind: 'int' },
      { key: 'max', label: 'max', kind: 'int' },
      { key: 'becameMedian', label: 'median: became leader', kind: 'int' },
      { key: 'servingMedian', label: 'median: leader serving', kind: 'int' },
    ], { live: false });
    const bars: { category: string; value: number }[] = [];
    for (const config of CONFIGS) {
      const short = `${config.sessionTimeoutMs} / ${config.leaseMs}`;
      const cluster = await ctx.cluster({ nodes: 3, fresh: true, logLevel: 'info', echoPeers: 0, ...config.opts });
      for (const fault of ['kill', 'graceful'] as const) {
        const results: number[] = [];
        const became: number[] = [];
        const serving: number[] = [];
        for (let i = 1; i <= trials; i++) {
          const r = await ctx.progress.step(`${FAULT_LABEL[fault]}, ${short} ms, trial ${i}/${trials}`, () => trial(ctx, cluster, fault));
          perTrial.add({ config: short, fault: FAULT_LABEL[fault], trial: i, old: r.oldLeader, new: r.newLeader, became: r.became, serving: r.serving, exit: r.exitMs, recovery: r.recoveryMs, gap: r.gapMs });
          if (r.recoveryMs !== null) results.push(r.recoveryMs);
          else ctx.log(`  warning: no write acknowledged within ${RECOVERY_LIMIT_MS} ms after the fault`);
          if (r.became !== null) became.push(r.became);
          if (r.serving !== null) serving.push(r.serving);
        }
        const med = median(results);
        summary.add({
          config: short,
          fault: FAULT_LABEL[fault],
          trials: results.length,
          median: med,
          min: results.length ? Math.min(...results) : null,
          max: results.length ? Math.max(...results) : null,
          becameMedian: became.length ? median(became) : null,
          servingMedian: serving.length ? median(serving) : null,
        });
        bars.push({ category: `${fault === 'kill' ? 'kill -9' : 'graceful'}, ${short}`, value: med });
        if (config.key === 'default' && results.length > 0) {
          ctx.facts.set(`failover.${fault}.ms`, med, { detail: `median of ${results.length}; min ${Math.round(Math.min(...results))}, max ${Math.round(Math.max(...results))}` });
        }
        if (config.key === 'fast' && results.length > 0) ctx.facts.set(`failover.${fault}.fast.ms`, med);
      }
    }
    summary.note('"became leader" / "leader serving": the new leader\'s log lines, ms after the fault (wall clocks of the bench and the node, same host).');
    perTrial.note('"first ack": the first write acknowledged from the moment the new leader logged "leader serving", ms after the fault; "outage": from the acknowledgement before it. A gracefully stopping leader may still acknowledge writes sent just after the signal, so the first acknowledgement after the signal is not the measure.');
    summary.note('With kill -9 nothing tells ZooKeeper the leader is gone: its session expires after the session timeout (ZooKeeper checks expiry on its tick, 200 ms here), then a follower is elected, bumps the epoch, collects and re-commits in-flight writes and serves.');
    ctx.section.chart('recovery', {
      kind: 'bar',
      title: 'Leader fault → first acknowledged write, median (ms)',
      yLabel: 'ms',
      categories: bars.map((b) => b.category),
      series: [{ name: 'median', values: bars.map((b) => b.value) }],
    });
  },
};
