// Every node restart loads the store's sources from disk again. If they change during a run
// (someone editing), restarted nodes run other code than the rest: the run is then not a test
// of one version. Fingerprint the sources before and after to say so.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DIRS = ['actors', 'bus', 'coordination', 'cli', 'cluster', 'client'];

export type SourceStamp = Map<string, number>;

async function walk(dir: string, out: SourceStamp): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (/\.(ts|js|mjs|json)$/.test(e.name)) {
      try {
        out.set(p.slice(ROOT.length + 1), (await stat(p)).mtimeMs);
      } catch {
        /* removed meanwhile */
      }
    }
  }
}

export async function stampSources(): Promise<SourceStamp> {
  const out: SourceStamp = new Map();
  for (const d of DIRS) await walk(join(ROOT, d), out);
  return out;
}

/** Files added, removed or modified between two stamps. */
export function changedSources(before: SourceStamp, after: SourceStamp): string[] {
  const changed = new Set<string>();
  for (const [p, t] of after) if (before.get(p) !== t) changed.add(p);
  for (const p of before.keys()) if (!after.has(p)) changed.add(p);
  return [...changed].sort();
}
