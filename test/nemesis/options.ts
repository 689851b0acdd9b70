// Options of a nemesis run and their command-line form.
import { parseArgs } from 'node:util';

/** What `--faults` accepts. `leader` aims some of the other faults at the current leader. */
export const FAULT_NAMES = ['kill', 'pause', 'zk', 'rmi', 'leader', 'restart', 'cascade', 'crash'] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export interface NemesisOptions {
  seed: number;
  /** Seconds of workload under faults (the final heal and checks come on top). */
  durationS: number;
  nodes: number;
  clients: number;
  keys: number;
  faults: FaultName[];
  /** Keep the cluster data dir (node logs) even when the run passes. Failed runs always keep it. */
  keepLogs: boolean;
  /** Where history.json and summary.json go; a new temp dir when omitted. */
  resultsDir?: string;
  cluster: string;
  sessionTimeoutMs: number;
  /** The nodes' operation timeout (PROTOCOL.md default 4 s). */
  opTimeoutMs: number;
  /** How long a client waits for a reply: a little above opTimeoutMs. */
  clientTimeoutMs: number;
  /** Force how `restart` stops the node (default: SIGTERM or kill -9 at random). */
  restartMode?: 'term' | 'kill';
  /** Every node keeps its copy on a data dir: a kill costs no copy. */
  durable: boolean;
  /** The data dirs' --fsync policy (with durable). */
  fsync: 'always' | 'interval';
  /** Pause between two fault injections, uniform in [min, max] ms. */
  faultIntervalMs: [number, number];
  /** Share of requests sent to the queue-group subjects instead of a chosen node. */
  queueGroupShare: number;
  /** Bound on the wait for every node to serve again after the final heal. */
  healTimeoutMs: number;
  /** Bound on the final reads of every key at every node. */
  finalReadTimeoutMs: number;
  /** Seconds of workload after the final heal, to see the cluster serve again. */
  afterHealS: number;
  /** Wall-clock budget of the linearizability search. */
  checkBudgetMs: number;
  /** Progress lines; silent when omitted. */
  log?: (line: string) => void;
  /** Abort (e.g. SIGINT): stop the workload, heal, stop the cluster, skip the checks. */
  signal?: AbortSignal;
}

export const DEFAULTS: Omit<NemesisOptions, 'seed'> = {
  durationS: 60,
  nodes: 3,
  clients: 4,
  keys: 8,
  faults: ['kill', 'pause', 'zk', 'rmi', 'leader', 'restart', 'cascade'],
  keepLogs: false,
  durable: false,
  fsync: 'always',
  cluster: 'nemesis',
  sessionTimeoutMs: 2000,
  opTimeoutMs: 4000,
  clientTimeoutMs: 5000,
  faultIntervalMs: [1000, 4000],
  queueGroupShare: 0.25,
  healTimeoutMs: 60_000,
  afterHealS: 3,
  finalReadTimeoutMs: 60_000,
  checkBudgetMs: 60_000,
};

export const USAGE = `usage: npm run nemesis -- [options]
  --seed N            seed of the fault schedule and workload (default: random, printed)
  --duration S        seconds of workload under faults (default ${DEFAULTS.durationS})
  --nodes N           ZiStore nodes (default ${DEFAULTS.nodes}, at least 2)
  --clients C         concurrent clients, each with its own NATS connection (default ${DEFAULTS.clients})
  --keys K            number of keys (default ${DEFAULTS.keys})
  --faults LIST       comma-separated subset of ${FAULT_NAMES.join(',')} (default: all)
                        kill     kill -9 a node, restart it (same id) 1-8 s later
                        restart  stop a node (SIGTERM or kill -9) and start it again at once
                        pause    SIGSTOP, SIGCONT 0.3-5 s later
                        zk       cut the node's ZooKeeper link ('close' or 'drop'), restore later
                        rmi      cut the node's NATS link ('close' or 'drop'), restore later
                        cascade  a follower off NATS until removed, then every node off ZooKeeper
                                 past the session timeout, back one by one in a random order
                        crash    (--durable only; in the default set with it) kill -9 of every
                                 node at once, started again one by one in a random order
                        leader   aim about half of the faults above at the current leader
  --restart-mode M    make every \`restart\` fault use M: term (SIGTERM) or kill (kill -9)
  --durable           every node on a data dir (--fsync always): killed nodes keep their copy;
                      adds the crash fault to the default set
  --fsync P           the data dirs' policy: always (default) or interval (implies --durable)
  --keep-logs         keep the cluster data dir with the node logs (failed runs always keep it)
  --results DIR       where to write history.json and summary.json (default: a new temp dir)
  --check-budget MS   time budget of the linearizability search (default ${DEFAULTS.checkBudgetMs})
  -h, --help          this text`;

export class UsageError extends Error {}

function positiveInt(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}`);
  return n;
}

export function parseFaults(raw: string): FaultName[] {
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(FAULT_NAMES as readonly string[]).includes(n)) throw new UsageError(`unknown fault ${JSON.stringify(n)}; known: ${FAULT_NAMES.join(', ')}`);
  }
  return [...new Set(names)] as FaultName[];
}

/** The faults asked for; by default every one, `crash` only on data dirs (in memory it loses everything by design). */
function faultsFor(raw: string | undefined, durable: boolean): FaultName[] {
  if (raw === undefined) return durable ? [...DEFAULTS.faults, 'crash'] : [...DEFAULTS.faults];
  const faults = parseFaults(raw);
  if (faults.includes('crash') && !durable) throw new UsageError('the crash fault needs --durable (in memory, losing every node loses the data by design)');
  return faults;
}

/** Parses the command line; null when help was asked for. */
export function parseCommandLine(argv: string[]): NemesisOptions | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      seed: { type: 'string' },
      duration: { type: 'string' },
      nodes: { type: 'string' },
      clients: { type: 'string' },
      keys: { type: 'string' },
      faults: { type: 'string' },
      'keep-logs': { type: 'boolean' },
      results: { type: 'string' },
      'check-budget': { type: 'string' },
      'restart-mode': { type: 'string' },
      durable: { type: 'boolean' },
      fsync: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const restartMode = values['restart-mode'];
  if (restartMode !== undefined && restartMode !== 'term' && restartMode !== 'kill') throw new UsageError('--restart-mode must be term or kill');
  const fsync = values.fsync ?? 'always';
  if (fsync !== 'always' && fsync !== 'interval') throw new UsageError('--fsync must be always or interval');
  const durable = values.durable === true || values.fsync !== undefined;
  const seed = positiveInt('seed', values.seed, 0, Number.MAX_SAFE_INTEGER) ?? Math.floor(Math.random() * 1_000_000_000);
  return {
    ...DEFAULTS,
    seed,
    durationS: positiveInt('duration', values.duration, 1, 24 * 3600) ?? DEFAULTS.durationS,
    nodes: positiveInt('nodes', values.nodes, 2, 15) ?? DEFAULTS.nodes,
    clients: positiveInt('clients', values.clients, 1, 256) ?? DEFAULTS.clients,
    keys: positiveInt('keys', values.keys, 1, 100_000) ?? DEFAULTS.keys,
    faults: faultsFor(values.faults, durable),
    keepLogs: values['keep-logs'] ?? false,
    durable,
    fsync,
    resultsDir: values.results,
    restartMode,
    checkBudgetMs: positiveInt('check-budget', values['check-budget'], 100, 3_600_000) ?? DEFAULTS.checkBudgetMs,
  };
}
