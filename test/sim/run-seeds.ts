// `npm run sim -- --seeds 5000 [--start N] [--faults crash,zk-partition,...] [--multi-key] [--verbose]`
// runs many seeds and prints each failing seed with a one-line summary and its details, then a
// summary with seeds/s. `SIM_SEED=<n>` (or `--seed <n>`) replays exactly one seed and prints its
// details; add `--trace` (or SIM_TRACE=1) for the full event trace of that seed.
import { parseFaults } from './workload.ts';
import { runSeed } from './run.ts';

interface Args {
  seeds: number;
  start: number;
  seed: number | null;
  faults: string | undefined;
  trace: boolean;
  verbose: boolean;
  traceGrep: string | null;
  multiKey: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    seeds: 200,
    start: 1,
    seed: process.env.SIM_SEED !== undefined ? Number(process.env.SIM_SEED) : null,
    faults: process.env.SIM_FAULTS,
    trace: process.env.SIM_TRACE === '1',
    verbose: false,
    traceGrep: null,
    multiKey: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--seeds') args.seeds = Number(value());
    else if (a === '--start') args.start = Number(value());
    else if (a === '--seed') args.seed = Number(value());
    else if (a === '--faults') args.faults = value();
    else if (a === '--trace') args.trace = true;
    else if (a === '--multi-key') args.multiKey = true;
    else if (a === '--grep') args.traceGrep = value();
    else if (a === '--verbose' || a === '-v') args.verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run sim -- [--seeds N] [--start N] [--seed N] [--faults kind,...|default|all|none] [--multi-key] [--trace [--grep text]] [--verbose]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  for (const [name, v] of [['seeds', args.seeds], ['start', args.start]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer`);
  }
  if (args.seed !== null && !Number.isSafeInteger(args.seed)) throw new Error('the seed must be an integer');
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const faults = parseFaults(args.faults);

  if (args.seed !== null) {
    const result = await runSeed({ seed: args.seed, faults, trace: args.trace, multiKey: args.multiKey });
    if (args.trace) {
      const lines = args.traceGrep === null ? result.trace : result.trace.filter((l) => l.includes(args.traceGrep!));
      for (const line of lines) console.log(line);
    }
    console.log(result.summary);
    if (result.details) console.log(result.details);
    if (result.errors.length > 0) console.log(`node errors:\n  ${result.errors.slice(0, 10).join('\n  ')}`);
    process.exitCode = result.ok ? 0 : 1;
    return;
  }

  const startedMs = performance.now();
  const failed: { seed: number; failures: string[] }[] = [];
  const byKind = new Map<string, number>();
  let virtualMs = 0;
  let events = 0;
  let expiries = 0;
  const historyLost: number[] = [];
  for (let seed = args.start; seed < args.start + args.seeds; seed++) {
    const result = await runSeed({ seed, faults, multiKey: args.multiKey });
    virtualMs += result.virtualMs;
    events += result.events;
    expiries += result.expiries;
    if (result.historyLostThrough > 0) historyLost.push(seed);
    if (!result.ok) {
      failed.push({ seed, failures: result.failures });
      for (const k of result.failures) byKind.set(k, (byKind.get(k) ?? 0) + 1);
      console.log(result.summary);
      console.log(indent(result.details));
    } else if (args.verbose) {
      console.log(result.summary);
    }
  }
  const seconds = (performance.now() - startedMs) / 1000;
  const kinds = [...byKind].map(([k, v]) => `${k}=${v}`).join(' ');
  console.log(
    `\n${args.seeds} seeds (${args.start}..${args.start + args.seeds - 1}), faults=${args.faults ?? 'default'}: ` +
      `${args.seeds - failed.length} passed, ${failed.length} failed${kinds ? ` (${kinds})` : ''}; ` +
      `${seconds.toFixed(1)} s, ${(args.seeds / seconds).toFixed(1)} seeds/s, ` +
      `${(virtualMs / 1000 / seconds).toFixed(0)}x real time, ${events} events${expiries > 0 ? `, ${expiries} keys expired` : ''}`,
  );
  if (failed.length > 0) {
    console.log(`failing seeds: ${failed.map((f) => f.seed).join(' ')}`);
  }
  if (historyLost.length > 0) console.log(`seeds where no node kept the oldest changes for watchers: ${historyLost.length} (${historyLost.slice(0, 20).join(' ')})`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});
