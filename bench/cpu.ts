// CPU time of every process in a measurement: utime+stime from /proc/<pid>/stat for the servers
// and nodes, process.cpuUsage() for the bench itself, and the whole machine's busy time from
// /proc/stat, so a report can say how much CPU went to processes that are not ours.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface WatchedProcess {
  /** Short role name: 'zookeeper', 'nats-server', 'n1', 'echo', … */
  name: string;
  pid: number;
}

export interface CpuSample {
  atMs: number;
  /** pid → CPU ms (utime+stime) at atMs; null when the process could not be read (gone). */
  processes: Map<number, number | null>;
  selfUs: number;
  /** Machine-wide busy and total jiffies (all cores), from /proc/stat. */
  machineBusyTicks: number;
  machineTotalTicks: number;
}

export interface ProcessCpu {
  name: string;
  pid: number;
  cpuMs: number;
  /** Share of one core over the window, in percent (100 = one core fully busy). */
  corePct: number;
}

export interface CpuUsage {
  windowMs: number;
  processes: ProcessCpu[];
  /** Sum over the watched processes and the bench. */
  totalCpuMs: number;
  /** Machine busy time not accounted for by the watched processes and the bench (other users, kernel threads). */
  otherCpuMs: number;
  /** Machine-wide busy share of all cores, percent. */
  machineBusyPct: number;
}

const TICKS_PER_SEC = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** utime+stime of a process in ms; null when it is gone or /proc is unavailable. */
export function processCpuMs(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat are utime and stime; after the cut, field 3 is at index 0.
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  return ((utime + stime) * 1000) / TICKS_PER_SEC;
}

function machineTicks(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Synchronous on purpose: taken at the exact edge of a measurement window. */
export function sampleCpu(watched: readonly WatchedProcess[]): CpuSample {
  const processes = new Map<number, number | null>();
  for (const p of watched) processes.set(p.pid, processCpuMs(p.pid));
  const self = process.cpuUsage();
  const m = machineTicks();
  return { atMs: performance.now(), processes, selfUs: self.user + self.system, machineBusyTicks: m.busy, machineTotalTicks: m.total };
}

export function cpuBetween(watched: readonly WatchedProcess[], before: CpuSample, after: CpuSample): CpuUsage {
  const windowMs = after.atMs - before.atMs;
  const pct = (ms: number) => (windowMs > 0 ? (100 * ms) / windowMs : 0);
  const processes: ProcessCpu[] = [];
  for (const p of watched) {
    const a = before.processes.get(p.pid);
    const b = after.processes.get(p.pid);
    if (a == null || b == null) continue;
    processes.push({ name: p.name, pid: p.pid, cpuMs: b - a, corePct: pct(b - a) });
  }
  const benchMs = (after.selfUs - before.selfUs) / 1000;
  processes.push({ name: 'bench', pid: process.pid, cpuMs: benchMs, corePct: pct(benchMs) });
  const totalCpuMs = processes.reduce((s, p) => s + p.cpuMs, 0);
  const busyMs = ((after.machineBusyTicks - before.machineBusyTicks) * 1000) / TICKS_PER_SEC;
  const totalMs = ((after.machineTotalTicks - before.machineTotalTicks) * 1000) / TICKS_PER_SEC;
  return {
    windowMs,
    processes,
    totalCpuMs,
    otherCpuMs: Math.max(0, busyMs - totalCpuMs),
    machineBusyPct: totalMs > 0 ? (100 * busyMs) / totalMs : 0,
  };
}

/** Machine-wide busy share over a short interval: used to warn when the host is not idle. */
export async function machineBusyPct(intervalMs = 1000): Promise<number> {
  const a = machineTicks();
  await new Promise((r) => setTimeout(r, intervalMs));
  const b = machineTicks();
  return b.total > a.total ? (100 * (b.busy - a.busy)) / (b.total - a.total) : 0;
}
