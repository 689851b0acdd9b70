// `npm run nemesis -- [--seed N] [--duration S] [--nodes N] [--clients C] [--keys K]
//                     [--faults kill,pause,zk,rmi,leader,restart] [--keep-logs]`
// Jepsen-style run against a real local cluster; exit 0 when every check passed,
// 1 on a failure, 2 on bad usage, 3 when the linearizability search ran out of budget,
// 130 when interrupted. See test/nemesis/README.md.
import { killAllProcessesSync } from '../../cluster/process-registry.ts';
import { parseCommandLine, USAGE, type NemesisOptions } from './options.ts';
import { runNemesis } from './runner.ts';

async function main(): Promise<number> {
  let options: NemesisOptions | null;
  try {
    options = parseCommandLine(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\n${sig}: stopping the run and everything it started (again to kill at once)\n`);
      abort.abort();
    } else {
      killAllProcessesSync();
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const result = await runNemesis({ ...options, signal: abort.signal, log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(`\n${result.report}\n`);
  if (result.aborted) return 130;
  if (result.ok) return 0;
  return result.inconclusive && result.failures.length === 1 ? 3 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`nemesis: ${(err as Error)?.stack ?? String(err)}\n`);
    killAllProcessesSync();
    process.exitCode = 1;
  },
);
