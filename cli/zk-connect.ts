// A short-lived ZooKeeper session for the operator's commands (accept-data-loss, restore).
import { createNodeZkClient } from '../coordination/node-zk-client.ts';
import type { ZkClient } from '../coordination/zk-client.ts';
import { UsageError } from './args.ts';
import { createLogger } from './runtime.ts';

const CONNECT_TIMEOUT_MS = 10_000;

/** `--zk-auth USER:PASSWORD`, split (undefined when not given). */
export function parseZkAuth(text: string | undefined): { user: string; password: string } | undefined {
  if (text === undefined) return undefined;
  const at = text.indexOf(':');
  if (at <= 0) throw new UsageError('--zk-auth must be USER:PASSWORD');
  return { user: text.slice(0, at), password: text.slice(at + 1) };
}

/** Connected, or rejects after CONNECT_TIMEOUT_MS naming the ensemble. Close it when done. */
export async function connectZooKeeper(connectString: string, auth: { user: string; password: string } | undefined): Promise<ZkClient> {
  const client = createNodeZkClient({
    connectString,
    sessionTimeoutMs: 10_000,
    closeTimeoutMs: 2000,
    auth,
    log: createLogger({ level: 'warn', destination: 2 }),
  });
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cannot reach ZooKeeper at ${connectString} within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    client.onState((state) => {
      if (state !== 'connected') return;
      clearTimeout(timer);
      resolve();
    });
  });
  client.connect();
  try {
    await connected;
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}
