#!/usr/bin/env bash
# The deployment story of docs/deployment.md, played on one machine:
#
#   1. a 3-server ZooKeeper ensemble and a 3-server NATS cluster (routed, max_payload 8 MiB);
#   2. three `zistore node` processes, each given its own NATS server first and the other two as
#      fallbacks, and the full ZooKeeper connect string;
#   3. a write at n1, read back at n2 and n3;
#   4. kill -9 of the ZooKeeper ensemble's leader and of the nats-server n1 is connected to;
#   5. writes and reads still work: the nodes' clients reconnect on their own;
#   6. everything stops on exit (also on Ctrl-C or a failure) and nothing is left running.
#
# Usage: bash deploy/example.sh      (needs what `sh scripts/setup.sh` installs)
# Env:   ZISTORE_CLUSTER (default "example"); KEEP_LOGS=1 keeps the work dir after a success
#        (it is always kept after a failure).
# Here every server listens on 127.0.0.1 on free ports; on real machines each `zistore node`
# line of step 2 runs on its own host (see docs/deployment.md and deploy/zistore@.service).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${ZISTORE_CLUSTER:-example}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zistore-deploy-XXXXXX")
ZISTORE="$ROOT/cli/zistore.js"
DRIVER="$WORK/driver.mjs"
IDS=(n1 n2 n3)
NODE_PIDS=()
INFRA_PID=
KNOWN_PIDS=() # every server pid we learn of, killed ones included: all must be gone at the end
FAULT_AT=     # ms timestamp of the kills
OK=0

if [[ -t 1 ]]; then BOLD=$'\e[1m' RED=$'\e[31m' GREEN=$'\e[32m' PLAIN=$'\e[0m'; else BOLD='' RED='' GREEN='' PLAIN=''; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s%d. %s%s\n' "$BOLD" "$STEP" "$*" "$PLAIN"; }
say() { printf '   %s\n' "$@"; }
indent() { sed 's/^/     | /'; }
fail() { printf '\n%sFAILED: %s%s\n' "$RED" "$*" "$PLAIN" >&2; exit 1; }
now_ms() { local us=${EPOCHREALTIME//[.,]/}; echo $((us / 1000)); }

# ---------------------------------------------------------------------------------------------
# Stop everything this script started, by pid: the nodes first (SIGTERM is a graceful stop, a
# leader hands over), then the servers. Runs on every exit path.
cleanup() {
  local code=$?
  set +e
  trap - INT TERM
  printf '\n%sStopping everything%s\n' "$BOLD" "$PLAIN"
  local pid
  if ((${#NODE_PIDS[@]} > 0)); then
    say "kill -TERM ${NODE_PIDS[*]}    # the nodes"
    kill -TERM "${NODE_PIDS[@]}" 2>/dev/null
    wait_gone 15 "${NODE_PIDS[@]}"
  fi
  if [[ -n $INFRA_PID ]]; then
    say "kill -TERM $INFRA_PID    # the driver: it stops the ZooKeeper and NATS servers"
    kill -TERM "$INFRA_PID" 2>/dev/null
    wait_gone 20 "$INFRA_PID"
  fi
  local all=("${NODE_PIDS[@]}" ${INFRA_PID:+"$INFRA_PID"} "${KNOWN_PIDS[@]}") left=()
  for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
  if ((${#left[@]} > 0)); then
    say "${RED}still running: ${left[*]} - sending SIGKILL${PLAIN}"
    kill -KILL "${left[@]}" 2>/dev/null
    code=1
  else
    say "no process left (checked pids ${all[*]})"
  fi
  if [[ $OK == 1 && -z ${KEEP_LOGS:-} ]]; then
    rm -rf "$WORK"
  else
    say "logs kept in $WORK"
  fi
  exit "$code"
}

# wait_gone SECONDS PID...: wait for the pids to exit; SIGKILL whatever is left after SECONDS.
wait_gone() {
  local deadline=$((SECONDS + $1)) pid alive
  shift
  while :; do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      say "${RED}did not stop in time: ${alive[*]} - SIGKILL${PLAIN}"
      kill -KILL "${alive[@]}" 2>/dev/null
      break
    fi
    sleep 0.2
  done
  for pid in "$@"; do wait "$pid" 2>/dev/null; done
  return 0
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# A small driver on top of the project's own code (run with `node --import tsx`):
#   infra ROOT WORK            start the ZooKeeper ensemble (cluster/zookeeper-ensemble.ts) and the
#                              NATS cluster (cluster/nats-server.ts), write their addresses and pids
#                              to WORK/infra.env, stop them on SIGTERM or when this script is gone
#   members ROOT URL CLUSTER ID...   each node's own view, from zistore.<cluster>.node.<id>.members
#   events SINCE_MS LOG...     what the node logs say happened since SINCE_MS (NATS reconnects,
#                              ZooKeeper session states, node states, replica-set changes)
cat >"$DRIVER" <<'DRIVER'
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const [command, ...args] = process.argv.slice(2);

async function infra(root, work) {
  const { startZooKeeperEnsemble } = await import(join(root, 'cluster/zookeeper-ensemble.ts'));
  const { startNatsCluster } = await import(join(root, 'cluster/nats-server.ts'));
  const parent = process.ppid;
  let zk, nats, stopping;
  const stop = (code) => {
    stopping ??= (async () => {
      await nats?.stop();
      await zk?.stop();
      process.exit(code);
    })();
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  // Never outlive the script: if it was SIGKILLed its trap could not run, so stop its nodes
  // (their pids are in WORK/node.pids) and the servers here.
  const orphaned = () => {
    let nodePids = [];
    try {
      nodePids = readFileSync(join(work, 'node.pids'), 'utf8').split(/\s+/).filter(Boolean).map(Number);
    } catch {
      /* no nodes started yet */
    }
    for (const pid of nodePids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone already */
      }
    }
    setTimeout(() => stop(0), nodePids.length > 0 ? 3000 : 0);
  };
  const watch = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(watch);
      orphaned();
    }
  }, 1000);
  watch.unref();
  try {
    zk = await startZooKeeperEnsemble({ size: 3, dir: join(work, 'zookeeper') });
    nats = await startNatsCluster({ size: 3, name: 'zistore-example' }); // max_payload 8 MiB
    // A client on one server reaches nodes on another only once the routes are up.
    for (const s of nats.servers) {
      for (let i = 0; ; i++) {
        const routez = await (await fetch(`${s.monitorUrl}/routez`)).json();
        if (routez.num_routes >= nats.servers.length - 1) break;
        if (i > 100) throw new Error(`nats-server ${s.url}: routes not up after 10 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const env = {
      ZK_CONNECT: zk.connectString,
      ZK_PORT: zk.servers.map((s) => s.clientPort).join(' '),
      ZK_PID: zk.servers.map((s) => s.pid).join(' '),
      ZK_DIR: zk.servers.map((s) => s.dir).join(' '),
      NATS_URL: nats.urls.join(' '),
      NATS_PID: nats.servers.map((s) => s.pid).join(' '),
      NATS_MON: nats.servers.map((s) => s.monitorUrl).join(' '),
      NATS_CONF: nats.servers.map((s) => s.configFile).join(' '),
    };
    writeFileSync(join(work, 'infra.env.tmp'), Object.entries(env).map(([k, v]) => `${k}=(${v})\n`).join(''));
    renameSync(join(work, 'infra.env.tmp'), join(work, 'infra.env'));
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    stop(1);
  }
}

async function members(root, url, cluster, ...ids) {
  const { connect } = await import(join(root, 'client/index.ts'));
  const kv = await connect({ servers: url, cluster, timeoutMs: 1500 });
  const rows = [['node', 'role', 'state', 'epoch', 'leader', 'replica set']];
  for (const id of ids) {
    try {
      const view = await kv.members({ node: id });
      const self = view.members.find((m) => m.id === id);
      rows.push([id, self?.role ?? '-', self?.state ?? '-', String(view.epoch), view.leader ?? '-', view.replicas.join(',')]);
    } catch (err) {
      rows.push([id, '-', 'unreachable', '-', '-', err instanceof Error ? err.message : String(err)]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  await kv.close();
}

function events(since, ...logs) {
  const lines = [];
  for (const file of logs) {
    const node = basename(file, '.log');
    for (const text of readFileSync(file, 'utf8').split('\n')) {
      let e;
      try {
        e = JSON.parse(text);
      } catch {
        continue;
      }
      if (e.time < Number(since)) continue;
      let what;
      if (e.msg === 'nats status' && /^(disconnect|reconnect)$/.test(e.type)) what = `NATS ${e.type} ${e.data}`;
      else if (e.msg === 'session changed') what = `ZooKeeper session ${e.sessionId}: ${e.state}`;
      else if (e.msg === 'state') what = `node: ${e.role} ${e.state}`;
      else if (e.msg === 'removing replica after its lease') what = `leader: drops ${e.peer} from the replica set (${e.why})`;
      else if (e.msg === 'became leader') what = `node: became leader (epoch ${e.epoch})`;
      if (what) lines.push([e.time, `+${String(e.time - Number(since)).padStart(5)} ms  ${node}  ${what}`]);
    }
  }
  for (const [, line] of lines.sort((a, b) => a[0] - b[0])) console.log(line);
}

if (command === 'infra') await infra(...args);
else if (command === 'members') await members(...args);
else if (command === 'events') events(...args);
else throw new Error(`unknown driver command ${command}`);
DRIVER

# zi COMMAND...: the zistore shell, scripted (one command per line on stdin), through CLIENT_URL.
zi() {
  printf '%s\n' "$@" | node "$ZISTORE" shell --nats "$CLIENT_URL" --cluster "$CLUSTER"
}

# expect_within SECONDS REGEX COMMAND: run the shell command until its output matches REGEX.
expect_within() {
  local seconds=$1 regex=$2 cmd=$3 out tries=0 started=$SECONDS
  say "zistore> $cmd"
  while :; do
    tries=$((tries + 1))
    out=$(zi "$cmd" 2>&1) || true
    if [[ $out =~ $regex ]]; then
      printf '%s\n' "$out" | indent
      local note=''
      ((tries > 1)) && note+="after $tries tries"
      [[ -n $FAULT_AT ]] && note+="${note:+, }$(($(now_ms) - FAULT_AT)) ms after the kills"
      [[ -n $note ]] && say "($note)"
      return 0
    fi
    if ((SECONDS - started >= seconds)); then
      printf '%s\n' "$out" | indent
      fail "'$cmd' did not answer /$regex/ within $seconds s"
    fi
    sleep 0.3
  done
}

# members: every node's own view (role, state, epoch, leader, replica set).
members() {
  node --import tsx "$DRIVER" members "$ROOT" "$CLIENT_URL" "$CLUSTER" "${IDS[@]}"
}

# wait_serving SECONDS: until every node says, on its own subject, that it is serving.
wait_serving() {
  local seconds=$1 started=$SECONDS out id missing
  while :; do
    out=$(members 2>&1) || true
    missing=()
    for id in "${IDS[@]}"; do
      grep -Eq "^$id +[a-z-]+ +serving " <<<"$out" || missing+=("$id")
    done
    if ((${#missing[@]} == 0)); then
      printf '%s\n' "$out" | indent
      return 0
    fi
    if ((SECONDS - started >= seconds)); then
      printf '%s\n' "$out" | indent
      fail "not serving after $seconds s: ${missing[*]}"
    fi
    sleep 0.5
  done
}

# zk4 PORT WORD: a ZooKeeper four-letter word over bash's /dev/tcp (like `echo srvr | nc host port`).
zk4() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf '%s' "$2" >&3 && cat <&3) 2>/dev/null || true
}
zk_mode() { zk4 "$1" srvr | sed -n 's/^Mode: //p'; }

# nats_clients MONITOR_URL: names of the clients connected to that nats-server (its /connz).
nats_clients() {
  node -e 'fetch(process.argv[1] + "/connz").then((r) => r.json()).then((j) => console.log(j.connections.map((c) => c.name).join(" ")), () => console.log(""))' "$1"
}

# show_nats_connections: which nats-server each node is connected to. A node's NATS connection is
# named zistore-<cluster>-<id>.
show_nats_connections() {
  local i id names on
  for i in 0 1 2; do
    if [[ ${NATS_ALIVE[$i]} != 1 ]]; then
      say "  nats-$((i + 1)) ${NATS_URL[$i]}: (killed)"
      continue
    fi
    names=" $(nats_clients "${NATS_MON[$i]}") "
    on=()
    for id in "${IDS[@]}"; do [[ $names == *" zistore-$CLUSTER-$id "* ]] && on+=("$id"); done
    say "  nats-$((i + 1)) ${NATS_URL[$i]}: ${on[*]:-(no node)}"
  done
}

# ---------------------------------------------------------------------------------------------
step "Start a 3-server ZooKeeper ensemble and a 3-server NATS cluster"
say "work dir: $WORK"
node --import tsx "$DRIVER" infra "$ROOT" "$WORK" >"$WORK/infra.log" 2>&1 &
INFRA_PID=$!
for ((i = 0; i < 900; i++)); do
  [[ -f $WORK/infra.env ]] && break
  kill -0 "$INFRA_PID" 2>/dev/null || { indent <"$WORK/infra.log"; fail "the servers did not start"; }
  sleep 0.1
done
[[ -f $WORK/infra.env ]] || fail "the servers did not start within 90 s"
# shellcheck source=/dev/null
source "$WORK/infra.env" # ZK_CONNECT, and the arrays ZK_PORT ZK_PID ZK_DIR NATS_URL NATS_PID NATS_MON NATS_CONF
KNOWN_PIDS+=("${ZK_PID[@]}" "${NATS_PID[@]}")
NATS_ALIVE=(1 1 1)
CLIENT_URL=${NATS_URL[0]}

say "ZooKeeper ensemble, connect string $ZK_CONNECT"
for i in 0 1 2; do
  say "  zk$((i + 1)): pid ${ZK_PID[$i]}, client port ${ZK_PORT[$i]}, $(zk_mode "${ZK_PORT[$i]}")   (${ZK_DIR[$i]}/zoo.cfg)"
done
say "zk1's zoo.cfg (each server also has data/myid holding its number):"
grep -E '^(tickTime|initLimit|syncLimit|clientPort|server\.)' "${ZK_DIR[0]}/zoo.cfg" | indent
say "NATS cluster:"
for i in 0 1 2; do say "  nats-$((i + 1)): pid ${NATS_PID[$i]}, ${NATS_URL[$i]}   (${NATS_CONF[$i]})"; done
say "nats-1's config:"
indent <"${NATS_CONF[0]}"

# ---------------------------------------------------------------------------------------------
step "Start three nodes, each with its own NATS server first and the others as fallbacks"
for i in 0 1 2; do
  id=${IDS[$i]}
  urls=${NATS_URL[$i]}
  for j in 0 1 2; do if ((j != i)); then urls+=",${NATS_URL[$j]}"; fi; done
  say "node cli/zistore.js node --id $id --cluster $CLUSTER --zk $ZK_CONNECT --nats $urls"
  node "$ZISTORE" node --id "$id" --cluster "$CLUSTER" --zk "$ZK_CONNECT" --nats "$urls" >"$WORK/$id.log" 2>&1 &
  NODE_PIDS+=($!)
  say "  -> pid $!, JSON log in $WORK/$id.log"
done
printf '%s\n' "${NODE_PIDS[@]}" >"$WORK/node.pids" # for the driver, should this script be SIGKILLed

step "Wait until every node serves (members on zistore.$CLUSTER.node.<id>.members)"
wait_serving 60
say "which nats-server each node is connected to (each server's /connz):"
show_nats_connections

# ---------------------------------------------------------------------------------------------
step "Write at n1, read at n2 and n3"
expect_within 10 'ok \(revision' 'put greeting hello n1'
expect_within 10 '"hello"' 'get greeting n2'
expect_within 10 '"hello"' 'get greeting n3'

# ---------------------------------------------------------------------------------------------
step "kill -9 the ZooKeeper ensemble's leader and the nats-server n1 is connected to"
zk_victim=
for i in 0 1 2; do
  if [[ $(zk_mode "${ZK_PORT[$i]}") == leader ]]; then zk_victim=$i; fi
done
[[ -n $zk_victim ]] || fail "no ZooKeeper server says it leads"
nats_victim=
for i in 0 1 2; do
  if [[ " $(nats_clients "${NATS_MON[$i]}") " == *" zistore-$CLUSTER-n1 "* ]]; then nats_victim=$i; fi
done
[[ -n $nats_victim ]] || fail "n1 is not connected to any nats-server"
FAULT_AT=$(now_ms)
say "kill -9 ${ZK_PID[$zk_victim]}    # zk$((zk_victim + 1)), the ensemble's leader"
kill -KILL "${ZK_PID[$zk_victim]}"
say "kill -9 ${NATS_PID[$nats_victim]}    # nats-$((nats_victim + 1)) ${NATS_URL[$nats_victim]}, where n1 is connected"
kill -KILL "${NATS_PID[$nats_victim]}"
NATS_ALIVE[nats_victim]=0
for i in 0 1 2; do
  if ((i != nats_victim)); then CLIENT_URL=${NATS_URL[$i]} && break; fi
done
say "from now on the shell connects through ${CLIENT_URL}"

# ---------------------------------------------------------------------------------------------
step "Writes and reads still work"
expect_within 20 'ok \(revision' 'put greeting world n2'
expect_within 20 '"world"' 'get greeting n1'
expect_within 20 '"world"' 'get greeting n3'
expect_within 20 'ok \(revision' 'put after-faults yes n1'
expect_within 20 '"yes"' 'get after-faults n3'

step "What happened meanwhile"
say "the two remaining ZooKeeper servers elected a new leader:"
for i in 0 1 2; do
  if ((i != zk_victim)); then say "  zk$((i + 1)): $(zk_mode "${ZK_PORT[$i]}")"; fi
done
say "n1's NATS client moved to a remaining server:"
show_nats_connections
say "the nodes' logs since the kills (ZooKeeper sessions survive the election: same session id):"
node "$DRIVER" events "$FAULT_AT" "$WORK"/n?.log | indent
say "the nodes now:"
wait_serving 30

OK=1
printf '\n%sDone: the cluster kept its data and kept serving through the loss of a ZooKeeper server and a nats-server.%s\n' "$GREEN" "$PLAIN"
