#!/usr/bin/env bash
# The engine benchmark suite: helios-bench engine runs with 16-byte keys, 100-byte and 1 KB
# values, data sets several times the 64 MiB block cache.
#
#   bench/engine.sh [quick|full] [-- extra helios-bench engine flags]
#   ENGINES=helios,fjall bench/engine.sh full        # the subject first, fjall the reference
#
# quick: 1 M x 100 B and 300 k x 1 KB (about 1 minute on the 2-core VM); full adds 3 M x 100 B
# (about 3 more minutes). Writes summary.txt and one .json per run into
# bench-results/engine-<suite>-<timestamp>/ ($RESULTS_DIR overrides bench-results).
# Environment: CARGO_TARGET_DIR is honoured; BENCH_BIN uses a prebuilt helios-bench;
# ENGINES (default fjall,model); DATA_DIR: where the engines' directories go (a real disk,
# not tmpfs; default /tmp).
set -euo pipefail

SUITE=${1:-quick}
shift || true
[ "${1:-}" = "--" ] && shift
case "$SUITE" in
  quick) RUNS=("1000000 100" "300000 1024") ;;
  full) RUNS=("1000000 100" "300000 1024" "3000000 100") ;;
  *) echo "usage: bench/engine.sh [quick|full] [-- flags]" >&2; exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -n "${BENCH_BIN:-}" ]; then
  BENCH=$BENCH_BIN
else
  cargo build --release --bin helios-bench
  BENCH="$TARGET_DIR/release/helios-bench"
fi
ENGINES=${ENGINES:-fjall,model}
OUT="${RESULTS_DIR:-$ROOT/bench-results}/engine-$SUITE-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
DIR_FLAG=()
[ -n "${DATA_DIR:-}" ] && DIR_FLAG=(--dir "$DATA_DIR")

for run in "${RUNS[@]}"; do
  read -r keys value_bytes <<<"$run"
  name="${keys}x${value_bytes}"
  echo "== $name ($ENGINES)" | tee -a "$OUT/summary.txt"
  "$BENCH" engine --engines "$ENGINES" --keys "$keys" --value-bytes "$value_bytes" \
    --cache-bytes 64MiB --json "$OUT/$name.json" "${DIR_FLAG[@]}" "$@" | tee -a "$OUT/summary.txt"
  echo | tee -a "$OUT/summary.txt"
done
echo "results in $OUT"
