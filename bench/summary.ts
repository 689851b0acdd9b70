// Prints README-ready Markdown from a report.json (default bench/results/latest/): the machine
// and date, the targets table, the peers' summary tables and YCSB at 64 in flight.
//   node --import tsx bench/summary.ts [path/to/report.json]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Report } from './report.ts';
import { tableMarkdown, type TableData } from './table.ts';

const file = process.argv[2] ?? fileURLToPath(new URL('results/latest/report.json', import.meta.url));
const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
const table = (scenario: string, id: string): TableData | undefined =>
  report.sections.find((s) => s.scenario === scenario)?.tables.find((t) => t.id === id);

const out: string[] = [];
const env = report.environment;
if (env) {
  out.push(
    `Measured ${env.date.slice(0, 10)} on ${env.machine.cores} cores (${env.machine.cpuModel}), ${env.machine.os}; ` +
      `node ${env.versions.node}, nats-server ${env.versions.natsServer}, ZooKeeper ${env.versions.zookeeper}; ` +
      `\`${report.command}\`${report.quick ? ' (quick: short windows)' : ''}.`,
    '',
  );
}
const print = (t: TableData | undefined, filter?: (row: TableData['rows'][number]) => boolean) => {
  if (!t) return;
  const shown = filter ? { ...t, rows: t.rows.filter(filter) } : t;
  out.push(`**${t.title}**`, '', tableMarkdown(shown), '');
  for (const n of t.notes) out.push(`- ${n}`);
  if (t.notes.length > 0) out.push('');
};
print(table('targets', 'targets'));
print(table('peers', 'latency'));
print(table('peers', 'throughput'));
print(table('ycsb', 'ops'), (r) => r.inflight === 64);
process.stdout.write(out.join('\n') + '\n');
