// `npm run bench -- <scenario|all> [--quick] [--out DIR] [--rounds N] [--wait-quiet S]
//  [--warmup MS] [--duration MS] [--connections N] [--via-proxy] [--list]`: runs scenarios
// against a real ZooKeeper, nats-server and ZiStore nodes on this host, prints each table as it
// fills, and writes the report (JSON + Markdown + SVG) to <out>/<scenario>-<timestamp>/ and
// <out>/latest/. See bench/README.md.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllProcessesSync, trackedProcesses } from '../cluster/process-registry.ts';
import { BenchCluster } from './bench-cluster.ts';
import { startPeers, type Peers } from './peers/index.ts';
import { SYSTEM_NAMES } from './peers/types.ts';
import { addTargetsTable, Facts } from './targets.ts';
import { machineBusyPct } from './cpu.ts';
import { onInterrupt } from './interrupt.ts';
import { describeMachine, describeSystems, describeVersions, type Environment } from './environment.ts';
import { Progress } from './progress.ts';
import { METHOD, SectionBuilder, writeReport, type Report } from './report.ts';
import type { ClusterRequest, Scenario, ScenarioContext, Timing } from './scenario.ts';
import type { PeerId } from './peers/types.ts';
import { SCENARIOS, findScenario } from './scenarios/index.ts';

const DEFAULT_OUT = resolve(fileURLToPath(new URL('results', import.meta.url)));
const QUICK: Timing = { warmupMs: 400, durationMs: 1500 };
const FULL: Timing = { warmupMs: 2000, durationMs: 10_000 };
const QUICK_ROUNDS = 3;
const FULL_ROUNDS = 10;
/** Above this machine-wide CPU use before the run, warn that the numbers will be noisy. */
const BUSY_WARN_PCT = 15;
/** --wait-quiet: "quiet" means the whole machine is below this share of all cores. */
const QUIET_PCT = 10;

const USAGE = `usage: npm run bench -- <scenario|all> [options]

scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(12)} ${s.title} (quick ${s.estimate.quick}, full ${s.estimate.full})`).join('\n')}
  ${'all'.padEnd(12)} every scenario above, in this order

options:
  --quick            short warm-up (${QUICK.warmupMs} ms) and window (${QUICK.durationMs} ms) instead of ${FULL.warmupMs} / ${FULL.durationMs} ms
  --warmup MS        warm-up of each run
  --duration MS      measured window of each run (split over the rounds)
  --rounds N         interleave the runs of one comparison in N rounds (default ${QUICK_ROUNDS} quick, ${FULL_ROUNDS} full)
  --wait-quiet S     before each comparison, wait up to S seconds for the host to be quiet
                     (machine busy < ${QUIET_PCT}% of all cores): for hosts shared with other work
  --connections N    NATS connections the load is spread over (default 1)
  --via-proxy        keep LocalCluster's in-process TCP proxies between nodes and servers
  --out DIR          results directory (default bench/results)
  --list             list the scenarios
`;

function intOption(values: Record<string, unknown>, name: string, min: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${String(v)}'`);
  return n;
}

/** Say so in the report when processes outside the benchmark took a real share of the host. */
function noteForeignLoad(section: SectionBuilder): void {
  const ms = section.section.measurements;
  const windowMs = ms.reduce((s, m) => s + m.cpu.windowMs, 0);
  if (windowMs <= 0) return;
  const otherPct = (100 * ms.reduce((s, m) => s + m.cpu.otherCpuMs, 0)) / windowMs;
  const busyPct = ms.reduce((s, m) => s + m.cpu.machineBusyPct * m.cpu.windowMs, 0) / windowMs;
  if (otherPct >= 20) {
    section.observe(
      `Processes outside the benchmark used ${otherPct.toFixed(0)}% of one core on average during the windows ` +
        `(the host was ${busyPct.toFixed(0)}% busy overall): latencies are inflated by CPU contention; compare ratios, ` +
        'which interleaving keeps fair, rather than absolute values.',
    );
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      connections: { type: 'string' },
      warmup: { type: 'string' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      'wait-quiet': { type: 'string' },
      'via-proxy': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || values.list || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help || values.list ? 0 : 2;
  }
  if (positionals.length > 1) throw new Error(`one scenario at a time (got ${positionals.join(', ')})`);
  const name = positionals[0]!;
  const scenarios: Scenario[] = name === 'all' ? [...SCENARIOS] : [findScenario(name)].filter((s): s is Scenario => s !== undefined);
  if (scenarios.length === 0) throw new Error(`unknown scenario '${name}'\n${USAGE}`);

  const quick = values.quick === true;
  const base = quick ? QUICK : FULL;
  const timing: Timing = {
    warmupMs: intOption(values, 'warmup', 0) ?? base.warmupMs,
    durationMs: intOption(values, 'duration', 100) ?? base.durationMs,
  };
  const connections = intOption(values, 'connections', 1) ?? 1;
  const rounds = intOption(values, 'rounds', 1) ?? (quick ? QUICK_ROUNDS : FULL_ROUNDS);
  const waitQuietMs = (intOption(values, 'wait-quiet', 0) ?? 0) * 1000;
  const viaProxy = values['via-proxy'] === true;
  const outDir = resolve(values.out ?? DEFAULT_OUT);
  const log = (line: string) => process.stderr.write(line + '\n');
  const progress = new Progress();

  const live = new Set<BenchCluster>();
  let peers: Promise<Peers> | null = null;
  let peersStarted: Peers | null = null;
  const stopPeers = async () => {
    const p = peers;
    peers = null;
    peersStarted = null;
    if (p) await progress.step('stopping the peers', async () => (await p.catch(() => null))?.stop());
  };
  onInterrupt(
    () => Promise.allSettled([...[...live].map((c) => c.stop()), stopPeers()]),
    () => progress.stop(),
  );
  const facts = new Facts();
  const startedAt = new Date();
  const machine = describeMachine();
  const busy = await machineBusyPct(1000);
  if (busy > BUSY_WARN_PCT) log(`warning: the host is already ${busy.toFixed(0)}% busy (all cores) before the run: expect noisy numbers`);
  log(
    `bench ${name}${quick ? ' --quick' : ''}: ${machine.cores} cores (${machine.cpuModel}), warm-up ${timing.warmupMs} ms, ` +
      `window ${timing.durationMs} ms in ${rounds} interleaved round(s), ${connections} connection(s)${viaProxy ? ', via proxies' : ''}`,
  );

  let environment: Environment | null = null;
  const peerSystems = new Map<string, { name: string; role: string; durability: string }>();
  const skippedPeers = new Map<PeerId, string>();
  let shared: BenchCluster | null = null;
  const owned: BenchCluster[] = [];
  const startCluster = async (req: ClusterRequest): Promise<BenchCluster> => {
    const { nodes } = req;
    const c = await progress.step(`starting ZooKeeper, nats-server and ${nodes} node(s)`, () =>
      BenchCluster.start({
        nodes,
        connections,
        viaProxy,
        ...(req.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: req.sessionTimeoutMs } : {}),
        ...(req.leaseMs !== undefined ? { leaseMs: req.leaseMs } : {}),
        ...(req.logLevel !== undefined ? { logLevel: req.logLevel } : {}),
        ...(req.echoPeers !== undefined ? { echoPeers: req.echoPeers } : {}),
        ...(req.faults !== undefined ? { faults: req.faults } : {}),
        ...(req.metrics !== undefined ? { metrics: req.metrics } : {}),
        ...(req.durable !== undefined ? { durable: req.durable } : {}),
        ...(req.access !== undefined ? { access: req.access } : {}),
      }),
    );
    live.add(c);
    environment ??= {
      date: startedAt.toISOString(),
      machine: { ...machine, busyPctAtStart: busy },
      versions: await describeVersions(c.connections[0]!, c.local.zookeeper),
      systems: describeSystems(),
    };
    return c;
  };

  const report: Report = {
    name,
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
    quick,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    environment: null,
    method: [
      ...METHOD,
      `Warm-up ${timing.warmupMs} ms, window ${timing.durationMs} ms per measurement unless a section says otherwise, ` +
        `split into ${rounds} interleaved round(s) (later rounds re-warm for 150 ms); ${connections} NATS connection(s) for the load.`,
    ],
    sections: [],
  };
  const svgs = new Map<string, string>();
  let failed: unknown = null;
  try {
    for (const [index, scenario] of scenarios.entries()) {
      const later = scenarios.slice(index);
      // Idle servers still cost a little CPU: stop what no remaining scenario needs.
      if (peers && !later.some((s) => s.usesPeers)) await stopPeers();
      if (shared && later.every((s) => s.ownCluster)) {
        const previous: BenchCluster = shared;
        shared = null;
        await progress.step('stopping the shared cluster', () => previous.stop());
        live.delete(previous);
      }
      const section = new SectionBuilder(scenario.name, scenario.title, scenario.description);
      report.sections.push(section.section);
      log(`\n== ${scenario.name}: ${scenario.title}`);
      const t0 = performance.now();
      const ctx: ScenarioContext = {
        quick,
        timing,
        rounds,
        waitQuietMs,
        quietPct: QUIET_PCT,
        connections,
        progress,
        section,
        log,
        facts,
        async cluster(req) {
          if (req.fresh) {
            const c = await startCluster(req);
            owned.push(c);
            return c;
          }
          if (shared && shared.local.view().filter((n) => n.running).length === req.nodes) return shared;
          if (shared) {
            const previous: BenchCluster = shared;
            await progress.step('stopping the previous cluster', () => previous.stop());
            live.delete(previous);
          }
          shared = await startCluster({ nodes: req.nodes });
          return shared;
        },
        peers() {
          peers ??= progress
            .step('starting the peers (etcd ×3, ZooKeeper, JetStream ×3, LevelDB)', () => startPeers(log))
            .then((p) => {
              peersStarted = p;
              for (const s of p.skipped) skippedPeers.set(s.id, s.reason);
              for (const peer of p.list) peerSystems.set(peer.id, { name: peer.name, role: `peer: ${peer.description}; ${peer.routing}`, durability: peer.durability });
              return p;
            });
          return peers;
        },
        startedPeers: () => peersStarted,
      };
      try {
        await scenario.run(ctx);
        noteForeignLoad(section);
      } finally {
        section.flush();
        for (const [file, svg] of section.svgs) svgs.set(file, svg);
        for (const c of owned.splice(0)) {
          await progress.step('stopping the cluster', () => c.stop());
          live.delete(c);
        }
      }
      log(`== ${scenario.name} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  } catch (err) {
    failed = err;
  } finally {
    progress.stop();
    const last = shared as BenchCluster | null;
    if (last) await progress.step('stopping the cluster', () => last.stop()).catch((err: unknown) => log(`stop failed: ${String(err)}`));
    await stopPeers().catch((err: unknown) => log(`stopping the peers failed: ${String(err)}`));
  }
  if (facts.size > 0) {
    const section = new SectionBuilder(
      'targets',
      'Targets',
      'The issue\'s targets, judged on figures measured in this run (the tables below give the details). ' +
        'A target whose figures were not measured (scenario not run, peer skipped) says so.',
    );
    const judged = addTargetsTable(section, facts);
    section.flush();
    const met = judged.filter((j) => j.verdict === 'met').length;
    const measured = judged.filter((j) => j.verdict !== 'not measured').length;
    section.observe(`${met} of ${measured} measured targets met (${judged.length - measured} not measured in this run).`);
    report.sections.unshift(section.section);
    report.facts = facts.toJSON();
  }
  if (environment) {
    const env = environment as Environment;
    for (const sys of peerSystems.values()) env.systems.push(sys);
    for (const [id, reason] of skippedPeers) env.systems.push({ name: SYSTEM_NAMES[id], role: 'peer (skipped)', durability: `not measured: ${reason}` });
  }
  report.environment = environment;
  report.finishedAt = new Date().toISOString();
  if (report.sections.some((s) => s.measurements.length > 0 || s.tables.some((t) => t.rows.length > 0))) {
    const dir = await writeReport(report, svgs, outDir, startedAt);
    log(`\nreport: ${dir}/report.md (also ${outDir}/latest/)`);
  }
  if (trackedProcesses().length > 0) {
    log(`warning: ${trackedProcesses().length} process(es) still tracked after stop; killing them`);
    killAllProcessesSync();
  }
  if (failed) throw failed;
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllProcessesSync();
    process.exit(1);
  },
);
