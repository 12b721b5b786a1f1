#!/usr/bin/env bash
# redis-benchmark's default test list (no -t) against helios and redis-server in the same
# run, with matched durability (helios --durability sync ↔ appendfsync always; DURABILITY=async
# ↔ everysec), one helios shard (SHARDS=N to change), with and without -P 16. Prints one
# line per test: both throughputs and helios / redis.
#
#   bench/redis-default.sh [REQUESTS_P16] [REQUESTS_P1]
#
# HELIOS_BIN names a prebuilt binary (else it builds the release one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
requests_p16=${1:-200000}
requests_p1=${2:-50000}
clients=${CLIENTS:-50}
durability=${DURABILITY:-sync}
shards=${SHARDS:-1}
case "$durability" in sync) fsync=always ;; async) fsync=everysec ;; *) echo "DURABILITY: sync|async" >&2; exit 2 ;; esac
if [ -z "${HELIOS_BIN:-}" ]; then
  cargo build --release --bin helios --manifest-path "$root/Cargo.toml" >&2
  HELIOS_BIN="$root/target/release/helios"
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; exit 1; }

redis_port=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save '' \
  --appendonly yes --appendfsync "$fsync" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
helios_port=$(free_port)
"$HELIOS_BIN" --data-dir "$work/helios" --redis-addr "127.0.0.1:$helios_port" --pg-addr 127.0.0.1:0 \
  --durability "$durability" --shards "$shards" >"$work/helios.log" 2>&1 &
pids+=($!)
wait_ping "$redis_port"
wait_ping "$helios_port"

# run PORT PIPELINE REQUESTS -> CSV rows "test,rps"
run() {
  redis-benchmark -p "$1" -c "$clients" -n "$3" -P "$2" --csv -q 2>"$work/err" |
    python3 -c 'import csv,sys
for row in list(csv.reader(sys.stdin))[1:]: print(f"{row[0]}\t{float(row[1]):.0f}")'
  if grep -qi "error" "$work/err"; then echo "redis-benchmark reported errors:" >&2; cat "$work/err" >&2; exit 1; fi
}

echo "redis-benchmark default suite, $clients clients; helios --durability $durability --shards $shards ↔ redis-server $(redis-server --version | cut -d' ' -f3) appendfsync $fsync; $(nproc) cores"
for pipeline in 16 1; do
  requests=$requests_p16
  [ "$pipeline" = 1 ] && requests=$requests_p1
  redis-cli -p "$redis_port" flushall >/dev/null
  redis-cli -p "$helios_port" flushall >/dev/null
  run "$redis_port" "$pipeline" "$requests" >"$work/redis.tsv"
  run "$helios_port" "$pipeline" "$requests" >"$work/helios.tsv"
  echo
  echo "-P $pipeline, -n $requests"
  printf '%-40s %12s %12s %8s\n' test helios redis ratio
  paste "$work/helios.tsv" "$work/redis.tsv" | awk -F'\t' '{ printf "%-40s %12d %12d %7.2fx\n", $1, $2, $4, $2 / $4 }'
done
