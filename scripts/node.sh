#!/usr/bin/env bash
# Makes sure Node.js 20+ and npm are there (for the TypeScript SDK and its tests): installs
# Debian's nodejs and npm when missing and this is a root Debian machine; fails otherwise.
set -euo pipefail

node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    [ "$(node -p 'Number(process.versions.node.split(".")[0])' 2>/dev/null || echo 0)" -ge 20 ]
}

if node_ok; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing nodejs and npm (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q nodejs npm >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null; }
fi
if node_ok; then
  exit 0
fi
echo "error: the TypeScript SDK needs Node.js 20 or newer with npm (found: $(node --version 2>/dev/null || echo none))" >&2
exit 1
