// Merges the node logs (pino JSON lines, `<id>.log` in the cluster data dir) and the nemesis's
// own events into one text timeline on the run's clock, for diagnosing a failed run.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NemesisEvent } from './nemesis.ts';

interface Line {
  t: number;
  who: string;
  text: string;
}

const SKIP = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'node', 'cluster']);

/** `t0Wall`: Date.now() at the run's time 0. Node log lines before `fromMs` are left out. */
export async function buildTimeline(dataDir: string, nodeIds: readonly string[], events: readonly NemesisEvent[], t0Wall: number): Promise<string> {
  const lines: Line[] = events.map((e) => ({ t: e.t, who: 'nemesis', text: e.text }));
  for (const id of nodeIds) {
    let text: string;
    try {
      text = await readFile(join(dataDir, `${id}.log`), 'utf8');
    } catch {
      continue;
    }
    for (const raw of text.split('\n')) {
      if (!raw.startsWith('{')) {
        if (raw.trim()) lines.push({ t: Number.NaN, who: id, text: raw });
        continue;
      }
      try {
        const d = JSON.parse(raw) as Record<string, unknown>;
        const rest = Object.fromEntries(Object.entries(d).filter(([k]) => !SKIP.has(k)));
        const err = rest.err as { message?: string } | undefined;
        if (err && typeof err === 'object') rest.err = err.message ?? 'error';
        const level = typeof d.level === 'number' && d.level >= 40 ? (d.level >= 50 ? 'ERROR ' : 'WARN ') : '';
        lines.push({ t: (d.time as number) - t0Wall, who: id, text: `${level}${String(d.msg ?? '')} ${JSON.stringify(rest)}` });
      } catch {
        lines.push({ t: Number.NaN, who: id, text: raw });
      }
    }
  }
  // Lines without a time (stack traces, stray output) stay after the line they followed.
  let last = -Infinity;
  for (const l of lines) {
    if (Number.isNaN(l.t)) l.t = last;
    else last = l.t;
  }
  lines.sort((a, b) => a.t - b.t);
  return lines.map((l) => `${(l.t / 1000).toFixed(3).padStart(9)}s  ${l.who.padEnd(7)} ${l.text}`).join('\n') + '\n';
}

/**
 * When a leader began to serve, on the run's clock: each node log's "leader serving" lines (a new
 * leader gives expiring keys their whole time to live again; the checker needs to know when).
 */
export async function leaderTakeovers(dataDir: string, nodeIds: readonly string[], t0Wall: number): Promise<number[]> {
  const times: number[] = [];
  for (const id of nodeIds) {
    const text = await readFile(join(dataDir, `${id}.log`), 'utf8').catch(() => '');
    for (const raw of text.split('\n')) {
      if (!raw.includes('"leader serving"')) continue;
      try {
        const d = JSON.parse(raw) as { time?: unknown; msg?: unknown };
        if (d.msg === 'leader serving' && typeof d.time === 'number') times.push(d.time - t0Wall);
      } catch {
        // Not a log line of ours.
      }
    }
  }
  return times.sort((a, b) => a - b);
}
