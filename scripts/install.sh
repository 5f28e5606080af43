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

# The tests' JavaScript side (scripts/test.sh): node and npm for the OpenAPI TypeScript check,
# and Chromium driven by playwright-core for the browser tests.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  command -v npm >/dev/null 2>&1 || apt-get install -y -q nodejs npm || echo "warning: could not install nodejs/npm" >&2
  [ -x /usr/bin/chromium ] || apt-get install -y -q chromium || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix tests/browser --no-audit --no-fund --silent || echo "warning: npm ci tests/browser failed" >&2
  npm ci --prefix tests/openapi --no-audit --no-fund --silent || echo "warning: npm ci tests/openapi failed" >&2
fi

echo "== building nullspace (release)"
cargo build --release --locked -p nullspace-cli
TARGET="${CARGO_TARGET_DIR:-target}"
install -m 0755 "$TARGET/release/nullspace" "$PREFIX/bin/nullspace"
echo "installed $PREFIX/bin/nullspace"

echo "== installing the Python SDK"
python3 -m pip install --quiet --disable-pip-version-check ./sdk/python

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
