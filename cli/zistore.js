#!/usr/bin/env node
// The `zistore` command: runs the compiled CLI in dist/ (`npm run build`; `npm start`, `npm test`
// and `npm pack` build first).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(`zistore: ${fileURLToPath(main)} is missing: build it with \`npm run build\`\n`);
  process.exit(1);
}
await import(main.href);
