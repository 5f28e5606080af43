#!/usr/bin/env bash
# Builds and installs `nullspace` and the Python SDK, then starts `nullspace server` on its
# embedded defaults (SQLite and a data dir under ~/.local/share/nullspace, 127.0.0.1:7420).
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${PREFIX:-/usr/local}"
[ -w "$PREFIX/bin" ] || PREFIX="$HOME/.local"
mkdir -p "$PREFIX/bin"

# The loop volume backend (the default as root) formats each volume with mkfs.ext4.
if ! command -v mkfs.ext4 >/dev/null 2>&1 && ! [ -x /usr/sbin/mkfs.ext4 ] && ! [ -x /sbin/mkfs.ext4 ]; then
  echo "== installing e2fsprogs (mkfs.ext4, for the loop volume backend)"
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q e2fsprogs || echo "warning: could not install e2fsprogs; volumes will be plain directories" >&2
  elif command -v dnf >/dev/null 2>&1; then
    dnf install -y -q e2fsprogs || echo "warning: could not install e2fsprogs; volumes will be plain directories" >&2
  else
    echo "warning: install e2fsprogs (mkfs.ext4), or volumes will be plain directories" >&2
  fi
fi

# The gvisor sandbox runtime (`--runtime gvisor`) runs sandboxes under gVisor's runsc.
if ! command -v runsc >/dev/null 2>&1 && ! [ -x /usr/bin/runsc ]; then
  echo "== installing runsc (gVisor, for the gvisor sandbox runtime)"
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q runsc || echo "warning: could not install runsc; the gvisor sandbox runtime will be unavailable" >&2
  else
    echo "warning: install gVisor's runsc, or the gvisor sandbox runtime will be unavailable" >&2
  fi
fi

# The metrics tests (crates/cli/tests/operating.rs) run promtool and a Prometheus server.
if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "== installing prometheus (promtool and a server, for the metrics tests)"
  apt-get install -y -q --no-install-recommends prometheus || echo "warning: could not install prometheus; the metrics tests will fail" >&2
fi

# What the browser tests (the web console, browsers as API clients) and the OpenAPI TypeScript
# check need (Chromium, Node.js and the npm packages of tests/browser and tests/openapi); the
# console itself needs nothing on the user's side but a browser.
if [ "${NULLSPACE_SKIP_BROWSER_DEPS:-}" != 1 ]; then
  scripts/browser_deps.sh || echo "warning: the browser test dependencies are incomplete; see above" >&2
  if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error || echo "warning: npm ci in tests/browser failed" >&2
    npm ci --prefix tests/openapi --no-audit --no-fund --loglevel=error || echo "warning: npm ci in tests/openapi failed" >&2
  fi
fi

echo "== building nullspace (release)"
cargo build --release --locked -p nullspace-cli
TARGET="${CARGO_TARGET_DIR:-target}"
install -m 0755 "$TARGET/release/nullspace" "$PREFIX/bin/nullspace"
echo "installed $PREFIX/bin/nullspace"

echo "== installing the Python SDK"
python3 -m pip install --quiet --disable-pip-version-check ./sdk/python

echo "== the TypeScript SDK (sdk/typescript: npm ci, tsc; needs Node 20+)"
if scripts/node.sh; then
  (cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent) \
    || echo "warning: could not build the TypeScript SDK" >&2
else
  echo "warning: no Node.js 20+; the TypeScript SDK was not built" >&2
fi

URL="http://${NULLSPACE_LISTEN:-127.0.0.1:7420}"
if curl -fsS "$URL/v1/health" >/dev/null 2>&1; then
  echo "== a nullspace server already answers at $URL"
  exit 0
fi
DATA="${NULLSPACE_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/nullspace}"
mkdir -p "$DATA"
echo "== starting nullspace server (log: $DATA/server.log)"
nohup "$PREFIX/bin/nullspace" server >>"$DATA/server.log" 2>&1 &
for _ in $(seq 1 100); do
  if curl -fsS "$URL/v1/health" >/dev/null 2>&1; then
    echo "nullspace server is up at $URL; try: nullspace volume create team-data"
    exit 0
  fi
  sleep 0.1
done
echo "error: the server did not come up; see $DATA/server.log" >&2
exit 1
