// The `zistore` command: `up` (a whole local cluster), `node` (one node in the foreground),
// `shell` (attach to a running cluster), `accept-data-loss` (the operator's way out when no
// complete copy is left), `backup` and `restore` (a node's data dir).
import { parseArgs } from 'node:util';
import { runAcceptDataLoss } from './accept-data-loss.ts';
import { runBackup, runRestore } from './backup.ts';
import { runIdentities } from './identities.ts';
import { intFlag, UsageError } from './args.ts';
import { runNodeCommand } from './node-command.ts';
import { nodeParseOptions, printableOptions, resolveNodeOptions } from './node-options.ts';
import { runShellCommand } from './shell-command.ts';
import { DEFAULT_SESSION_TIMEOUT_MS, leaseProblem } from './timings.ts';
import { runUpCommand } from './up-command.ts';

const USAGE = `usage:
  zistore up [--nodes N] [--cluster NAME] [--nats-port P] [--zk-port P] [--data-dir D]
             [--session-timeout MS] [--lease MS] [--op-timeout MS] [--min-replicas N]
             [--inspect] [--ui] [--ui-port P] [--secure]
      start ZooKeeper, nats-server and N nodes (default 3); with --data-dir, ZooKeeper's and
      every node's data live in D (fsync always) and a second run on D finds them again (the
      ready line's keys= says how many); opens the shell on a terminal,
      otherwise runs until SIGINT/SIGTERM and then stops everything it started; every node
      serves Prometheus metrics on a free port (printed, and in <data-dir>/<id>.metrics-port);
      --ui (or --ui-port P) serves the live inspector page and implies --inspect;
      each node has its own NATS identity and may speak only as itself; without --secure a
      connection without credentials is a client (client subjects, \$SRV, process commands) and
      the ready line says 'open: loopback only'; --secure: every connection needs credentials,
      the cluster's znodes get a ZooKeeper ACL, and the client's credentials file is written to
      <data-dir>/credentials.json and \$ZISTORE_HOME/<cluster>.json (the ready line names both)
  zistore node --id ID --cluster NAME --zk HOST:PORT[,HOST:PORT...] --nats URL
             [--session-timeout MS] [--lease MS] [--op-timeout MS] [--min-replicas N]
             [--data-dir DIR [--fsync always|interval[=MS]] [--reset-data]] [--storage lmdb|memory]
             [--metrics-port [HOST:]P] [--inspect]
      run one node in the foreground; --data-dir keeps its copy on disk (LMDB; without it, in
      memory only), --metrics-port serves GET /metrics, --inspect streams
      its actors' state on zistore.<cluster>.inspect.<id> for the inspector page
      security: [--zk-auth USER:PASSWORD] [--nats-user U --nats-pass P | --nats-token T |
             --nats-creds FILE | --nats-nkey FILE] [--tls-ca F] [--tls-cert F --tls-key F]
      every option can also come from ZISTORE_<OPTION> (e.g. ZISTORE_SESSION_TIMEOUT) or a
      JSON file given with --config FILE or ZISTORE_CONFIG; flags win over variables over the file
  zistore config print [node options]
      validate and print the node options as resolved (secrets hidden)
  zistore shell [--nats URL]... [--cluster NAME] [--creds FILE | --user U --password P]
      attach a shell to a running cluster; several --nats (or URL,URL) to fail over between
      servers; without credentials it uses those \`zistore up --secure\` wrote for the cluster
      (\$ZISTORE_HOME/<cluster>.json, default ~/.zistore), if any
  zistore accept-data-loss --cluster NAME --zk HOST:PORT[,HOST:PORT...] [--zk-auth USER:PASSWORD] [--yes]
      when no member of the last replica set kept its copy, the leader waits (503); this says
      what would be lost and, with --yes, lets the leader serve what it holds (recorded in
      ZooKeeper); see docs/safety.md
  zistore identities --cluster NAME --nodes ID,ID,... --out DIR [--nats URL,...]
      make (or extend) every identity of a secure deployment in DIR: nats-authorization.conf for
      nats-server, <id>.env per node (ZISTORE_NATS_USER/PASS, ZISTORE_ZK_AUTH), client.json and
      reader.json credentials files for clients; see docs/deployment.md
  zistore backup --data-dir DIR --out DIR
      copy a node's data dir (running or not) into a new or empty dir: one consistent point
  zistore restore --from DIR --data-dir DIR --id ID --cluster NAME --zk HOST:PORT[,...] [--zk-auth U:P]
      make node ID's data dir from a backup and record it in ZooKeeper as the cluster's replica
      set (refused if ZooKeeper already records one): it leads with the backup's data, and
      nodes started with empty data dirs copy it
`;

const timingFlags = {
  'session-timeout': { type: 'string' },
  lease: { type: 'string' },
  'op-timeout': { type: 'string' },
  'min-replicas': { type: 'string' },
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
          secure: { type: 'boolean' },
          'ui-port': { type: 'string' },
        },
        strict: true,
      });
      const { inspect, ui, secure, ...strings } = values;
      // The nodes would refuse a lease too long for the session timeout: say so before starting
      // anything. Without --lease each node derives it from the session timeout.
      const lease = intFlag(strings, 'lease', 100, 600_000);
      const tooLong = lease === undefined ? null : leaseProblem(lease, intFlag(strings, 'session-timeout', 500, 600_000) ?? DEFAULT_SESSION_TIMEOUT_MS);
      if (tooLong !== null) throw new UsageError(tooLong);
      // Exit as soon as everything is stopped: no stray handle may keep `up` alive.
      process.exit(await runUpCommand(strings, { inspect, ui, secure }));
    }
    case 'node': {
      const { values } = parseArgs({ args: rest, options: nodeParseOptions(), strict: true });
      // Exit once stopped, not when the last library timer happens to fire.
      process.exit(await runNodeCommand(resolveNodeOptions(values)));
    }
    case 'config': {
      const [sub, ...flags] = rest;
      if (sub !== 'print') throw new UsageError(`unknown config command '${sub ?? ''}' (try: zistore config print [node flags])`);
      const { values } = parseArgs({ args: flags, options: nodeParseOptions(), strict: true });
      process.stdout.write(`${JSON.stringify(printableOptions(resolveNodeOptions(values)), null, 2)}\n`);
      return 0;
    }
    case 'accept-data-loss': {
      const { values } = parseArgs({
        args: rest,
        options: { cluster: { type: 'string' }, zk: { type: 'string' }, 'zk-auth': { type: 'string' }, yes: { type: 'boolean' } },
        strict: true,
      });
      return runAcceptDataLoss(values);
    }
    case 'identities': {
      const { values } = parseArgs({ args: rest, options: { cluster: { type: 'string' }, nodes: { type: 'string' }, out: { type: 'string' }, nats: { type: 'string' } }, strict: true });
      return runIdentities(values);
    }
    case 'backup': {
      const { values } = parseArgs({ args: rest, options: { 'data-dir': { type: 'string' }, out: { type: 'string' } }, strict: true });
      return runBackup(values);
    }
    case 'restore': {
      const { values } = parseArgs({
        args: rest,
        options: {
          from: { type: 'string' },
          'data-dir': { type: 'string' },
          id: { type: 'string' },
          cluster: { type: 'string' },
          zk: { type: 'string' },
          'zk-auth': { type: 'string' },
        },
        strict: true,
      });
      return runRestore(values);
    }
    case 'shell': {
      const { values } = parseArgs({
        args: rest,
        options: { nats: { type: 'string', multiple: true }, cluster: { type: 'string' }, creds: { type: 'string' }, user: { type: 'string' }, password: { type: 'string' } },
        strict: true,
      });
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
