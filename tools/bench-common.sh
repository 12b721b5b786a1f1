# Sourced by the redis-benchmark scripts in tools/: builds the release helios (unless
# NO_BUILD is set), makes a scratch dir removed on exit, and defines free_port and wait_ping.
# Sets: root, helios, work.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin helios --manifest-path "$root/Cargo.toml" >&2
helios="$root/target/release/helios"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; exit 1; }
