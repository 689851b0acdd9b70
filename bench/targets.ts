// The targets table: what the bench issue asks of ZiStore, judged on figures the scenarios of
// the same run recorded as named facts. A target whose figures were not measured in this run
// (scenario not run, peer skipped) says so instead of guessing.
import type { SectionBuilder } from './report.ts';
import type { LiveTable } from './table.ts';

export interface Fact {
  value: number;
  /** How it was obtained, e.g. 'median of 3 trials' or 'extrapolated from 100,000 keys'. */
  detail?: string;
  /** True when the figure is not measured directly (quick mode's extrapolations). */
  extrapolated?: boolean;
}

/**
 * Fact names (set by the scenarios):
 *   get1.zistore.p50, get1.echo.p50          µs  (peers)
 *   get64.<system>.ops                        ops/s (peers; zistore = the client's default routing)
 *   put1.<system>.p50                         µs  (peers)
 *   put64.<system>.ops, put16k64.<system>.ops ops/s (peers)
 *   ycsb.<a|b>.64.<system>.ops                ops/s (ycsb, 1 writer, 64 in flight)
 *   failover.kill.ms, failover.graceful.ms    ms, default session timeout (failover)
 *   resync.<count>x<bytes>.ms                 ms, leader-side transfer (recovery)
 *   resync.<count>x<bytes>.servingMs          ms, addNode → serving (recovery)
 *   memory.1m16.mb                            MB RSS per node (recovery)
 *   up.<put1|get1>.<socket|none|proxy>.p50    µs at the leader, 1 in flight, per fault injection (up)
 *   durable.get1.<memory|always|interval|echo>.p50      µs, ZiStore: the worse node (durable)
 *   durable.put1.<mode|etcd|zookeeper|jetstream|echo>.p50  µs at the leader (durable)
 *   durable.put64.<mode|etcd|zookeeper|jetstream|echo>.ops ops/s (durable; zookeeper = the 3-server ensemble)
 *   durable.restart.ms                        ms, kill -9 of every node → a get and a put served (restart)
 *   durable.memory.mb                         MB VmRSS without the LMDB map's page cache, durable node, 1,000,000 × 16 B (restart)
 */
export class Facts {
  private readonly facts = new Map<string, Fact>();

  set(name: string, value: number, extra: Omit<Fact, 'value'> = {}): void {
    if (Number.isFinite(value)) this.facts.set(name, { value, ...extra });
  }

  get(name: string): Fact | undefined {
    return this.facts.get(name);
  }

  get size(): number {
    return this.facts.size;
  }

  toJSON(): Record<string, Fact> {
    return Object.fromEntries(this.facts);
  }
}

type Verdict = 'met' | 'not met' | 'not measured';

interface Judged {
  target: string;
  measured: string;
  peer: string;
  ratio: number | null;
  goal: string;
  verdict: Verdict;
}

const SYSTEMS: [string, string][] = [
  ['etcd', 'etcd'],
  ['zookeeper', 'ZooKeeper'],
  ['jetstream', 'JetStream KV'],
  ['leveldb', 'LevelDB'],
];

const us = (v: number) => `${v < 100 ? v.toFixed(1) : Math.round(v)} µs`;
const ops = (v: number) => `${Math.round(v).toLocaleString('en-US')} ops/s`;
const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
const mark = (f: Fact | undefined, text: string) => (f?.extrapolated ? `${text} (extrapolated)` : text);

/** ZiStore vs a peer: ratio = ZiStore ÷ peer, met when it is within `ok`. */
function relative(
  facts: Facts,
  target: string,
  zsName: string,
  peerName: string,
  peerLabel: string,
  fmt: (v: number) => string,
  goal: string,
  ok: (ratio: number) => boolean,
): Judged {
  const zs = facts.get(zsName);
  const peer = facts.get(peerName);
  if (!zs || !peer) {
    return { target, measured: zs ? fmt(zs.value) : '–', peer: peer ? `${peerLabel} ${fmt(peer.value)}` : `${peerLabel}: –`, ratio: null, goal, verdict: 'not measured' };
  }
  const r = zs.value / peer.value;
  return { target, measured: fmt(zs.value), peer: `${peerLabel} ${fmt(peer.value)}`, ratio: r, goal, verdict: ok(r) ? 'met' : 'not met' };
}

/** An absolute limit: ratio = measured ÷ limit, met when ≤ 1. */
function absolute(facts: Facts, target: string, name: string, limit: number, fmt: (v: number) => string, goal: string, extra?: (f: Facts) => string): Judged {
  const f = facts.get(name);
  if (!f) return { target, measured: '–', peer: '–', ratio: null, goal, verdict: 'not measured' };
  const detail = [f.detail, extra?.(facts)].filter(Boolean).join('; ');
  return {
    target,
    measured: mark(f, fmt(f.value)) + (detail ? ` (${detail})` : ''),
    peer: '–',
    ratio: f.value / limit,
    goal,
    verdict: f.value <= limit ? 'met' : 'not met',
  };
}

/** YCSB: ZiStore ahead of every peer that ran; ratio against the best of them. */
function ahead(facts: Facts, workload: 'a' | 'b'): Judged {
  const target = `YCSB ${workload.toUpperCase()}, 64 in flight: ops/s ahead of every peer`;
  const zs = facts.get(`ycsb.${workload}.64.zistore.ops`);
  const peers = SYSTEMS.flatMap(([id, label]) => {
    const f = facts.get(`ycsb.${workload}.64.${id}.ops`);
    return f ? [{ label, value: f.value }] : [];
  });
  if (!zs || peers.length === 0) return { target, measured: zs ? ops(zs.value) : '–', peer: '–', ratio: null, goal: '> 1× the best peer', verdict: 'not measured' };
  const best = peers.reduce((a, b) => (b.value > a.value ? b : a));
  const r = zs.value / best.value;
  // LevelDB runs inside the client process: say how ZiStore stands against the networked peers too.
  const networked = peers.filter((p) => p.label !== 'LevelDB');
  const bestNet = networked.length > 0 ? networked.reduce((a, b) => (b.value > a.value ? b : a)) : null;
  const netText = bestNet && bestNet !== best ? `; best networked: ${bestNet.label} ${ops(bestNet.value)} (${(zs.value / bestNet.value).toFixed(2)}×)` : '';
  return {
    target,
    measured: ops(zs.value),
    peer: `best: ${best.label} ${ops(best.value)}${netText}`,
    ratio: r,
    goal: '> 1× the best peer',
    verdict: r > 1 ? 'met' : 'not met',
  };
}

export function judgeTargets(facts: Facts): Judged[] {
  const serving = (key: string) => (f: Facts) => {
    const s = f.get(`resync.${key}.servingMs`);
    return s ? `addNode → serving ${ms(s.value)}` : '';
  };
  return [
    relative(facts, '`zistore up` (socket faults) put at the leader, 1 in flight: p50', 'up.put1.socket.p50', 'up.put1.none.p50', 'directly connected nodes', us, '≤ 1.05× direct', (r) => r <= 1.05),
    relative(facts, '`zistore up` (socket faults) get at the leader, 1 in flight: p50', 'up.get1.socket.p50', 'up.get1.none.p50', 'directly connected nodes', us, '≤ 1.05× direct', (r) => r <= 1.05),
    relative(facts, 'get at a node, 1 in flight: p50', 'get1.zistore.p50', 'get1.echo.p50', 'NATS echo', us, '≤ 1.10× echo', (r) => r <= 1.1),
    relative(facts, 'get, 64 in flight: ops/s', 'get64.zistore.ops', 'get64.jetstream.ops', 'JetStream KV R3 direct get', ops, '≥ 1.5× JetStream', (r) => r >= 1.5),
    relative(facts, 'put, 1 in flight: p50', 'put1.zistore.p50', 'put1.jetstream.p50', 'JetStream KV R3', us, '≤ 1.0× JetStream', (r) => r <= 1),
    relative(facts, 'put, 64 in flight: ops/s', 'put64.zistore.ops', 'put64.jetstream.ops', 'JetStream KV R3', ops, '≥ 1.5× JetStream', (r) => r >= 1.5),
    relative(facts, 'put, 64 in flight: ops/s', 'put64.zistore.ops', 'put64.etcd.ops', 'etcd 3 members', ops, '≥ 5× etcd', (r) => r >= 5),
    relative(facts, '16 KiB put, 64 in flight: ops/s', 'put16k64.zistore.ops', 'put16k64.jetstream.ops', 'JetStream KV R3', ops, '≥ 2× JetStream', (r) => r >= 2),
    ahead(facts, 'a'),
    ahead(facts, 'b'),
    absolute(facts, 'leader kill -9 → first acknowledged write (session timeout 2000 ms)', 'failover.kill.ms', 1000, ms, '≤ 1.0 s'),
    absolute(facts, 'graceful leader stop → first acknowledged write', 'failover.graceful.ms', 200, ms, '≤ 0.2 s'),
    absolute(facts, 'resync 1000 × 512 B (leader-side transfer)', 'resync.1000x512.ms', 100, ms, '≤ 0.1 s', serving('1000x512')),
    absolute(facts, 'resync 1000 × 16 KiB (leader-side transfer)', 'resync.1000x16384.ms', 500, ms, '≤ 0.5 s', serving('1000x16384')),
    absolute(facts, 'resync 1,000,000 × 16 B (leader-side transfer)', 'resync.1000000x16.ms', 10_000, ms, '≤ 10 s', serving('1000000x16')),
    absolute(facts, 'memory per node, 1,000,000 keys of 16 B (VmRSS)', 'memory.1m16.mb', 200, (v) => `${Math.round(v)} MB`, '≤ 200 MB'),
    relative(facts, 'durable (--fsync always) put, 64 in flight: ops/s', 'durable.put64.always.ops', 'durable.put64.etcd.ops', 'etcd 3 members', ops, '≥ 2× etcd', (r) => r >= 2),
    relative(facts, 'durable (--fsync always) put, 64 in flight: ops/s', 'durable.put64.always.ops', 'durable.put64.zookeeper.ops', 'ZooKeeper 3-server ensemble', ops, '≥ 2× ZooKeeper', (r) => r >= 2),
    relative(facts, 'durable (--fsync interval) put, 64 in flight: ops/s', 'durable.put64.interval.ops', 'durable.put64.jetstream.ops', 'JetStream KV R3', ops, '≥ 1.5× JetStream', (r) => r >= 1.5),
    relative(facts, 'durable (--fsync interval) put, 1 in flight: p50', 'durable.put1.interval.p50', 'durable.put1.jetstream.p50', 'JetStream KV R3', us, '≤ 1.3× JetStream', (r) => r <= 1.3),
    ...(['memory', 'always', 'interval'] as const).map((mode) =>
      relative(facts, `get at a node, 1 in flight: p50, ${mode === 'memory' ? 'memory only' : `--fsync ${mode}`} (durable run)`, `durable.get1.${mode}.p50`, 'durable.get1.echo.p50', 'NATS echo', us, '≤ 1.10× echo', (r) => r <= 1.1),
    ),
    absolute(facts, 'durable: kill -9 of the whole cluster, 1,000,000 × 16 B → serving reads and writes', 'durable.restart.ms', 5000, ms, '≤ 5 s'),
    absolute(facts, "durable node holding 1,000,000 × 16 B (VmRSS without the LMDB map's page cache)", 'durable.memory.mb', 200, (v) => `${Math.round(v)} MB`, '≤ 200 MB'),
  ];
}

/** Add the targets table to a section; returns the verdicts for the console summary. */
export function addTargetsTable(section: SectionBuilder, facts: Facts): Judged[] {
  const judged = judgeTargets(facts);
  const table: LiveTable = section.table('targets', 'Targets (3 nodes, 16 B keys and values unless stated; medians of this run)', [
    { key: 'target', label: 'target', kind: 'text' },
    { key: 'measured', label: 'ZiStore', kind: 'text' },
    { key: 'peer', label: 'peer / reference', kind: 'text' },
    { key: 'ratio', label: 'ratio', kind: 'ratio' },
    { key: 'goal', label: 'goal', kind: 'text' },
    { key: 'verdict', label: 'verdict', kind: 'text' },
  ], { live: false });
  for (const j of judged) table.add({ ...j });
  table.note('ratio: ZiStore ÷ peer for comparisons (latency: lower is better; ops/s: higher is better), measured ÷ limit for absolute targets (≤ 1 meets it).');
  return judged;
}
