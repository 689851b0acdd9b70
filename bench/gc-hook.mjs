// Preloaded into ZiStore nodes by the recovery scenario through NODE_OPTIONS=--import=<this file>
// (like cpu-profile-hook.mjs), so memory can be read after a full garbage collection rather than
// with whatever garbage the last load left: on SIGURG the node runs two full collections and
// writes process.memoryUsage() as JSON to <ZISTORE_GC_DIR>/<pid>.mem (renamed into place last).
// With ZISTORE_HEAP_SNAPSHOT=1 it first writes a heap snapshot to <dir>/<pid>-<n>.heapsnapshot
// (bench/heap-profile.ts). Instrumentation only: the store's code is untouched. Plain
// JavaScript: loaded before tsx.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

const dir = process.env.ZISTORE_GC_DIR;
if (dir) {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  let snapshots = 0;
  process.on('SIGURG', () => {
    gc();
    gc();
    let snapshot = null;
    if (process.env.ZISTORE_HEAP_SNAPSHOT === '1') snapshot = writeHeapSnapshot(join(dir, `${process.pid}-${++snapshots}.heapsnapshot`));
    const file = join(dir, `${process.pid}.mem`);
    writeFileSync(file + '.tmp', JSON.stringify({ at: Date.now(), snapshot, ...process.memoryUsage() }));
    renameSync(file + '.tmp', file);
  });
}
