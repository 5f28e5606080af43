#!/usr/bin/env bash
# Installs what the browser tests (tests/browser) need from Debian when it is missing: chromium
# (driven by playwright-core with executablePath=/usr/bin/chromium) and Node.js with npm.
# Non-interactive as root; fails when something is still missing afterwards.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium fonts-liberation)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing ${missing[*]} (for the browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
else
  echo "error: the browser tests need ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 1
fi
