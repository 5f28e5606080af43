#!/usr/bin/env bash
# The OpenAPI contract (issue 15), against the real server on a port of its own:
#  1. the served /v1/openapi.json validates (openapi-spec-validator, OpenAPI 3.1);
#  2. a TypeScript client generated from it (openapi-typescript) passes `tsc --strict`;
#  3. a bounded schemathesis run (`--checks all`, a few examples per operation, fixed seed)
#     finds nothing beyond tests/openapi/baseline.json (each entry there is explained in
#     docs/API.md, "OpenAPI").
# Usage: scripts/check_openapi.sh NULLSPACE_BIN VENV (the venv gets tests/openapi/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: check_openapi.sh NULLSPACE_BIN VENV}
VENV=${2:?usage: check_openapi.sh NULLSPACE_BIN VENV}
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/openapi/requirements.txt

WORK=$(mktemp -d)
KEY=nsk_openapi_check_key_0123456789abcdef
"$BIN" server --listen 127.0.0.1:0 --data-dir "$WORK/data" --bootstrap-key "$KEY" \
  --volume-backend directory >"$WORK/server.log" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# The server writes its real URL (port 0) to client.json once it serves.
URL=$("$VENV/bin/python" - "$WORK/data/client.json" <<'PY'
import json, sys, time, urllib.request
path = sys.argv[1]
for _ in range(1200):
    try:
        url = json.load(open(path))["url"]
        urllib.request.urlopen(f"{url}/v1/health", timeout=5).read()
        print(url)
        sys.exit(0)
    except Exception:
        time.sleep(0.05)
sys.exit("the server did not start")
PY
) || { cat "$WORK/server.log" >&2; exit 1; }
"$VENV/bin/python" - "$URL" "$KEY" "$WORK/openapi.json" <<'PY'
import json, sys, urllib.request
url, key, out = sys.argv[1:]
open(out, "wb").write(urllib.request.urlopen(f"{url}/v1/openapi.json").read())
# A volume to find: operations on {name} then reach past the 404.
req = urllib.request.Request(f"{url}/v1/volumes", data=json.dumps({"name": "0"}).encode(),
                             headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
urllib.request.urlopen(req).read()
PY

echo "== OpenAPI: openapi-spec-validator"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

echo "== OpenAPI: openapi-typescript + tsc --strict"
npm ci --prefix tests/openapi --no-audit --no-fund --silent
mkdir -p tests/openapi/generated
tests/openapi/node_modules/.bin/openapi-typescript "$WORK/openapi.json" -o tests/openapi/generated/api.d.ts
tests/openapi/node_modules/.bin/tsc -p tests/openapi
echo "tsc: the generated client type-checks"

# Not yet part of CI (issue 15 item 1 is open): a full run has not passed, and it waits on every
# streaming route (watch answers for minutes), so it ran 5-20 min here. NULLSPACE_SCHEMATHESIS=1
# runs it by hand.
if [ "${NULLSPACE_SCHEMATHESIS:-}" != 1 ]; then
  echo "== OpenAPI: schemathesis not run (NULLSPACE_SCHEMATHESIS=1 runs it; issue 15 item 1 is open)"
  exit 0
fi
echo "== OpenAPI: schemathesis --checks all"
# Left out: revoking keys (the run would revoke its own key and test nothing after), the two
# operations that start sandboxes (each a real sandbox on a two-core CI machine; the sandbox
# suites cover them), and write-batch (its body is a tar archive, which the generator cannot
# make; the batch suites cover it), and tus creation and PATCH (their Upload-Metadata and
# Upload-Checksum formats are not yet patterns in the document; the tus suites and three foreign
# tus clients cover them). Every other operation, sandbox ones included, is run, on one
# worker (hypothesis' lambda descriptions are not thread-safe on this Python).
# Run from the temp dir: schemathesis keeps a cache of its findings in the working directory.
ROOT=$PWD
(cd "$WORK" && PYTHONPATH="$ROOT/tests/openapi" SCHEMATHESIS_HOOKS=st_hooks "$VENV/bin/st" --config-file "$ROOT/tests/openapi/schemathesis.toml" run "$URL/v1/openapi.json" \
  --checks all -H "Authorization: Bearer $KEY" --max-examples 5 --seed 1 --no-shrink \
  --phases examples,coverage,fuzzing --workers 1 --generation-database none --no-color \
  --exclude-operation-id revoke_key --exclude-operation-id create_sandbox \
  --exclude-operation-id fork_sandbox --exclude-operation-id write_batch \
  --exclude-operation-id create_upload --exclude-operation-id append_upload \
  --baseline "$ROOT/tests/openapi/baseline.json" ${OPENAPI_BASELINE_UPDATE:+--baseline-update} \
  --report junit --report-dir "$WORK/report")
