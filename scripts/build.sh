#!/bin/sh
# Compiles the runtime (client, nodes, CLI, local cluster) to dist/ with tsc, when a source is
# newer than the last build (or with --force). Node processes and the published package run
# dist/; tests and the simulation run the TypeScript sources directly.
set -eu
cd "$(dirname "$0")/.."

stamp=dist/.built
sources="actors bus coordination cluster cli client observe storage tsconfig.json tsconfig.build.json package.json"
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ -z "$(find $sources -newer "$stamp" -type f 2>/dev/null | head -n 1)" ]; then
  exit 0
fi
rm -rf dist
npx tsc -p tsconfig.build.json
# Files tsc does not carry over: the inspector's page and the data-dir check run in a child process.
cp observe/viewer-page.html dist/observe/
cp storage/verify-data-dir.mjs storage/entry-layout.mjs storage/entry-layout.d.mts dist/storage/
touch "$stamp"
