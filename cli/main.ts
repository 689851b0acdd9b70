// The `zistore` command: `up` (a whole local cluster), `node` (one node in the foreground),
// `shell` (attach to a running cluster).
import { parseArgs } from 'node:util';
import { UsageError } from './args.ts';
import { runNodeCommand } from './node-command.ts';
import { runShellCommand } from './shell-command.ts';
import { runUpCommand } from './up-command.ts';

const USAGE = `usage:
  zistore up [--nodes N] [--cluster NAME] [--nats-port P] [--zk-port P] [--data-dir D]
             [--session-timeout MS] [--lease MS] [--op-timeout MS] [--inspect] [--ui] [--ui-port P]
      start ZooKeeper, nats-server and N nodes (default 3); opens the shell on a terminal,
      otherwise runs until SIGINT/SIGTERM and then stops everything it started; every node
      serves Prometheus metrics on a free port (printed, and in <data-dir>/<id>.metrics-port);
      --ui (or --ui-port P) serves the live inspector page and implies --inspect
  zistore node --id ID --cluster NAME --zk HOST:PORT[,HOST:PORT...] --nats URL
             [--session-timeout MS] [--lease MS] [--op-timeout MS] [--metrics-port [HOST:]P] [--inspect]
      run one node in the foreground; --metrics-port serves GET /metrics, --inspect streams
      its actors' state on zistore.<cluster>.inspect.<id> for the inspector page
  zistore shell [--nats URL] [--cluster NAME]
      attach a shell to a running cluster
`;

const timingFlags = {
  'session-timeout': { type: 'string' },
  lease: { type: 'string' },
  'op-timeout': { type: 'string' },
} as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up': {
      const { values } = parseArgs({
        args: rest,
        options: {
          nodes: { type: 'string' },
          cluster: { type: 'string' },
          'nats-port': { type: 'string' },
          'zk-port': { type: 'string' },
          'data-dir': { type: 'string' },
          ...timingFlags,
          inspect: { type: 'boolean' },
          ui: { type: 'boolean' },
          'ui-port': { type: 'string' },
        },
        strict: true,
      });
      const { inspect, ui, ...strings } = values;
      // Exit as soon as everything is stopped: no stray handle may keep `up` alive.
      process.exit(await runUpCommand(strings, { inspect, ui }));
    }
    case 'node': {
      const { values } = parseArgs({
        args: rest,
        options: {
          id: { type: 'string' },
          cluster: { type: 'string' },
          zk: { type: 'string' },
          nats: { type: 'string' },
          ...timingFlags,
          'metrics-port': { type: 'string' },
          inspect: { type: 'boolean' },
        },
        strict: true,
      });
      const { inspect, ...strings } = values;
      // Exit once stopped, not when the last library timer happens to fire.
      process.exit(await runNodeCommand(strings, { inspect }));
    }
    case 'shell': {
      const { values } = parseArgs({ args: rest, options: { nats: { type: 'string' }, cluster: { type: 'string' } }, strict: true });
      return runShellCommand(values);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const usage = err instanceof UsageError || (err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'));
    process.stderr.write(`zistore: ${err instanceof Error ? err.message : String(err)}\n${usage ? USAGE : ''}`);
    process.exitCode = usage ? 2 : 1;
  },
);
