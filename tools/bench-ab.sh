#!/usr/bin/env bash
# Alternating A/B rounds (helios, redis, helios, redis, ...) of one redis-benchmark test, so
# machine drift hits both alike; prints each round and the medians.
#
#   tools/bench-ab.sh sync|async SHARDS PIPELINE TEST [ROUNDS] [REQUESTS]
#   e.g. tools/bench-ab.sh sync 1 16 get 5 1000000   (HELIOS_BIN=path to compare another build)
set -euo pipefail
durability=$1 shards=$2 pipeline=$3 test=$4 rounds=${5:-5} requests=${6:-1000000}
fsync=$([ "$durability" = sync ] && echo always || echo everysec)
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin helios --manifest-path "$root/Cargo.toml" >&2
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; exit 1; }
hp=$(free_port); rp=$(free_port)
"${HELIOS_BIN:-$root/target/release/helios}" --data-dir "$work/helios" --redis-addr "127.0.0.1:$hp" --pg-addr 127.0.0.1:0 \
  --shards "$shards" --durability "$durability" 2>"$work/helios.log" &
redis-server --port "$rp" --dir "$work" --save '' --appendonly yes --appendfsync "$fsync" >"$work/redis.log" 2>&1 &
wait_ping "$hp"; wait_ping "$rp"
for round in $(seq "$rounds"); do
  for target in helios:$hp redis:$rp; do
    name=${target%%:*} port=${target##*:}
    redis-benchmark -p "$port" -c 50 -n "$requests" -P "$pipeline" -t "$test" --csv 2>/dev/null | tail -1 |
      awk -F'"' -v n="$name" -v r="$round" '{print n, r, $4, $14}'
  done
done | tee "$work/rounds.txt"
python3 - "$work/rounds.txt" "$durability" "$shards" "$pipeline" "$test" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {n: (statistics.median(float(r[2]) for r in rows if r[0] == n), statistics.median(float(r[3]) for r in rows if r[0] == n)) for n in ("helios", "redis")}
(h, hp99), (r, rp99) = med["helios"], med["redis"]
print(f"{sys.argv[5]} P{sys.argv[4]} {sys.argv[2]} {sys.argv[3]} shard(s): helios {h:.0f} rps p99 {hp99} ms | redis {r:.0f} rps p99 {rp99} ms | throughput {h/r:.2f}x, p99 {hp99/rp99:.2f}x (medians of {len(rows)//2} alternating rounds)")
PY
