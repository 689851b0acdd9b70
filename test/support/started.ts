// What a test file that starts its own servers and nodes shares: stopping them in order (nodes
// first, gracefully, then NATS, then ZooKeeper, then the temp dir) and checking a PID is gone.
import { removeTempDir } from '../../cluster/temp-dir.ts';

interface Stoppable {
  stop(): Promise<unknown>;
}

export async function stopStarted(started: { nodes: Iterable<Stoppable>; nats: Stoppable | null; zk: Stoppable | null; dir: string }): Promise<void> {
  await Promise.allSettled([...started.nodes].map((p) => p.stop()));
  await started.nats?.stop();
  await started.zk?.stop();
  if (started.dir) await removeTempDir(started.dir);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
