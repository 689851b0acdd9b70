// Every option of `zistore node`, settable by flag, by environment variable (ZISTORE_*) or in a
// JSON config file (--config), in that order of precedence. Validated at start-up: each bad
// value gets its own message, all of them at once.
import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator } from 'nats';
import { CLUSTER_NAME_PATTERN, NODE_ID_PATTERN } from '../bus/subjects.ts';
import { DEFAULT_SYNC_INTERVAL_MS, parseFsync } from '../storage/fsync-policy.ts';
import { UsageError } from './args.ts';
import { DEFAULT_SESSION_TIMEOUT_MS, defaultLeaseMs, leaseProblem } from './timings.ts';

type Kind = 'string' | 'int' | 'bool';

interface OptionSpec {
  kind: Kind;
  help: string;
  required?: boolean;
  min?: number;
  max?: number;
  /** Printed as *** by `zistore config print`. */
  secret?: boolean;
  check?: (value: string) => string | null;
}

const idCheck = (pattern: RegExp) => (v: string) => (pattern.test(v) ? null : 'letters, digits, _ and - only');
const userPassword = (v: string) => (/^[^:]+:.+$/.test(v) ? null : 'must be USER:PASSWORD');
const hostPorts = (v: string) => (v.split(',').every((hp) => /^[^:,\s]+:\d{1,5}$/.test(hp)) ? null : 'must be HOST:PORT[,HOST:PORT...]');

export const NODE_OPTIONS = {
  id: { kind: 'string', required: true, check: idCheck(NODE_ID_PATTERN), help: 'node id, unique per live process' },
  cluster: { kind: 'string', required: true, check: idCheck(CLUSTER_NAME_PATTERN), help: 'cluster name' },
  zk: { kind: 'string', required: true, check: hostPorts, help: 'ZooKeeper connect string' },
  nats: { kind: 'string', required: true, help: 'NATS server URL(s), comma-separated' },
  'session-timeout': { kind: 'int', min: 500, max: 600_000, help: 'ZooKeeper session timeout, ms (default 2000)' },
  lease: { kind: 'int', min: 100, max: 600_000, help: 'follower read lease, ms (default half the session timeout, at most 1000; lease × 1.1 + 20 must be below the session timeout)' },
  'op-timeout': { kind: 'int', min: 100, max: 600_000, help: 'every request is answered within this, ms (default 4000)' },
  'min-replicas': { kind: 'int', min: 1, max: 100, help: 'a write is acknowledged only once this many nodes hold it (default 2; 1 for a one-node cluster); see docs/safety.md' },
  'watch-history': { kind: 'int', min: 1, max: 100_000_000, help: 'changes each node keeps for watches to resume from (default 100000; also at most 64 MiB of keys and values)' },
  'watch-history-age': { kind: 'int', min: 1000, max: 30 * 24 * 3600 * 1000, help: 'changes older than this, ms, are dropped from the watch history (default 3600000, one hour)' },
  'data-dir': { kind: 'string', help: "keep this node's copy and protocol state in DIR (LMDB); a restart keeps the copy and catches up. Without it the copy is in memory only" },
  fsync: {
    kind: 'string',
    check: (v) => {
      const parsed = parseFsync(v);
      return typeof parsed === 'string' ? parsed : null;
    },
    help: `with --data-dir: always (default: on disk before every ack; survives a power loss) or interval[=MS] (in the OS page cache before the ack, synced to disk every MS, default ${DEFAULT_SYNC_INTERVAL_MS}; survives a process crash, a power loss may lose the last MS); see docs/safety.md`,
  },
  storage: {
    kind: 'string',
    check: (v) => (v === 'lmdb' || v === 'memory' ? null : 'must be lmdb or memory'),
    help: 'where the copy lives: lmdb (with --data-dir, its default) or memory (the default without --data-dir: a restart of every node loses the data; say so explicitly with --storage memory)',
  },
  'reset-data': { kind: 'bool', help: 'with --data-dir: drop what the dir holds and start empty (the node resynchronises from the cluster)' },
  'metrics-port': { kind: 'string', help: 'serve Prometheus metrics on [HOST:]PORT' },
  inspect: { kind: 'bool', help: 'stream actor state for the inspector page' },
  'zk-auth': { kind: 'string', secret: true, check: userPassword, help: 'ZooKeeper digest credentials USER:PASSWORD; the cluster znodes get an ACL for them alone' },
  'nats-user': { kind: 'string', help: 'NATS user' },
  'nats-pass': { kind: 'string', secret: true, help: 'NATS password' },
  'nats-token': { kind: 'string', secret: true, help: 'NATS token' },
  'nats-creds': { kind: 'string', help: 'NATS credentials file (JWT + nkey seed)' },
  'nats-nkey': { kind: 'string', help: 'file holding an NATS nkey seed' },
  'tls-ca': { kind: 'string', help: 'CA certificate file for TLS to NATS' },
  'tls-cert': { kind: 'string', help: 'client certificate file for TLS to NATS' },
  'tls-key': { kind: 'string', help: 'client key file for TLS to NATS' },
} satisfies Record<string, OptionSpec>;

export type NodeOptionName = keyof typeof NODE_OPTIONS;
export type NodeOptionValues = Partial<Record<NodeOptionName, string | number | boolean>>;

/** The environment variable of an option: --session-timeout is ZISTORE_SESSION_TIMEOUT. */
export const envName = (name: string) => `ZISTORE_${name.toUpperCase().replace(/-/g, '_')}`;

/** parseArgs options for every node option (plus --config). */
export function nodeParseOptions() {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' } };
  for (const [name, spec] of Object.entries(NODE_OPTIONS) as [string, OptionSpec][]) options[name] = { type: spec.kind === 'bool' ? 'boolean' : 'string' };
  return options;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--config: cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config: ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--config: ${path} must hold a JSON object`);
  const unknown = Object.keys(parsed).filter((k) => !(k in NODE_OPTIONS));
  if (unknown.length > 0) throw new UsageError(`--config: unknown option(s) in ${path}: ${unknown.join(', ')}`);
  return parsed as Record<string, unknown>;
}

/** Flags over environment over config file; every value checked, every problem reported. */
export function resolveNodeOptions(flags: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv = process.env): NodeOptionValues {
  const configPath = (flags.config as string | undefined) ?? env.ZISTORE_CONFIG;
  const file = configPath ? readConfigFile(configPath) : {};
  const out: NodeOptionValues = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(NODE_OPTIONS) as [NodeOptionName, OptionSpec][]) {
    const raw = flags[name] ?? env[envName(name)] ?? file[name];
    if (raw === undefined || raw === '') {
      if (spec.required) problems.push(`--${name} is required (or ${envName(name)}, or "${name}" in the config file): ${spec.help}`);
      continue;
    }
    if (spec.kind === 'bool') {
      const text = String(raw);
      if (!['true', 'false', '1', '0'].includes(text)) problems.push(`--${name} must be true or false, got '${text}'`);
      else out[name] = text === 'true' || text === '1';
      continue;
    }
    const text = String(raw);
    if (spec.kind === 'int') {
      const n = Number(text);
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
        problems.push(`--${name} must be an integer from ${spec.min} to ${spec.max}, got '${text}'`);
      } else out[name] = n;
      continue;
    }
    const why = spec.check?.(text);
    if (why) problems.push(`--${name} ${why}, got '${spec.secret ? '***' : text}'`);
    else out[name] = text;
  }
  // Without --lease the lease follows the session timeout; a lease given too long is refused.
  const session = (out['session-timeout'] as number | undefined) ?? DEFAULT_SESSION_TIMEOUT_MS;
  const lease = (out.lease as number | undefined) ?? defaultLeaseMs(session);
  const tooLong = leaseProblem(lease, session);
  if (tooLong !== null) problems.push(tooLong);
  if (out['nats-pass'] !== undefined && out['nats-user'] === undefined) problems.push('--nats-pass needs --nats-user');
  if (out['data-dir'] === undefined && (out.fsync !== undefined || out['reset-data'] !== undefined)) problems.push('--fsync and --reset-data need --data-dir');
  if (out.storage === 'lmdb' && out['data-dir'] === undefined) problems.push('--storage lmdb needs --data-dir');
  if (out.storage === 'memory' && out['data-dir'] !== undefined) problems.push('--storage memory keeps nothing on disk: drop --data-dir, or --storage');
  if ((out['tls-cert'] === undefined) !== (out['tls-key'] === undefined)) problems.push('--tls-cert and --tls-key go together');
  if (problems.length > 0) throw new UsageError(problems.join('\n  '));
  return out;
}

/** The resolved options as JSON, secrets hidden: `zistore config print`. */
export function printableOptions(values: NodeOptionValues): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(NODE_OPTIONS) as [NodeOptionName, OptionSpec][]) {
    if (values[name] !== undefined) out[name] = spec.secret ? '***' : values[name];
  }
  return out;
}

/** Connection options for nats.connect from the security options (credentials, TLS). */
export function natsConnectOptions(values: NodeOptionValues): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(`${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  if (values['nats-user'] !== undefined) {
    o.user = values['nats-user'];
    o.pass = values['nats-pass'];
  }
  if (values['nats-token'] !== undefined) o.token = values['nats-token'];
  if (values['nats-creds'] !== undefined) o.authenticator = credsAuthenticator(read(String(values['nats-creds']), '--nats-creds'));
  if (values['nats-nkey'] !== undefined) o.authenticator = nkeyAuthenticator(new TextEncoder().encode(read(String(values['nats-nkey']), '--nats-nkey').toString('utf8').trim()));
  if (values['tls-ca'] !== undefined || values['tls-cert'] !== undefined) {
    o.tls = { caFile: values['tls-ca'], certFile: values['tls-cert'], keyFile: values['tls-key'] };
  }
  return o;
}
