#!/usr/bin/env bash
# Runs every test suite: Rust (unit, behaviour, integration against the real server binary)
# and the Python SDK (pytest against the real server, mypy --strict).
# Needs nothing installed by hand beyond the machine's Rust toolchain and Python: it installs
# the Python test dependencies itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export CARGO_TERM_COLOR=never
# Reuse one build directory across checkouts of this repo (CI clones afresh each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nullspace-target}"

echo "== build"
cargo build --workspace --all-targets --locked 2>&1 | tail -n 3
export NULLSPACE_BIN="$CARGO_TARGET_DIR/debug/nullspace"

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== Python SDK"
PY="${PYTHON:-python3}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/nullspace-venv"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r sdk/python/requirements-dev.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./sdk/python
(cd sdk/python && "$VENV/bin/python" -m mypy --strict nullspace)
(cd sdk/python && "$VENV/bin/python" -m pytest -q tests)

# The server-level suites again with the control plane on PostgreSQL (a fresh database per
# server; the Rust behaviour suite above already ran on both engines when PostgreSQL answered).
# The CLI suites built on tests/common/ honour NULLSPACE_TEST_STATE; the others run on SQLite
# only, so they are not repeated.
PG_URL="${NULLSPACE_TEST_PG_URL:-postgres://root@127.0.0.1:5432/postgres}"
if psql -X -q -d "$PG_URL" -c 'SELECT 1' >/dev/null 2>&1; then
  echo "== server suites on PostgreSQL"
  export NULLSPACE_TEST_STATE=postgres
  PG_TESTS=()
  for f in crates/cli/tests/*.rs; do
    grep -q '^mod common;' "$f" && PG_TESTS+=(--test "$(basename "$f" .rs)")
  done
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run -p nullspace-cli --locked --no-fail-fast "${PG_TESTS[@]}"
  else
    cargo test -p nullspace-cli --locked --no-fail-fast "${PG_TESTS[@]}"
  fi
  (cd sdk/python && "$VENV/bin/python" -m pytest -q tests)
  unset NULLSPACE_TEST_STATE
elif [ "${CI:-}" = true ]; then
  echo "PostgreSQL does not answer at $PG_URL (or psql is missing): CI runs the server suites on both engines" >&2
  exit 1
else
  echo "== notice: PostgreSQL does not answer at $PG_URL; server suites ran on SQLite only"
fi
echo "== all suites passed"
