#!/usr/bin/env bash
# redis-benchmark's default test list against redis-server and helios on this machine, each
# test on both servers back to back, as issue 6's target is stated: helios --durability sync
# --shards 1 against redis-server with appendfsync always, `-P 16 -c 50`. One server of each serves
# every round (so the benchmark's lists keep growing, as they would for a user running it
# again); the table gives each command's median requests/s and the median and per-round
# ratios helios / redis-server.
#
#   tools/bench-redis-default.sh [ROUNDS] [REQUESTS]      defaults: 3 rounds of 500000
#
# Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
set -euo pipefail
rounds=${1:-3}
requests=${2:-500000}
pipeline=${PIPELINE:-16}
# shellcheck source=tools/bench-common.sh
source "$(dirname "$0")/bench-common.sh"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly yes \
  --appendfsync always --daemonize no >"$work/redis.log" 2>&1 &
helios_port=$(free_port)
"$helios" --data-dir "$work/helios" --redis-addr "127.0.0.1:$helios_port" --pg-addr 127.0.0.1:0 \
  --shards 1 --durability sync 2>"$work/helios.log" &
wait_ping "$redis_port"
wait_ping "$helios_port"

# The default list, in its own order, one redis-benchmark run per test (the LRANGE tests are
# one run: it fills their list once, as the default run does). Each test runs on both servers
# back to back, the first server alternating by round, so the two figures of a ratio are
# taken seconds apart: with the whole list on one server and then on the other, minutes
# apart, this VM's drift moved single ratios by a third.
tests=(ping_inline ping_mbulk set get incr lpush rpush lpop rpop sadd hset spop zadd zpopmin
  lrange_100,lrange_300,lrange_500,lrange_600 mset)
for round in $(seq "$rounds"); do
  servers=(redis:$redis_port helios:$helios_port)
  [ $((round % 2)) -eq 0 ] && servers=(helios:$helios_port redis:$redis_port)
  for test in "${tests[@]}"; do
    for server in "${servers[@]}"; do
      redis-benchmark -p "${server#*:}" -P "$pipeline" -c 50 -n "$requests" -t "$test" --csv \
        2>/dev/null | sed "s/^/${server%%:*},$round,/" >>"$work/results.csv"
    done
  done
done

python3 - "$work/results.csv" <<'EOF'
import csv, statistics, sys
runs = {}
order = []
for row in csv.reader(open(sys.argv[1])):
    server, rnd, test = row[0], int(row[1]), row[2]
    if test == "test":
        continue
    if test not in order:
        order.append(test)
    runs.setdefault((test, server), {})[rnd] = float(row[3])
print(f"| command | redis-server (req/s) | helios (req/s) | helios / redis | rounds |")
print("|---|---|---|---|---|")
for test in order:
    r, h = runs[(test, "redis")], runs[(test, "helios")]
    ratios = [h[k] / r[k] for k in sorted(r) if k in h]
    print(f"| {test} | {statistics.median(r.values()):,.0f} | {statistics.median(h.values()):,.0f} "
          f"| {statistics.median(ratios):.2f} | {' / '.join(f'{x:.2f}' for x in ratios)} |")
EOF
