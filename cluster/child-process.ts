import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, closeSync, openSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterLogger } from './logger.ts';
import { trackProcess, untrackProcess, type TrackedProcess } from './process-registry.ts';

export const SETUP_HINT = 'run `sh scripts/setup.sh` to install it';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly pid: number;
  readonly name: string;
  readonly logFile: string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  isRunning(): boolean;
  /** SIGTERM (and SIGCONT in case it is paused), SIGKILL after `graceMs`, await exit, then run cleanup once. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now; resolves on exit. Does not run the cleanup (call stop() later for that). */
  kill(): Promise<void>;
  /** SIGSTOP; resolves once the kernel reports the process stopped (Linux /proc; at once elsewhere). */
  pause(): Promise<void>;
  /** SIGCONT; resolves once the process runs again. */
  resume(): Promise<void>;
  /** Started with `ipc`: send a message over the IPC channel; resolves once it is handed to the OS. */
  send?(message: object): Promise<void>;
}

export interface SpawnManagedOptions {
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended to this file. */
  logFile: string;
  log?: ClusterLogger;
  stopGraceMs?: number;
  /** Run once after the process is gone, on stop(). */
  cleanup?: () => Promise<void>;
  /** Synchronous version of cleanup for the process-exit hook. */
  cleanupSync?: () => void;
  /** Open an IPC channel to the child (`send`); its messages go to this function. */
  ipc?: (message: unknown) => void;
}

/** Find an executable: an absolute/relative path as is, else search PATH, else the given fallbacks. */
export function findExecutable(name: string, fallbacks: string[] = []): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name)), ...fallbacks];
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Last `maxBytes` of a file as text ('' if it cannot be read). */
export async function tailFile(path: string, maxBytes = 4096): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      let text = buf.toString('utf8');
      if (start > 0) text = text.slice(text.indexOf('\n') + 1);
      return text.trimEnd();
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/** Spawn a long-running child with output to a log file, tracked in the process registry. */
export async function spawnManaged(opts: SpawnManagedOptions): Promise<ManagedProcess> {
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: opts.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd],
      detached: false,
    });
  } finally {
    closeSync(fd);
  }
  await new Promise<void>((resolveSpawn, reject) => {
    child.once('spawn', resolveSpawn);
    child.once('error', (err) => reject(new Error(`could not start ${opts.name} (${opts.command}): ${err.message}`)));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${opts.name}: no pid`);

  let running = true;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => {
      running = false;
      opts.log?.debug({ name: opts.name, pid, code, signal }, 'process exited');
      resolveExit({ code, signal });
    });
  });
  // An 'error' after spawn (e.g. a failed kill) must not crash the host process.
  child.on('error', (err) => opts.log?.warn({ name: opts.name, pid, err }, 'child process error'));
  if (opts.ipc) {
    child.on('message', opts.ipc);
    // The channel must not keep the launcher alive on its own.
    child.channel?.unref();
  }

  const signal = (sig: NodeJS.Signals): void => {
    if (!running) return;
    try {
      process.kill(pid, sig);
    } catch {
      /* exited meanwhile */
    }
  };

  let cleanedUp = false;
  let stopping: Promise<void> | undefined;
  const defaultGrace = opts.stopGraceMs ?? 5000;

  const tracked: TrackedProcess = {
    pid,
    name: opts.name,
    stop: () => handle.stop(),
    killSync: () => signal('SIGKILL'),
    cleanupSync: () => {
      if (cleanedUp) return;
      cleanedUp = true;
      opts.cleanupSync?.();
    },
  };

  const handle: ManagedProcess = {
    pid,
    name: opts.name,
    logFile: opts.logFile,
    exited,
    isRunning: () => running,
    stop(graceMs = defaultGrace) {
      stopping ??= (async () => {
        if (running) {
          opts.log?.debug({ name: opts.name, pid }, 'stopping');
          signal('SIGTERM');
          signal('SIGCONT');
          let timer: NodeJS.Timeout | undefined;
          const timedOut = await Promise.race([
            exited.then(() => false),
            new Promise<boolean>((r) => {
              timer = setTimeout(() => r(true), graceMs);
            }),
          ]);
          clearTimeout(timer);
          if (timedOut) {
            opts.log?.warn({ name: opts.name, pid, graceMs }, 'did not stop in time; sending SIGKILL');
            signal('SIGKILL');
          }
          await exited;
        }
        untrackProcess(tracked);
        if (!cleanedUp) {
          cleanedUp = true;
          await opts.cleanup?.();
        }
      })();
      return stopping;
    },
    async kill() {
      signal('SIGKILL');
      await exited;
    },
    async pause() {
      signal('SIGSTOP');
      await waitProcState(pid, () => running, true);
    },
    async resume() {
      signal('SIGCONT');
      await waitProcState(pid, () => running, false);
    },
    ...(opts.ipc
      ? {
          send: (message: object) =>
            new Promise<void>((resolveSend, reject) => {
              if (!running || !child.connected) return reject(new Error(`${opts.name} (pid ${pid}) has no IPC channel (exited?)`));
              child.send(message, (err) => (err ? reject(err) : resolveSend()));
            }),
        }
      : {}),
  };
  trackProcess(tracked);
  opts.log?.debug({ name: opts.name, pid, command: opts.command, args: opts.args }, 'process started');
  return handle;
}

/** Poll /proc/<pid>/stat until the process is (or is no longer) stopped; gives up after 2 s. */
async function waitProcState(pid: number, alive: () => boolean, stopped: boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (alive() && Date.now() < deadline) {
    let stat: string;
    try {
      stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return; // no procfs, or gone
    }
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if ((state === 'T' || state === 't') === stopped) return;
    await sleep(5);
  }
}

/** True for a start-up error whose server log says its port was taken (freePort() lost a race). */
export function isPortInUseError(err: unknown): boolean {
  return err instanceof Error && /address already in use|BindException/i.test(err.message);
}

/**
 * Run `launch` and, when the ports were picked by us (`portsChosen` false) and the server could not bind,
 * try again (a new free port is picked each time), up to `attempts` times.
 */
export async function retryOnPortClash<T>(portsChosen: boolean, launch: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch();
    } catch (err) {
      if (portsChosen || attempt >= attempts || !isPortInUseError(err)) throw err;
    }
  }
}

export interface WaitReadyOptions {
  proc: ManagedProcess;
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** Resolves true when ready; false or a throw means "not yet". */
  probe: () => Promise<boolean>;
}

/**
 * Poll `probe` until it succeeds. Fails early when the process exits, or after the timeout;
 * the error includes the tail of the process's log. On failure the process is stopped.
 */
export async function waitReady(o: WaitReadyOptions): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 100;
  let lastError: unknown;
  for (;;) {
    if (!o.proc.isRunning()) {
      const info = await o.proc.exited;
      const err = await startError(o, `exited during start-up (code ${info.code}, signal ${info.signal})`);
      await o.proc.stop();
      throw err;
    }
    try {
      if (await o.probe()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      const err = await startError(o, `was not ready within ${o.timeoutMs} ms${why}`);
      await o.proc.stop(1000);
      throw err;
    }
    await sleep(interval);
  }
}

async function startError(o: WaitReadyOptions, what: string): Promise<Error> {
  const tail = await tailFile(o.proc.logFile);
  return new Error(
    `${o.what} (pid ${o.proc.pid}) ${what}. Log ${o.proc.logFile}:\n` + (tail ? tail : '(empty)'),
  );
}
