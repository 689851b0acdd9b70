/**
 * Registry of the child processes (servers) this Node process started, so a test teardown
 * or a CLI signal handler can stop them all, and a last-resort `exit` hook can SIGKILL
 * whatever is still running.
 */

export interface TrackedProcess {
  readonly pid: number;
  readonly name: string;
  /** Graceful stop (SIGTERM, then SIGKILL after a grace period), awaiting exit and cleaning up. */
  stop(): Promise<void>;
  /** SIGKILL now if still running. Must be synchronous (used from the `exit` hook). */
  killSync(): void;
  /** Synchronous cleanup (e.g. remove a temp dir we created), used from the `exit` hook. */
  cleanupSync?(): void;
}

const tracked = new Set<TrackedProcess>();
let exitHookInstalled = false;

function onExit(): void {
  killAllProcessesSync();
}

/** Track a process. Returns a function that untracks it. */
export function trackProcess(p: TrackedProcess): () => void {
  tracked.add(p);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', onExit);
  }
  return () => untrackProcess(p);
}

export function untrackProcess(p: TrackedProcess): void {
  tracked.delete(p);
}

/** Snapshot of the processes currently tracked. */
export function trackedProcesses(): readonly TrackedProcess[] {
  return [...tracked];
}

/** Stop every tracked process concurrently. Rejects with an AggregateError if any stop failed. */
export async function stopAllProcesses(): Promise<void> {
  const all = [...tracked];
  const results = await Promise.allSettled(all.map((p) => p.stop()));
  for (const p of all) tracked.delete(p);
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (errors.length > 0) throw new AggregateError(errors, `failed to stop ${errors.length} process(es)`);
}

/** SIGKILL every tracked process and run their synchronous cleanups. Never throws. */
export function killAllProcessesSync(): void {
  const all = [...tracked];
  for (const p of all) {
    try {
      p.killSync();
    } catch {
      /* already gone */
    }
  }
  for (const p of all) {
    try {
      p.cleanupSync?.();
    } catch {
      /* best effort */
    }
  }
  tracked.clear();
}

export interface SignalHandlerOptions {
  signals?: NodeJS.Signals[];
  /** Called after every tracked process was stopped; default exits with 128 + signal number. */
  after?: (signal: NodeJS.Signals) => void;
}

/**
 * On SIGINT/SIGTERM (by default), stop every tracked process and exit.
 * A second signal while stopping kills everything at once. Returns a function that removes the handlers.
 */
export function installSignalHandlers(opts: SignalHandlerOptions = {}): () => void {
  const signals = opts.signals ?? ['SIGINT', 'SIGTERM'];
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      killAllProcessesSync();
      process.exit(130);
    }
    stopping = true;
    const done = (): void => {
      if (opts.after) opts.after(signal);
      else process.exit(signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1);
    };
    stopAllProcesses().then(done, () => {
      killAllProcessesSync();
      done();
    });
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
