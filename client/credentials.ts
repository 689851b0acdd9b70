// The credentials file `zistore up --secure` writes: where the cluster is, who to be and which
// inbox prefix that identity may listen on. The typed client and the shell find it by themselves
// at `$ZISTORE_HOME/<cluster>.json` (default `~/.zistore`), or take its path (`creds`).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ZiCredentials {
  cluster: string;
  servers: string[];
  user: string;
  password: string;
  /** Replies to this identity come under this prefix; the server lets nobody else listen there. */
  inboxPrefix: string;
}

export const credentialsHome = () => process.env.ZISTORE_HOME ?? join(homedir(), '.zistore');
export const credentialsPath = (cluster: string) => join(credentialsHome(), `${cluster}.json`);

export class CredentialsError extends Error {
  constructor(path: string, why: string) {
    super(`credentials file ${path}: ${why}`);
    this.name = 'CredentialsError';
  }
}

/** The file's credentials; a clear error when it cannot be read or lacks a field. */
export function readCredentials(path: string): ZiCredentials {
  let parsed: Partial<ZiCredentials>;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<ZiCredentials>;
  } catch (err) {
    throw new CredentialsError(path, (err as Error).message);
  }
  for (const field of ['cluster', 'user', 'password', 'inboxPrefix'] as const) {
    if (typeof parsed[field] !== 'string') throw new CredentialsError(path, `no ${field}`);
  }
  if (!Array.isArray(parsed.servers) || parsed.servers.length === 0) throw new CredentialsError(path, 'no servers');
  return parsed as ZiCredentials;
}

const hostPort = (url: string) => url.replace(/^[a-z]+:\/\//, '').replace(/^localhost:/, '127.0.0.1:');

/**
 * The credentials to use for `cluster` when the caller brought none: the file named by `creds`, or
 * else the one `zistore up --secure` left in the credentials home, if it is for these servers.
 */
export function findCredentials(cluster: string, servers: string[] | undefined, creds?: string): ZiCredentials | null {
  if (creds !== undefined) return readCredentials(creds);
  const path = credentialsPath(cluster);
  let found: ZiCredentials;
  try {
    found = readCredentials(path);
  } catch (err) {
    if ((err as Error).message.includes('ENOENT')) return null;
    throw err;
  }
  if (servers !== undefined && !servers.some((s) => found.servers.map(hostPort).includes(hostPort(s)))) return null;
  return found;
}

/** nats.connect options of these credentials. */
export const credentialsConnectOptions = (c: ZiCredentials) => ({ user: c.user, pass: c.password, inboxPrefix: c.inboxPrefix });
