// Ctrl-C for bench entry points: stop the clusters through BenchCluster.stop() (which also
// removes their temp dirs, unlike the process registry's handler), then exit; a second signal
// kills whatever is left at once.
import { killAllProcessesSync } from '../cluster/process-registry.ts';

export function onInterrupt(stopAll: () => Promise<unknown>, before: () => void = () => {}): void {
  let interrupted = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      killAllProcessesSync();
      process.exit(130);
    }
    interrupted = true;
    before();
    process.stderr.write(`\n${signal}: stopping the cluster (again to kill at once)\n`);
    stopAll()
      .catch(() => undefined)
      .finally(() => {
        killAllProcessesSync();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
