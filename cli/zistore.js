#!/usr/bin/env -S node --max-semi-space-size=4
// The `zistore` command: runs the compiled CLI in dist/ (`npm run build`; `npm start`, `npm test`
// and `npm pack` build first). A young generation of 4 MiB semi-spaces rather than V8's 16: a
// node's garbage is short-lived, and after a load the heap keeps less committed (the same flag as
// LocalCluster's NODE_V8_FLAGS; docs/deployment.md).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(`zistore: ${fileURLToPath(main)} is missing: build it with \`npm run build\`\n`);
  process.exit(1);
}
await import(main.href);
