// Closed-loop load: `inflight` workers, each issuing its next operation as soon as the previous
// one completes. A warm-up (JIT, connections, caches) is followed by a timed window; only
// operations that start and finish inside the window are recorded. CPU of every watched process
// is sampled exactly at the window's edges.
//
// One measurement may be split into rounds interleaved with other measurements (A B C A B C …),
// so slow drifts in the host's background load hit every system alike; a LoadAccumulator sums
// the rounds (histograms merge exactly).
import { cpuBetween, sampleCpu, type CpuSample, type CpuUsage, type WatchedProcess } from './cpu.ts';
import { LatencyRecorder, type LatencySummaryUs } from './histogram.ts';
import type { Progress } from './progress.ts';

/** One operation of one worker; `seq` counts that worker's operations from 0. */
export type Operation = (seq: number) => Promise<void>;

export interface LoadOptions {
  label: string;
  inflight: number;
  warmupMs: number;
  durationMs: number;
  /** Called once per worker (0 … inflight-1) to build its operation. */
  operation: (worker: number) => Operation;
  /** The processes whose CPU is measured (the bench itself is always included). */
  watched: readonly WatchedProcess[];
  progress?: Progress;
  /** Maps a failed operation to a short code for the error counts; default the error's code or name. */
  classify?: (err: unknown) => string;
}

export interface LoadResult {
  label: string;
  inflight: number;
  /** Number of interleaved rounds the window was split into. */
  rounds: number;
  warmupMs: number;
  windowMs: number;
  ops: number;
  opsPerSec: number;
  warmupOps: number;
  errors: Record<string, number>;
  errorCount: number;
  latencyUs: LatencySummaryUs;
  cpu: CpuUsage;
  /** CPU of all watched processes and the bench per operation, µs. */
  cpuUsPerOp: number;
}

const defaultClassify = (err: unknown): string => {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; name?: unknown };
    if (e.code !== undefined) return String(e.code);
    if (typeof e.name === 'string') return e.name;
  }
  return 'error';
};

/** Give up when errors outnumber successes by this much: the system under test is not serving. */
const ERRORS_MAX = 1000;

/** Sums rounds of one measurement. */
export class LoadAccumulator {
  readonly recorder = new LatencyRecorder();
  rounds = 0;
  ops = 0;
  warmupOps = 0;
  warmupMs = 0;
  windowMs = 0;
  readonly errors: Record<string, number> = {};
  private readonly cpuByProcess = new Map<string, { name: string; pid: number; cpuMs: number }>();
  private otherCpuMs = 0;
  private busyPctWeighted = 0;

  constructor(
    readonly label: string,
    readonly inflight: number,
  ) {}

  addCpu(cpu: CpuUsage): void {
    for (const p of cpu.processes) {
      const key = `${p.name}/${p.pid}`;
      const have = this.cpuByProcess.get(key);
      if (have) have.cpuMs += p.cpuMs;
      else this.cpuByProcess.set(key, { name: p.name, pid: p.pid, cpuMs: p.cpuMs });
    }
    this.otherCpuMs += cpu.otherCpuMs;
    this.busyPctWeighted += cpu.machineBusyPct * cpu.windowMs;
  }

  result(): LoadResult {
    const windowMs = this.windowMs;
    const processes = [...this.cpuByProcess.values()].map((p) => ({ ...p, corePct: windowMs > 0 ? (100 * p.cpuMs) / windowMs : 0 }));
    const totalCpuMs = processes.reduce((s, p) => s + p.cpuMs, 0);
    const cpu: CpuUsage = {
      windowMs,
      processes,
      totalCpuMs,
      otherCpuMs: this.otherCpuMs,
      machineBusyPct: windowMs > 0 ? this.busyPctWeighted / windowMs : 0,
    };
    const latencyUs = this.recorder.summaryUs();
    this.recorder.destroy();
    return {
      label: this.label,
      inflight: this.inflight,
      rounds: this.rounds,
      warmupMs: this.warmupMs,
      windowMs,
      ops: this.ops,
      opsPerSec: windowMs > 0 ? (this.ops * 1000) / windowMs : 0,
      warmupOps: this.warmupOps,
      errors: this.errors,
      errorCount: Object.values(this.errors).reduce((a, b) => a + b, 0),
      latencyUs,
      cpu,
      cpuUsPerOp: this.ops > 0 ? (totalCpuMs * 1000) / this.ops : 0,
    };
  }
}

/** Run one round into `acc`. */
export async function runRound(o: LoadOptions, acc: LoadAccumulator): Promise<void> {
  if (!(o.inflight >= 1)) throw new Error(`inflight must be at least 1, got ${o.inflight}`);
  const classify = o.classify ?? defaultClassify;
  let errorCount = 0;
  let phase: 'warmup' | 'window' | 'done' = 'warmup';
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let ops = 0;
  let warmupOps = 0;
  // Assigned from timers and workers: kept in an object so the checks below are not narrowed away.
  const edges: { before?: CpuSample; after?: CpuSample; failure?: Error } = {};
  const startedAt = performance.now();

  const operations = Array.from({ length: o.inflight }, (_, w) => o.operation(w));
  const worker = async (w: number): Promise<void> => {
    const run = operations[w]!;
    let seq = 0;
    while (phase !== 'done' && edges.failure === undefined) {
      const t0 = performance.now();
      try {
        await run(seq++);
      } catch (err) {
        if (phase === 'window') {
          const code = classify(err);
          acc.errors[code] = (acc.errors[code] ?? 0) + 1;
        }
        errorCount++;
        if (errorCount > ERRORS_MAX && errorCount > ops + warmupOps) {
          edges.failure = new Error(`${o.label}: ${errorCount} failed operations (last: ${(err as Error)?.message ?? String(err)})`, { cause: err });
        }
        continue;
      }
      const t1 = performance.now();
      if (t0 >= windowStart && t1 <= windowEnd) {
        acc.recorder.recordNs((t1 - t0) * 1e6);
        ops++;
      } else if (phase === 'warmup') {
        warmupOps++;
      }
    }
  };

  const warmupTimer = setTimeout(() => {
    edges.before = sampleCpu(o.watched);
    windowStart = edges.before.atMs;
    phase = 'window';
  }, o.warmupMs);
  const endTimer = setTimeout(() => {
    edges.after = sampleCpu(o.watched);
    windowEnd = edges.after.atMs;
    phase = 'done';
  }, o.warmupMs + o.durationMs);

  o.progress?.start(() => {
    const elapsedS = (performance.now() - startedAt) / 1000;
    const totalS = (o.warmupMs + o.durationMs) / 1000;
    const rate = phase === 'window' ? ` ${Math.round(ops / Math.max(0.001, (performance.now() - windowStart) / 1000))} ops/s` : '';
    return `${o.label}: ${phase} ${elapsedS.toFixed(1)}/${totalS.toFixed(1)} s${rate}`;
  });
  try {
    await Promise.all(operations.map((_, w) => worker(w)));
  } finally {
    clearTimeout(warmupTimer);
    clearTimeout(endTimer);
    o.progress?.stop();
  }
  if (edges.failure) throw edges.failure;
  if (!edges.before || !edges.after) throw new Error(`${o.label}: the measurement window never completed`);
  const cpu = cpuBetween(o.watched, edges.before, edges.after);
  acc.rounds++;
  acc.ops += ops;
  acc.warmupOps += warmupOps;
  acc.warmupMs += o.warmupMs;
  acc.windowMs += cpu.windowMs;
  acc.addCpu(cpu);
}

/** A single uninterrupted run. */
export async function runClosedLoop(o: LoadOptions): Promise<LoadResult> {
  const acc = new LoadAccumulator(o.label, o.inflight);
  await runRound(o, acc);
  return acc.result();
}
