#!/bin/sh
# ZiStore setup: installs what `npm start` / `npm test` need, quietly when everything is present.
#  - npm dependencies (when node_modules is missing or package.json is newer than its lock)
#  - Debian packages: zookeeper, nats-server, a Java runtime, and chromium (the inspector page's
#    browser test drives it headless through playwright-core)
# Idempotent. Exits 1 with the exact command to run when it cannot install as this user.
set -eu

cd "$(dirname "$0")/.."

# --- npm dependencies -------------------------------------------------------
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] \
   || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm install)"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- Debian packages ----------------------------------------------------------
missing=""
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  missing="$missing zookeeper"
fi
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  missing="$missing nats-server"
fi
if ! command -v java >/dev/null 2>&1; then
  missing="$missing default-jre-headless"
fi
if [ ! -x /usr/bin/chromium ]; then
  missing="$missing chromium"
fi

if [ -n "$missing" ]; then
  missing=${missing# }
  apt_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "setup: missing Debian packages: $missing" >&2
    echo "setup: cannot install them (not root and no password-less sudo). Run as root:" >&2
    echo "  $apt_cmd" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing packages ($missing) and apt-get is not available; install them with your package manager" >&2
    exit 1
  fi
  for p in $missing; do
    echo "setup: installing $p (apt-get)"
  done
  log=$(mktemp "${TMPDIR:-/tmp}/zistore-setup-XXXXXX")
  if ! { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "setup: apt-get failed; try: $apt_cmd" >&2
    exit 1
  fi
  rm -f "$log"
  if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1 \
     || { ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; }; then
    echo "setup: packages installed but zookeeper.jar, java or nats-server is still missing" >&2
    exit 1
  fi
fi

# --- the compiled runtime (dist/), when a source changed -------------------------
sh scripts/build.sh
