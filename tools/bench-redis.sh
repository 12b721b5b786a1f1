#!/usr/bin/env bash
# Side-by-side redis-benchmark runs: helios vs redis-server on this machine, with matched
# durability (helios --durability sync ↔ appendfsync always; async ↔ everysec), and helios
# with 1 and 2 shards. Prints one line per run and a ratio table.
#
#   tools/bench-redis.sh [REQUESTS] [TESTS]        e.g. tools/bench-redis.sh 200000 set,get
#
# Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
set -euo pipefail
requests=${1:-200000}
tests=${2:-set,get,incr,mset,ping_mbulk}
clients=${CLIENTS:-50}
# KEYSPACE=N adds -r N (random keys); unset, every request uses the same key, as the plain
# `redis-benchmark -t ...` command does.
keyspace_args=${KEYSPACE:+-r $KEYSPACE}
# shellcheck source=tools/bench-common.sh
source "$(dirname "$0")/bench-common.sh"

# bench NAME PORT PIPELINE -> lines "NAME test rps p99"
bench() {
  redis-benchmark -p "$2" -c "$clients" -n "$requests" -P "$3" -t "$tests" $keyspace_args --csv -q 2>/dev/null |
    python3 -c '
import csv, sys
name, pipe = sys.argv[1], sys.argv[2]
rows = list(csv.reader(sys.stdin))
for row in rows[1:]:
    print(f"{name} P{pipe} {row[0].split()[0]} {float(row[1]):.0f} {row[6]}")' "$1" "$3"
}

run_pairing() { # durability appendfsync
  local durability=$1 fsync=$2
  for shards in 1 2; do
    local port; port=$(free_port)
    "$helios" --data-dir "$work/helios-$durability-$shards" --redis-addr "127.0.0.1:$port" --pg-addr 127.0.0.1:0 \
      --shards "$shards" --durability "$durability" 2>"$work/helios.log" &
    local pid=$!
    wait_ping "$port"
    for p in 1 16; do bench "helios-$durability-${shards}sh" "$port" "$p"; done
    kill -TERM "$pid"; wait "$pid" || true
  done
  local port; port=$(free_port)
  redis-server --port "$port" --dir "$work" --save '' --appendonly yes --appendfsync "$fsync" \
    --appendfilename "aof-$fsync" --daemonize no >"$work/redis.log" 2>&1 &
  local pid=$!
  wait_ping "$port"
  for p in 1 16; do bench "redis-$fsync" "$port" "$p"; done
  kill -TERM "$pid"; wait "$pid" || true
}

{
  run_pairing sync always
  run_pairing async everysec
} | tee "$work/results.txt"
[ -z "${RESULTS:-}" ] || cp "$work/results.txt" "$RESULTS"

python3 - "$work/results.txt" <<'PY'
import sys, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
data = {(r[0], r[1], r[2]): (float(r[3]), float(r[4])) for r in rows}
print("\nratios helios/redis (throughput, p99 latency; >1 throughput is better, <1 p99 is better)")
for durability, peer in (("sync", "redis-always"), ("async", "redis-everysec")):
    for shards in ("1sh", "2sh"):
        name = f"helios-{durability}-{shards}"
        for (n, pipe, test), (rps, p99) in sorted(data.items()):
            if n != name: continue
            base = data.get((peer, pipe, test))
            if not base: continue
            print(f"{name:18} vs {peer:15} {pipe:4} {test:28} thr {rps/base[0]:5.2f}x  p99 {p99/base[1] if base[1] else float('nan'):5.2f}x  ({rps:.0f} vs {base[0]:.0f} rps)")
PY
