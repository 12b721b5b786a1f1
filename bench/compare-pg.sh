#!/usr/bin/env bash
# The PostgreSQL benchmark suites (bench/compare.sh pg-quick|pg-full runs this).
#
#   bench/compare.sh pg-quick         about 1-2 minutes
#   bench/compare.sh pg-full
#
# Installs nothing: needs Debian's postgresql-15 (/usr/lib/postgresql/15/bin). Creates a
# throwaway cluster in a temp dir owned by user postgres (initdb --auth=trust), starts it on a
# free loopback port with fsync=on synchronous_commit=on (the durability matched to helios
# --durability sync: every commit is on disk before it is acknowledged), runs the suite and
# writes the tables, JSON and SVG into bench-results/<suite>-<timestamp>/ ($RESULTS_DIR
# overrides bench-results). PostgreSQL is stopped on exit.
#
# helios does not speak the PostgreSQL protocol yet, so the suite runs against PostgreSQL
# only; the runs take --target flags, so helios becomes a second --target once it does.
set -euo pipefail

SUITE=${1:-}
case "$SUITE" in
  pg-quick | pg-full) ;;
  *) echo "usage: bench/compare.sh pg-quick|pg-full" >&2; exit 64 ;;
esac

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for tool in initdb pg_ctl pg_isready; do
  if [ ! -x "$PG_BIN/$tool" ]; then
    echo "$PG_BIN/$tool not found: install PostgreSQL 15 (apt-get install -y postgresql-15)" >&2
    exit 1
  fi
done
command -v runuser >/dev/null || { echo "runuser not found (util-linux)" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "no user postgres (apt-get install -y postgresql-15 creates it)" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# BENCH_BIN names a prebuilt helios-bench and skips the build.
if [ -n "${BENCH_BIN:-}" ]; then
  BENCH=$BENCH_BIN
else
  cargo build --release --bin helios-bench
  BENCH="$TARGET_DIR/release/helios-bench"
fi

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

WORK=$(mktemp -d -t helios-compare-pg-XXXXXX)
chown postgres "$WORK"
PG_STARTED=0
cleanup() {
  if [ "$PG_STARTED" = 1 ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/data" -U postgres --auth=trust >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; exit 1; }
PG_PORT=$(free_port)
PG_STARTED=1
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w start \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200" \
  >/dev/null || { cat "$WORK/postgres.log" >&2; exit 1; }
for _ in $(seq 1 100); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.1
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { echo "postgres did not start" >&2; cat "$WORK/postgres.log" >&2; exit 1; }

OUT="${RESULTS_DIR:-bench-results}/$SUITE-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
{
  echo "suite: $SUITE   durability: postgres fsync=on synchronous_commit=on (matches helios --durability sync)"
  echo "postgres: 127.0.0.1:$PG_PORT ($("$PG_BIN/postgres" --version))"
  echo "helios: not run (helios does not speak the PostgreSQL protocol yet)"
  echo "host: $(nproc) cores, $(uname -sr)"
} | tee "$OUT/summary.txt"

# run NAME ARGS...: one workload against the targets.
run() {
  local name=$1
  shift
  echo
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  "$BENCH" pg --target "postgres=127.0.0.1:$PG_PORT" \
    --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" | tee -a "$OUT/summary.txt"
}

if [ "$SUITE" = pg-quick ]; then
  QUICK=(--connections 16 --duration 3 --warmup 0.5 --keyspace 100000)
  for p in simple extended prepared; do
    run "point-select-$p" --workload point-select --protocol "$p" --load "${QUICK[@]}"
  done
  run "update-prepared" --workload update --protocol prepared "${QUICK[@]}"
  run "insert-prepared" --workload insert --protocol prepared --load "${QUICK[@]}"
  run "range-scan-prepared" --workload range-scan --protocol prepared --load "${QUICK[@]}"
  run "tpcb-prepared" --workload tpcb --protocol prepared --load "${QUICK[@]}"
  run "ycsb-a-prepared" --workload ycsb-a --protocol prepared --load "${QUICK[@]}"
else
  FULL=(--connections 32 --duration 10 --warmup 2 --rounds 3 --keyspace 1000000)
  for p in simple extended prepared; do
    for w in point-select insert update tpcb range-scan aggregate \
      ycsb-a ycsb-b ycsb-c ycsb-d ycsb-e ycsb-f; do
      run "$w-$p" --workload "$w" --protocol "$p" --load "${FULL[@]}"
    done
  done
fi

echo
echo "results in $OUT/ (summary.txt, one .json and .svg per run)"
