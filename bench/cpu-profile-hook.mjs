// Preloaded into profiled processes by bench/profile.ts through
// NODE_OPTIONS=--import=<this file> (node refuses --cpu-prof in NODE_OPTIONS). The first SIGUSR2
// starts V8's sampling profiler, the next one stops it and writes
// <ZISTORE_CPU_PROFILE_DIR>/<pid>.cpuprofile, so a profile covers exactly a measurement window.
// Plain JavaScript: it is loaded before (and without) tsx.
import { Session } from 'node:inspector';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.ZISTORE_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  let running = false;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => {
        session.post('Profiler.setSamplingInterval', { interval: 200 }, () => session.post('Profiler.start'));
      });
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, result) => {
      if (err) {
        process.stderr.write(`cpu-profile-hook: ${err.message}\n`);
        return;
      }
      const file = join(dir, `${process.pid}.cpuprofile`);
      // Rename last so a reader never sees a half-written profile.
      writeFileSync(file + '.tmp', JSON.stringify(result.profile));
      renameSync(file + '.tmp', file);
    });
  });
}
