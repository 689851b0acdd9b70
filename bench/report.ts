// The report of one bench run: JSON (everything measured) and Markdown (README-ready tables and
// charts), written to <out>/<scenario>-<timestamp>/ and copied to <out>/latest/.
import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Environment } from './environment.ts';
import { formatBytes, formatValue } from './format.ts';
import type { LoadResult } from './load.ts';
import type { SystemId } from './peers/types.ts';
import { renderSvg, type Chart } from './svg.ts';
import { LiveTable, tableMarkdown, type Column, type TableData } from './table.ts';

/** ZiStore's targets (kv-systems.ts ZiTarget), the echo floor, or a peer. */
export type Target = 'leader' | 'follower' | 'any' | 'client' | 'echo' | 'peer';

/** One closed-loop run and what it ran against. */
export interface Measurement extends LoadResult {
  system: SystemId;
  /** 'put', 'get' or a custom operation ('ycsb-a', …). */
  op: string;
  valueBytes: number;
  target: Target;
  /** The node id the requests went to (null: the queue group or the echo peer). */
  node: string | null;
  /** Echo relay fan-out (0 or absent: plain echo). */
  fanout?: number;
  /** Sessions with their own connections the load was spread over (absent: 1). */
  writers?: number;
  keyMode?: 'overwrite' | 'append';
  records?: number;
  /** ZiStore nodes running (0 for a peer). */
  nodes: number;
  connections: number;
}

export interface Section {
  scenario: string;
  title: string;
  description: string;
  settings: Record<string, unknown>;
  tables: TableData[];
  charts: { file: string; title: string }[];
  observations: string[];
  measurements: Measurement[];
}

export interface Report {
  name: string;
  command: string;
  quick: boolean;
  startedAt: string;
  finishedAt: string;
  environment: Environment | null;
  method: string[];
  sections: Section[];
  /** Named results the targets table was judged on (targets.ts). */
  facts?: Record<string, unknown>;
}

export class SectionBuilder {
  readonly section: Section;
  /** SVGs rendered so far, by file name; written with the report. */
  readonly svgs = new Map<string, string>();

  constructor(scenario: string, title: string, description: string) {
    this.section = { scenario, title, description, settings: {}, tables: [], charts: [], observations: [], measurements: [] };
  }

  private readonly deferred: LiveTable[] = [];

  /** A table; `live: false` prints it whole when the scenario ends (flush) instead of row by row. */
  table(id: string, title: string, columns: Column[], opts: { live?: boolean } = {}): LiveTable {
    const data: TableData = { id, title, columns, rows: [], notes: [] };
    this.section.tables.push(data);
    const t = new LiveTable(data, undefined, opts.live ?? true);
    if (!t.live) this.deferred.push(t);
    return t;
  }

  /** Print the tables that are not live. */
  flush(): void {
    for (const t of this.deferred.splice(0)) t.print();
  }

  measurement(m: Measurement): void {
    this.section.measurements.push(m);
  }

  observe(text: string): void {
    this.section.observations.push(text);
    process.stdout.write(`  note: ${text}\n`);
  }

  chart(id: string, chart: Chart): void {
    const file = `${this.section.scenario}-${id}.svg`;
    this.svgs.set(file, renderSvg(chart));
    this.section.charts.push({ file, title: chart.title });
  }
}

export const METHOD = [
  'Closed loop: C workers each send their next request as soon as the previous reply arrives (C = operations in flight).',
  'Each run has a warm-up, then a timed window; only requests that start and finish inside the window are recorded.',
  'The runs compared in one table row group (e.g. echo, put at the leader, put at a follower) are interleaved in rounds (A B C A B C …) and each one\'s rounds are merged, so drifts in the host\'s background load hit all of them alike.',
  'Latency: HdrHistogram (3 significant digits) of the request-reply time seen by the client, in µs.',
  'CPU: utime+stime from /proc/<pid>/stat of ZooKeeper, nats-server, the echo responder and each node, and process.cpuUsage() of the bench, sampled at the window edges; "other" is machine busy time (/proc/stat) not accounted for by these processes.',
  'Echo: a bare NATS request-reply to a responder in another Node process on the same nats-server, with the same headers and body sizes as the ZiStore request (put-shaped: value out, empty reply; get-shaped: empty request, value back). "×echo" = ZiStore / echo at the same percentile.',
  'Relay (the replication floor): the responder first sends the value to N other responder processes in parallel (requests through bus/request-mux.ts, as a ZiStore leader sends them), then answers: the message pattern of a put at the leader with N followers, without the store. "×relay" = ZiStore / relay at the same percentile.',
  'ZiStore requests go to one node through its node subject (`zistore.<c>.node.<id>.put|get`), or to the cluster queue group (`any`). Nodes connect straight to nats-server and ZooKeeper (no fault-injection proxy).',
];

const timestamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace('T', '-');

function environmentMarkdown(env: Environment | null): string[] {
  if (!env) return ['_Environment not recorded (no cluster was started)._'];
  const m = env.machine;
  const v = env.versions;
  return [
    '| | |',
    '|---|---|',
    `| date | ${env.date} |`,
    `| machine | ${m.cores} cores, ${m.cpuModel}, ${formatBytes(m.memoryBytes)} RAM, ${m.os} |`,
    `| host load at start | 1-min load average ${m.loadAvg1m.toFixed(2)}; ${m.busyPctAtStart?.toFixed(0) ?? '?'}% of all cores busy in the second before the run |`,
    `| node | ${v.node} (nats.js ${v.natsJs}) |`,
    `| nats-server | ${v.natsServer} |`,
    `| ZooKeeper | ${v.zookeeper} (${v.java}) |`,
    `| ZiStore | ${v.zistore}, source fingerprint \`${v.zistoreSource}\` (sha256 of actors/, bus/, coordination/, cli/, client/) |`,
    '',
    `**Host:** ${m.note}.`,
    '',
    '| system | role | durability |',
    '|---|---|---|',
    ...env.systems.map((s) => `| ${s.name} | ${s.role} | ${s.durability} |`),
  ];
}

function cpuMarkdown(ms: Measurement[]): string[] {
  if (ms.length === 0) return [];
  const names = [...new Set(ms.flatMap((m) => m.cpu.processes.map((p) => p.name)))];
  const order = ['bench', 'nats-server', 'zookeeper', 'echo0', 'echo1', 'echo2', 'echo3'];
  names.sort((a, b) => {
    const ia = order.indexOf(a);
    const ib = order.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    return a.localeCompare(b);
  });
  const head = `| run | ops/s | ${names.join(' | ')} | other | CPU µs/op |`;
  const rule = `|---|---:|${names.map(() => '---:').join('|')}|---:|---:|`;
  const rows = ms.map((m) => {
    const cells = names.map((n) => {
      const p = m.cpu.processes.find((x) => x.name === n);
      return p ? formatValue('pct', p.corePct) : '–';
    });
    const other = m.cpu.windowMs > 0 ? (100 * m.cpu.otherCpuMs) / m.cpu.windowMs : 0;
    return `| ${m.label} | ${formatValue('rate', m.opsPerSec)} | ${cells.join(' | ')} | ${formatValue('pct', other)} | ${formatValue('us', m.cpuUsPerOp)} |`;
  });
  return [
    'CPU of each process over the window, in % of one core (the host has 2 cores = 200%):',
    '',
    head,
    rule,
    ...rows,
  ];
}

export function reportMarkdown(r: Report): string {
  const lines: string[] = [];
  lines.push(`# ZiStore benchmark: ${r.name}${r.quick ? ' (quick)' : ''}`, '');
  lines.push(`\`${r.command}\` — started ${r.startedAt}, finished ${r.finishedAt}.`, '');
  if (r.quick) lines.push('> **Quick run:** short warm-up and window; fine for smoke-testing, noisy for the tails (p99.9, max).', '');
  lines.push('## Environment', '', ...environmentMarkdown(r.environment), '');
  for (const s of r.sections) {
    lines.push(`## ${s.title}`, '', s.description, '');
    const settings = Object.entries(s.settings).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    if (settings.length > 0) lines.push(`Settings — ${settings.join('; ')}.`, '');
    for (const t of s.tables) {
      lines.push(`### ${t.title}`, '', tableMarkdown(t), '');
      for (const n of t.notes) lines.push(`- ${n}`);
      if (t.notes.length > 0) lines.push('');
    }
    for (const c of s.charts) lines.push(`![${c.title}](${c.file})`, '');
    if (s.observations.length > 0) {
      lines.push('**Observations**', '');
      for (const o of s.observations) lines.push(`- ${o}`);
      lines.push('');
    }
    const cpu = cpuMarkdown(s.measurements);
    if (cpu.length > 0) lines.push('<details><summary>CPU per run</summary>', '', ...cpu, '', '</details>', '');
  }
  lines.push('## Method', '', ...r.method.map((m) => `- ${m}`), '');
  return lines.join('\n');
}

export async function writeReport(r: Report, svgs: Map<string, string>, outDir: string, startedAt: Date): Promise<string> {
  const dir = join(outDir, `${r.name}-${timestamp(startedAt)}`);
  await mkdir(dir, { recursive: true });
  const files = new Map<string, string>([
    ['report.json', JSON.stringify(r, null, 2) + '\n'],
    ['report.md', reportMarkdown(r)],
    ...svgs,
  ]);
  for (const [name, text] of files) await writeFile(join(dir, name), text);
  // latest/ mirrors the last run: clear what an earlier run left, then copy.
  const latest = join(outDir, 'latest');
  await mkdir(latest, { recursive: true });
  for (const name of await readdir(latest)) {
    if (name === 'report.json' || name === 'report.md' || name.endsWith('.svg')) await rm(join(latest, name), { force: true });
  }
  for (const name of files.keys()) await copyFile(join(dir, name), join(latest, name));
  return dir;
}
