// Vitest global set-up: node processes the tests start run the compiled CLI (dist/), so build it
// first when a source is newer than the last build (scripts/build.sh decides; quick when fresh).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export default function setup(): void {
  execFileSync('sh', [join(import.meta.dirname, '..', '..', 'scripts', 'build.sh')], { stdio: 'inherit' });
}
