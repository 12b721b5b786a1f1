#!/usr/bin/env bash
# Side-by-side run of a benchmark suite against helios and Debian's redis-server.
#
#   bench/compare.sh SUITE            SUITE: redis-quick | redis-full | redis-ycsb | pg-quick | pg-full | pg-scan | pgbench
#   DURABILITY=async bench/compare.sh redis-quick
#
# The pg suites are bench/compare-pg.sh (PostgreSQL only for now: helios does not speak the
# PostgreSQL protocol yet).
#
# Builds helios and helios-bench (release), starts redis-server and helios on free loopback
# ports with matched durability (sync: helios --durability sync <-> redis appendonly yes +
# appendfsync always; async: helios --durability async <-> appendfsync everysec), runs the
# suite against both (redis-server first, so ratios read "helios / redis"), and writes the
# tables, JSON and SVG into bench-results/<suite>-<timestamp>/ ($RESULTS_DIR overrides
# bench-results). Both servers are stopped on exit.
set -euo pipefail

SUITE=${1:-}
DURABILITY=${DURABILITY:-sync}
case "$SUITE" in
  redis-quick | redis-full | redis-ycsb) ;;
  pg-quick | pg-full | pg-scan | pgbench)
    exec "$(dirname "$0")/compare-pg.sh" "$SUITE" ;;
  *)
    echo "usage: bench/compare.sh redis-quick|redis-full|redis-ycsb|pg-quick|pg-full|pg-scan|pgbench" >&2
    exit 64 ;;
esac
case "$DURABILITY" in
  sync) REDIS_FSYNC=always ;;
  async) REDIS_FSYNC=everysec ;;
  *) echo "DURABILITY must be sync or async" >&2; exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v redis-server >/dev/null || { echo "redis-server not installed (apt-get install redis-server)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli not installed (apt-get install redis-tools)" >&2; exit 1; }

# HELIOS_BIN and BENCH_BIN, when both set, name prebuilt binaries and skip the build.
if [ -n "${HELIOS_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
  HELIOS=$HELIOS_BIN
  BENCH=$BENCH_BIN
else
  cargo build --release --bin helios --bin helios-bench
  HELIOS="$TARGET_DIR/release/helios"
  BENCH="$TARGET_DIR/release/helios-bench"
fi

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# Polls PING until the server answers (10 s deadline).
wait_ready() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 1 200); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not start; log:" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}

WORK=$(mktemp -d -t helios-compare-XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync "$REDIS_FSYNC" --daemonize no >"$WORK/redis-server.log" 2>&1 &
PIDS+=($!)
wait_ready "$REDIS_PORT" "${PIDS[-1]}" redis-server

HELIOS_PORT=$(free_port)
"$HELIOS" --data-dir "$WORK/helios" --redis-addr "127.0.0.1:$HELIOS_PORT" \
  --pg-addr 127.0.0.1:0 --durability "$DURABILITY" >"$WORK/helios.log" 2>&1 &
PIDS+=($!)
wait_ready "$HELIOS_PORT" "${PIDS[-1]}" helios

OUT="${RESULTS_DIR:-bench-results}/$SUITE-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
{
  echo "suite: $SUITE   durability: helios $DURABILITY, redis appendfsync $REDIS_FSYNC"
  echo "redis-server: 127.0.0.1:$REDIS_PORT ($(redis-server --version | cut -d' ' -f3))"
  echo "helios:       127.0.0.1:$HELIOS_PORT"
  echo "host: $(nproc) cores, $(uname -sr)"
} | tee "$OUT/summary.txt"

# run NAME ARGS...: one workload against both servers.
run() {
  local name=$1
  shift
  echo
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  "$BENCH" redis --target "redis=127.0.0.1:$REDIS_PORT" --target "helios=127.0.0.1:$HELIOS_PORT" \
    --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" | tee -a "$OUT/summary.txt"
}

if [ "$SUITE" = redis-quick ]; then
  QUICK=(--connections 50 --duration 2 --warmup 0.5 --rounds 2)
  for p in 1 16; do
    run "set-p$p" --workload set --pipeline "$p" "${QUICK[@]}"
    run "get-p$p" --workload get --pipeline "$p" --load "${QUICK[@]}"
    run "mix-p$p" --workload mix --mix get=90,set=10 --pipeline "$p" --load "${QUICK[@]}"
    run "ycsb-a-p$p" --workload ycsb-a --pipeline "$p" --load "${QUICK[@]}"
  done
elif [ "$SUITE" = redis-ycsb ]; then
  YCSB=(--connections 50 --duration "${YCSB_SECONDS:-3}" --warmup 1 --rounds 1 --keyspace 100000)
  for p in 1 16; do
    for w in ycsb-a ycsb-b ycsb-c ycsb-d ycsb-e ycsb-f; do
      run "$w-p$p" --workload "$w" --pipeline "$p" --load "${YCSB[@]}"
    done
  done
else
  FULL=(--connections 50 --duration 10 --warmup 2 --rounds 3 --keyspace 1000000)
  for p in 1 16; do
    for w in set get incr mset mix ycsb-a ycsb-b ycsb-c ycsb-d ycsb-e ycsb-f; do
      run "$w-p$p" --workload "$w" --pipeline "$p" --load "${FULL[@]}"
    done
  done
fi

echo
echo "results in $OUT/ (summary.txt, one .json and .svg per run)"
