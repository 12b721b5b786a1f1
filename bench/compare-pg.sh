#!/usr/bin/env bash
# The PostgreSQL benchmark suites (bench/compare.sh pg-quick|pg-full runs this).
#
#   bench/compare.sh pg-quick         about 1-2 minutes
#   bench/compare.sh pg-full
#   bench/compare.sh pg-scan          analytic scans (vectorized execution), about 2 minutes
#   bench/compare.sh pgbench          pgbench unmodified: -i load time, TPC-B and -S in every
#                                     query mode (PGBENCH_SCALE=10, PGBENCH_SECONDS=10,
#                                     PGBENCH_CLIENTS=16, PGBENCH_ROUNDS=3), each run also
#                                     against helios-bench pg-ceiling (a no-work server: the
#                                     most a server could reach here), about 10 minutes
#
# Installs nothing: needs Debian's postgresql-15 (/usr/lib/postgresql/15/bin). Creates a
# throwaway cluster in a temp dir owned by user postgres (initdb --auth=trust), starts it on a
# free loopback port with fsync=on synchronous_commit=on (the durability matched to helios
# --durability sync: every commit is on disk before it is acknowledged), runs the suite and
# writes the tables, JSON and SVG into bench-results/<suite>-<timestamp>/ ($RESULTS_DIR
# overrides bench-results). PostgreSQL is stopped on exit.
#
# helios (release build, --durability sync, fresh data dir) runs beside it; every run drives
# PostgreSQL then helios with the same workload, so ratios read "helios / postgres".
set -euo pipefail

SUITE=${1:-}
case "$SUITE" in
  pg-quick | pg-full | pg-scan | pgbench) ;;
  *) echo "usage: bench/compare.sh pg-quick|pg-full|pg-scan|pgbench" >&2; exit 64 ;;
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

WORK=$(mktemp -d -t helios-compare-pg-XXXXXX)
chown postgres "$WORK"
PG_STARTED=0
HELIOS_PID=
CEILING_PID=
cleanup() {
  if [ -n "$CEILING_PID" ]; then
    kill "$CEILING_PID" 2>/dev/null || true
    wait "$CEILING_PID" 2>/dev/null || true
  fi
  if [ -n "$HELIOS_PID" ]; then
    kill "$HELIOS_PID" 2>/dev/null || true
    wait "$HELIOS_PID" 2>/dev/null || true
  fi
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

# helios with sync durability (every acknowledged write fsynced), as PostgreSQL above.
HELIOS_PORT=$(free_port)
"$HELIOS" --data-dir "$WORK/helios" --redis-addr 127.0.0.1:0 --pg-addr "127.0.0.1:$HELIOS_PORT" \
  --durability sync >"$WORK/helios.log" 2>&1 &
HELIOS_PID=$!
for _ in $(seq 1 200); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$HELIOS_PORT" && break
  kill -0 "$HELIOS_PID" 2>/dev/null || break
  sleep 0.05
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$HELIOS_PORT" || { echo "helios did not start" >&2; cat "$WORK/helios.log" >&2; exit 1; }

OUT="${RESULTS_DIR:-bench-results}/$SUITE-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
{
  echo "suite: $SUITE   durability: postgres fsync=on synchronous_commit=on (matches helios --durability sync)"
  echo "postgres: 127.0.0.1:$PG_PORT ($("$PG_BIN/postgres" --version))"
  echo "helios: 127.0.0.1:$HELIOS_PORT (--durability sync, default shards)"
  echo "host: $(nproc) cores, $(uname -sr)"
} | tee "$OUT/summary.txt"

# run NAME ARGS...: one workload against the targets.
run() {
  local name=$1
  shift
  echo
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  "$BENCH" pg --target "postgres=127.0.0.1:$PG_PORT" --target "helios=127.0.0.1:$HELIOS_PORT" \
    --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" | tee -a "$OUT/summary.txt"
}

# scan_suite: whole-table filters and aggregates over SCAN_ROWS rows (default 1,000,000),
# each query timed by pgbench (simple protocol, one client, SCAN_SECONDS each) against
# PostgreSQL, helios, and helios with vectorized execution off (`helios.vectorized`).
scan_suite() {
  local rows=${SCAN_ROWS:-1000000} seconds=${SCAN_SECONDS:-10} chunk=100000
  local load=(-c "DROP TABLE IF EXISTS scan"
    -c "CREATE TABLE scan (id int PRIMARY KEY, a int NOT NULL, b int, x float8, s text)")
  local from
  for ((from = 1; from <= rows; from += chunk)); do
    load+=(-c "INSERT INTO scan SELECT g, g % 1000, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 100 END,
      g / 3.0, 'k' || (g % 50) FROM generate_series($from, $((from + chunk - 1 < rows ? from + chunk - 1 : rows))) g")
  done
  load+=(-c "VACUUM ANALYZE scan")
  local port
  for port in "$PG_PORT" "$HELIOS_PORT"; do
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      "${load[@]}" >/dev/null 2>&1 || { echo "loading scan into port $port failed" >&2; exit 1; }
  done
  local queries=(
    "count|SELECT count(*) FROM scan"
    "filter-count|SELECT count(*) FROM scan WHERE a < 250 AND b IS NOT NULL"
    "sum-avg|SELECT sum(a), avg(x), min(b), max(b) FROM scan WHERE b > 10"
    "group-by|SELECT b, count(*), sum(a) FROM scan GROUP BY b"
    "arith-filter|SELECT count(*) FROM scan WHERE a * 3 + b > 1500 OR x < 100"
    "like-in|SELECT count(*) FROM scan WHERE s LIKE 'k1%' AND b IN (1, 2, 3, 5, 8)"
  )
  printf '%-14s %12s %12s %12s %10s %10s\n' query "postgres ms" "helios ms" "h-rowwise ms" "pg/helios" "row/vector" \
    | tee -a "$OUT/summary.txt"
  local q name sql pg_ms h_ms r_ms
  for q in "${queries[@]}"; do
    name=${q%%|*}
    sql=${q#*|}
    printf '%s;\n' "$sql" >"$WORK/q.sql"
    printf 'SET helios.vectorized = off;\n%s;\n' "$sql" >"$WORK/q-rowwise.sql"
    pg_ms=$(scan_latency "$PG_PORT" "$WORK/q.sql" "$seconds")
    h_ms=$(scan_latency "$HELIOS_PORT" "$WORK/q.sql" "$seconds")
    r_ms=$(scan_latency "$HELIOS_PORT" "$WORK/q-rowwise.sql" "$seconds")
    printf '%-14s %12s %12s %12s %9.2fx %9.2fx\n' "$name" "$pg_ms" "$h_ms" "$r_ms" \
      "$(echo "$pg_ms / $h_ms" | bc -l)" "$(echo "$r_ms / $h_ms" | bc -l)" | tee -a "$OUT/summary.txt"
  done
  echo "($rows rows; pgbench -n -M simple -c 1 -T $seconds per query; ratios > 1: helios faster)" \
    | tee -a "$OUT/summary.txt"
}

# scan_latency PORT SCRIPT SECONDS: pgbench's average latency (ms) of SCRIPT.
scan_latency() {
  "$PG_BIN/pgbench" -n -M simple -c 1 -T "$3" -f "$2" -h 127.0.0.1 -p "$1" -U postgres postgres 2>&1 \
    | awk '/latency average/ { print $4 }'
}

# pgbench_suite: Debian's pgbench against both servers: `pgbench -i -s SCALE` (timed), then
# the built-in TPC-B script and -S (select only) in every query mode, each against postgres,
# helios and the no-work ceiling server, PGBENCH_ROUNDS times back to back (postgres and
# helios alternating which goes first), so a ratio's two figures are seconds apart and the
# VM's drift between minutes does not decide it. Prints each server's median tps, the median
# of the per-round ratios and every round's ratio; then TPC-B's consistency check on both
# servers (the account, teller and branch balance sums agree), failing the suite if not.
pgbench_suite() {
  local scale=${PGBENCH_SCALE:-10} seconds=${PGBENCH_SECONDS:-10} clients=${PGBENCH_CLIENTS:-16}
  local rounds=${PGBENCH_ROUNDS:-3}
  local port name
  declare -A load_s
  for port in "$PG_PORT" "$HELIOS_PORT"; do
    name=postgres
    [ "$port" = "$HELIOS_PORT" ] && name=helios
    local start end
    start=$(date +%s.%N)
    "$PG_BIN/pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$port" -U postgres postgres       >"$WORK/init-$name.log" 2>&1 || { echo "pgbench -i on $name failed" >&2; cat "$WORK/init-$name.log" >&2; exit 1; }
    end=$(date +%s.%N)
    load_s[$name]=$(echo "$end - $start" | bc -l)
  done
  start_ceiling
  echo "($rounds rounds of $seconds s, $clients clients, -j 2; medians; ratio = helios / postgres," \
    "max ratio = ceiling / postgres)" | tee -a "$OUT/summary.txt"
  printf '%-27s %10s %10s %7s %10s %9s  %s\n' "pgbench -s $scale" postgres helios ratio ceiling \
    "max ratio" "ratio per round" | tee -a "$OUT/summary.txt"
  printf '%-27s %9.2fs %9.2fs %6.2fx\n' "load time (-i)" "${load_s[postgres]}" "${load_s[helios]}" \
    "$(echo "${load_s[helios]} / ${load_s[postgres]}" | bc -l)" | tee -a "$OUT/summary.txt"
  local mode script round
  for mode in simple extended prepared; do
    for script in tpcb select-only; do
      local flags=(-c "$clients" -j 2 -T "$seconds" -M "$mode")
      [ "$script" = select-only ] && flags+=(-S)
      : >"$WORK/rounds.txt"
      for round in $(seq 1 "$rounds"); do
        local order=("$PG_PORT" "$HELIOS_PORT")
        [ $((round % 2)) = 0 ] && order=("$HELIOS_PORT" "$PG_PORT")
        declare -A tps=()
        for port in "${order[@]}" "$CEILING_PORT"; do
          name=postgres
          [ "$port" = "$HELIOS_PORT" ] && name=helios
          [ "$port" = "$CEILING_PORT" ] && name=ceiling
          tps[$name]=$("$PG_BIN/pgbench" "${flags[@]}" -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 \
            | awk '/^tps = / { print $3 }')
          [ -n "${tps[$name]}" ] || { echo "pgbench $script $mode on $name failed" >&2; exit 1; }
        done
        echo "${tps[postgres]} ${tps[helios]} ${tps[ceiling]}" >>"$WORK/rounds.txt"
      done
      python3 - "$script $mode (tps)" "$WORK/rounds.txt" <<'PY' | tee -a "$OUT/summary.txt"
import statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[2]) if line.strip()]
pg, he, ce = ([r[i] for r in rows] for i in range(3))
ratios = [h / p for p, h, _ in rows]
maxes = [c / p for p, _, c in rows]
med = statistics.median
print(f"{sys.argv[1]:<27} {med(pg):10.0f} {med(he):10.0f} {med(ratios):6.2f}x {med(ce):10.0f} "
      f"{med(maxes):8.2f}x  {' / '.join(f'{r:.2f}' for r in ratios)}")
PY
    done
  done
  tpcb_consistency "$PG_PORT" postgres
  tpcb_consistency "$HELIOS_PORT" helios
  {
    echo "ceiling: helios-bench pg-ceiling, a PostgreSQL-protocol server that does no work (canned"
    echo "rows, no SQL, no disk, no fsync); max ratio = ceiling / postgres, about the most a server"
    echo "could reach against postgres here with pgbench on the same cores."
  } | tee -a "$OUT/summary.txt"
}

# tpcb_consistency PORT NAME: every TPC-B transaction adds its delta to one account, one
# teller and one branch, and pgbench -i starts every balance at 0, so the three balance sums
# are equal after any number of committed transactions. (The history's sum is not compared:
# pgbench truncates pgbench_history before each run without -n. tests/tests/pgbench.rs checks
# it against the balances, with -n, in CI.)
tpcb_consistency() {
  local sums
  sums=$("$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtq -F ' ' -c \
    "SELECT (SELECT sum(abalance) FROM pgbench_accounts),
            (SELECT sum(tbalance) FROM pgbench_tellers),
            (SELECT sum(bbalance) FROM pgbench_branches)") \
    || { echo "consistency query on $2 failed" >&2; exit 1; }
  local accounts tellers branches
  read -r accounts tellers branches <<<"$sums"
  if [ -n "$accounts" ] && [ "$accounts" = "$tellers" ] && [ "$accounts" = "$branches" ]; then
    echo "TPC-B consistency on $2: account, teller and branch balance sums all $accounts" \
      | tee -a "$OUT/summary.txt"
  else
    echo "TPC-B consistency on $2 FAILED: accounts $accounts, tellers $tellers," \
      "branches $branches" | tee -a "$OUT/summary.txt" >&2
    exit 1
  fi
}

# start_ceiling: the no-work server (helios-bench pg-ceiling) on a free port, stopped on exit.
start_ceiling() {
  CEILING_PORT=$(free_port)
  "$BENCH" pg-ceiling --addr "127.0.0.1:$CEILING_PORT" >"$WORK/ceiling.log" 2>&1 &
  CEILING_PID=$!
  for _ in $(seq 1 200); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$CEILING_PORT" && return 0
    kill -0 "$CEILING_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "pg-ceiling did not start" >&2
  cat "$WORK/ceiling.log" >&2
  exit 1
}

if [ "$SUITE" = pg-scan ]; then
  scan_suite
elif [ "$SUITE" = pgbench ]; then
  pgbench_suite
elif [ "$SUITE" = pg-quick ]; then
  # tpcb is left out until helios has the timestamp type its history table uses.
  QUICK=(--connections 16 --duration 3 --warmup 0.5 --keyspace 100000)
  for p in simple extended prepared; do
    run "point-select-$p" --workload point-select --protocol "$p" --load "${QUICK[@]}"
  done
  run "insert-extended" --workload insert --protocol extended --load "${QUICK[@]}"
  run "update-extended" --workload update --protocol extended "${QUICK[@]}"
  run "range-scan-extended" --workload range-scan --protocol extended --load "${QUICK[@]}"
  run "aggregate-extended" --workload aggregate --protocol extended --load "${QUICK[@]}"
  run "ycsb-a-extended" --workload ycsb-a --protocol extended --load "${QUICK[@]}"
else
  FULL=(--connections 32 --duration 10 --warmup 2 --rounds 3 --keyspace 1000000)
  for p in simple extended prepared; do
    for w in point-select insert update range-scan aggregate \
      ycsb-a ycsb-b ycsb-c ycsb-d ycsb-e ycsb-f; do
      run "$w-$p" --workload "$w" --protocol "$p" --load "${FULL[@]}"
    done
  done
fi

echo
echo "results in $OUT/ (summary.txt, one .json and .svg per run)"
