#!/usr/bin/env bash
# The project's one test command: builds the helios binary, then runs every test in the workspace.
# The integration tests (tests/) start the built binary and compare it against a real redis-server,
# so redis-server and redis-cli are installed first when missing (Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages (sudo when not root).
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "$@"
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "test.sh: installing redis-server and redis-tools" >&2
    apt_install redis-server redis-tools
fi

if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    echo "test.sh: installing postgresql-15" >&2
    apt_install postgresql-15
fi

# tests/tests/pg_clients.rs runs tests/py/pg_psycopg.py with psycopg 3 from PyPI (the binary
# wheel, else the pure-Python package over postgresql-15's libpq), and
# tests/tests/redis_collections.rs runs tests/py/redis_py.py with redis-py from PyPI. Debian's
# python3 is "externally managed" (PEP 668): pip refuses a system-wide install there unless
# told --break-system-packages, which is added only when pip asks for it.
pip_install() {
    local out
    if out="$(PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet "$@" 2>&1)"; then
        return 0
    fi
    if grep -q 'externally-managed-environment' <<<"$out"; then
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --break-system-packages "$@"
    else
        echo "$out" >&2
        return 1
    fi
}
if ! python3 -c 'import psycopg, redis' >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "test.sh: installing python3 and python3-pip" >&2
        apt_install python3 python3-pip
    fi
fi
if ! python3 -c 'import psycopg' >/dev/null 2>&1; then
    echo "test.sh: installing psycopg 3 (PyPI)" >&2
    pip_install 'psycopg[binary]' || pip_install psycopg
    python3 -c 'import psycopg; print("test.sh: psycopg", psycopg.__version__, psycopg.pq.__impl__)' >&2
fi
if ! python3 -c 'import redis' >/dev/null 2>&1; then
    echo "test.sh: installing redis-py (PyPI)" >&2
    pip_install 'redis>=5'
    python3 -c 'import redis; print("test.sh: redis-py", redis.__version__)' >&2
fi
# tests/tests/pg_clients.rs runs tests/py/pg_sqlalchemy_alembic.py with SQLAlchemy 2 (over
# psycopg 3) and Alembic from PyPI.
if ! python3 -c 'import sqlalchemy, alembic' >/dev/null 2>&1; then
    echo "test.sh: installing SQLAlchemy and Alembic (PyPI)" >&2
    pip_install 'sqlalchemy>=2' alembic
    python3 -c 'import sqlalchemy, alembic; print("test.sh: sqlalchemy", sqlalchemy.__version__, "alembic", alembic.__version__)' >&2
fi

# tests/tests/sqllogictest.rs runs the SQL conformance corpus (../shared/conformance next to the
# repo, or HELIOS_SLT_DIR) with the real `sqllogictest` from crates.io's sqllogictest-bin;
# installed once into $CARGO_HOME/bin (about 2 minutes on 2 cores) when not on PATH.
SLT_VERSION=0.29.1
SLT_ROOT="${CARGO_HOME:-$HOME/.cargo}"
if [ -z "${HELIOS_SLT_BIN:-}" ]; then
    if command -v sqllogictest >/dev/null 2>&1; then
        HELIOS_SLT_BIN="$(command -v sqllogictest)"
    elif [ -x "$SLT_ROOT/bin/sqllogictest" ]; then
        HELIOS_SLT_BIN="$SLT_ROOT/bin/sqllogictest"
    else
        echo "test.sh: installing sqllogictest-bin $SLT_VERSION into $SLT_ROOT/bin" >&2
        cargo install sqllogictest-bin --version "$SLT_VERSION" --locked --root "$SLT_ROOT"
        HELIOS_SLT_BIN="$SLT_ROOT/bin/sqllogictest"
    fi
fi
export HELIOS_SLT_BIN
echo "test.sh: sqllogictest: $HELIOS_SLT_BIN ($("$HELIOS_SLT_BIN" --version))" >&2
SLT_DIR="${HELIOS_SLT_DIR:-../shared/conformance/sqllogictest}"
if [ -d "$SLT_DIR" ]; then
    # Absolute: cargo runs the tests from their package dir.
    HELIOS_SLT_DIR="$(cd "$SLT_DIR" && pwd)"
    export HELIOS_SLT_DIR
else
    echo "test.sh: WARNING: no sqllogictest corpus at $SLT_DIR (from $(pwd));" \
        "the sqllogictest tests will skip (set HELIOS_SLT_DIR)" >&2
fi

# The integration tests locate the binary next to their own executables (same target dir), or
# via HELIOS_BIN.
cargo build --bin helios
cargo test --workspace --no-fail-fast

# The fuzz targets are their own workspaces (cargo-fuzz builds them with nightly flags); a
# stable `cargo check` keeps them compiling as the code they drive changes.
for fuzz in sql/fuzz net/fuzz; do
    # Start from the workspace's lock file (theirs is not kept): the same versions of the
    # crates they share, and cargo adds only the fuzz-only ones.
    cp Cargo.lock "$fuzz/Cargo.lock"
    CARGO_TARGET_DIR=target/fuzz-check cargo check --manifest-path "$fuzz/Cargo.toml" --bins
done
