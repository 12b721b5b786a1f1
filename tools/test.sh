#!/usr/bin/env bash
# The project's one test command: builds the helios binary, then runs every test in the workspace.
# The integration tests (tests/) start the built binary and compare it against a real redis-server,
# so redis-server and redis-cli are installed first when missing (Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "test.sh: installing redis-server and redis-tools" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends redis-server redis-tools
fi

if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    echo "test.sh: installing postgresql-15" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends postgresql-15
fi

# The integration tests locate the binary next to their own executables (same target dir), or
# via HELIOS_BIN.
cargo build --bin helios
cargo test --workspace --no-fail-fast
