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
echo "== all suites passed"
