#!/usr/bin/env bash
# Runs every test suite: Rust (unit, behaviour, integration against the real server binary),
# the Python SDK (pytest against the real server, mypy --strict) and the TypeScript SDK
# (tsc --strict, node --test against the real server).
# Needs nothing installed by hand beyond the machine's Rust toolchain and Python: it installs
# the Python test dependencies itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# The documents: every invariant of ARCHITECTURE.md names a test that exists, and BENCHMARKS.md's
# summary is what bench/results/*.json give. Figures older than their code are only listed
# (--allow-stale): a code change must not fail CI for want of a benchmark run.
echo "== documents"
"${PYTHON:-python3}" scripts/check_architecture.py
"${PYTHON:-python3}" bench/run.py --check --allow-stale

# The gvisor runtime's tests need runsc; without it they say they were skipped and why.
if ! command -v runsc >/dev/null 2>&1 && ! [ -x /usr/bin/runsc ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing runsc (gVisor)"
  apt-get install -y -q runsc >/dev/null || echo "warning: could not install runsc; gvisor tests will be skipped" >&2
fi

# The operating suite (crates/cli/tests/operating.rs) checks /metrics with promtool and
# scrapes it with a real Prometheus: both come with Debian's prometheus package.
if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing prometheus (promtool and a server, for the metrics tests)"
  apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi

export CARGO_TERM_COLOR=never
# Reuse one build directory across checkouts of this repo (CI clones afresh each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nullspace-target}"

echo "== build"
cargo build --workspace --all-targets --locked 2>&1 | tail -n 3
export NULLSPACE_BIN="$CARGO_TARGET_DIR/debug/nullspace"

# The script picks the engines itself: the first pass runs the state behaviour suite on both
# (PostgreSQL when it answers; CI requires it) and the server suites on SQLite, the second the
# server suites (crates/cli) on PostgreSQL.
unset NULLSPACE_TEST_STATE
PG_URL="${NULLSPACE_TEST_PG_URL:-postgres://root@127.0.0.1:5432/postgres}"
PG_ANSWERS=false
if psql -X -q -d "$PG_URL" -c 'SELECT 1' >/dev/null 2>&1; then
  PG_ANSWERS=true
elif [ "${CI:-}" = true ]; then
  echo "PostgreSQL does not answer at $PG_URL (or psql is missing): CI runs the server suites on both engines" >&2
  exit 1
fi

# Every server a test starts is entered in a ledger (see crates/cli/tests/harness), one per
# pass, so that the runs on the two engines can be compared.
LEDGERS=$(mktemp -d)
trap 'rm -rf "$LEDGERS"' EXIT

run_rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast "$@"
  else
    cargo test --locked --no-fail-fast "$@"
  fi
}

echo "== Rust tests"
NULLSPACE_TEST_SERVER_LEDGER="$LEDGERS/sqlite" run_rust_tests --workspace

echo "== Python SDK"
PY="${PYTHON:-python3}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/nullspace-venv"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r sdk/python/requirements-dev.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./sdk/python
(cd sdk/python && "$VENV/bin/python" -m mypy --strict nullspace)
# The sync and the async SDK run the same operations: no logic may be written twice.
(cd sdk/python && "$VENV/bin/python" -m pylint --disable=all --enable=duplicate-code --score=n nullspace)
(cd sdk/python && "$VENV/bin/python" -m pytest -q tests)

# The browser tests (the web console in headless Chromium, tests/browser): Debian's chromium
# driven by playwright-core, against the server binary built above ($NULLSPACE_BIN).
echo "== browser tests (Chromium)"
scripts/browser_deps.sh
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
NULLSPACE_TEST_OUTPUT="${NULLSPACE_TEST_OUTPUT:-$ROOT/tests/browser/output}" node --test tests/browser/

# The TypeScript SDK: `npm ci` (typescript and @types/node only), tsc, then node --test against
# the real server ($NULLSPACE_BIN). Needs Node 20+; installed from Debian when missing.
echo "== TypeScript SDK"
scripts/node.sh
(cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm test --silent)

# The tests (suite and name) that started a server, from a ledger of lines `ENGINE SUITE TEST`.
server_tests() {
  [ -s "$1" ] || return 0
  cut -d' ' -f2- "$1" | sort -u
}

# Every server test of the SQLite pass ran in the PostgreSQL pass, and there only on
# PostgreSQL (a test whose servers ignored the selector, or a suite left out, fails CI).
check_both_engines() {
  local on_sqlite on_postgres n_sqlite n_postgres
  on_sqlite=$(server_tests "$LEDGERS/sqlite")
  on_postgres=$(server_tests "$LEDGERS/postgres")
  n_sqlite=$(printf '%s' "$on_sqlite" | grep -c '' || true)
  n_postgres=$(printf '%s' "$on_postgres" | grep -c '' || true)
  echo "== server tests: $n_sqlite in the SQLite pass, $n_postgres on PostgreSQL"
  if [ "$n_sqlite" -eq 0 ]; then
    echo "no server test entered a server in the ledger" >&2
    return 1
  fi
  if [ -s "$LEDGERS/postgres" ] && grep -q '^sqlite ' "$LEDGERS/postgres"; then
    echo "these tests started a SQLite server in the PostgreSQL pass:" >&2
    grep '^sqlite ' "$LEDGERS/postgres" | cut -d' ' -f2- | sort -u >&2
    return 1
  fi
  if [ "$on_sqlite" != "$on_postgres" ]; then
    echo "the server tests of the two passes differ (< SQLite pass, > PostgreSQL pass):" >&2
    diff <(printf '%s\n' "$on_sqlite") <(printf '%s\n' "$on_postgres") >&2 || true
    return 1
  fi
}

# The server suites again with the control plane on PostgreSQL (a fresh database per server).
# The suites of several servers on one database use PostgreSQL in both passes: SQLite cannot
# be shared by two servers.
if [ "$PG_ANSWERS" = true ]; then
  echo "== server suites on PostgreSQL"
  started=$SECONDS
  NULLSPACE_TEST_STATE=postgres NULLSPACE_TEST_SERVER_LEDGER="$LEDGERS/postgres" \
    run_rust_tests -p nullspace-cli
  echo "== server suites on PostgreSQL took $((SECONDS - started)) s"
  (cd sdk/python && NULLSPACE_TEST_STATE=postgres NULLSPACE_TEST_SDK=sync "$VENV/bin/python" -m pytest -q tests)
  check_both_engines
else
  echo "== notice: PostgreSQL does not answer at $PG_URL; server suites ran on SQLite only"
fi
echo "== all suites passed"
