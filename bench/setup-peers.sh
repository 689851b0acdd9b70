#!/bin/sh
# Peers for the ZiStore benchmarks (bench/peers/): installs what is missing, quietly when
# everything is present. Called by the bench before it starts the peers; safe to run by hand.
#  - Debian package etcd-server (etcd 3.4: the three-member etcd peer)
# ZooKeeper, nats-server (JetStream) and Java come from scripts/setup.sh; LevelDB is the npm
# devDependency classic-level. Idempotent. Exits 1 with the exact command to run when it cannot
# install as this user (the bench then skips etcd and says so in the report).
set -eu

have_etcd() {
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || [ -x /usr/local/bin/etcd ]
}

if have_etcd; then
  exit 0
fi

apt_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server"
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "setup-peers: etcd is missing and cannot be installed (not root and no password-less sudo). Run as root:" >&2
  echo "  $apt_cmd" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-peers: etcd is missing and apt-get is not available; install etcd 3.4 with your package manager" >&2
  exit 1
fi

echo "setup-peers: installing etcd-server (apt-get)" >&2
log=$(mktemp "${TMPDIR:-/tmp}/zistore-setup-peers-XXXXXX")
# Install only: Debian's package enables an etcd service on the default ports, which the bench
# does not use (it starts its own members on free loopback ports); policy-rc.d keeps it from
# starting where invoke-rc.d honours it, and it is stopped below where it did start.
if ! { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y --no-install-recommends etcd-server; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  rm -f "$log"
  echo "setup-peers: apt-get failed; try: $apt_cmd" >&2
  exit 1
fi
rm -f "$log"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
fi
if ! have_etcd; then
  echo "setup-peers: etcd-server installed but no etcd binary found" >&2
  exit 1
fi
echo "setup-peers: etcd $(etcd --version 2>/dev/null | head -n 1 | sed 's/^etcd Version: //') installed" >&2
