#!/usr/bin/env bash
# structured.sh: end-to-end suite for structured output (response_format with
# a JSON Schema). Writes random-weight models with the real Qwen3 and Llama 3
# vocabularies and chat templates, starts `castor serve` on a random loopback
# port, and runs structured.test.mjs: a corpus of schemas x seeds at
# temperature 1 through @google/genai, every answer validated by ajv;
# unsupported keywords are 400s naming them.
# Env: CASTOR (the binary), CST_SHARED (fixtures), CST_STRUCTURED_SEEDS
# (seeds per schema on qwen3; default 3, 1 for the ASan build, which runs
# several times slower), CST_STRUCTURED_FILTER (a test name pattern).
# Release build on 2 busy cores: about 4 minutes.
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
case "$CASTOR" in *asan*) export CST_STRUCTURED_SEEDS="${CST_STRUCTURED_SEEDS:-1}" ;; esac
command -v node >/dev/null || { echo "node is required for the SDK suite"; exit 1; }
source "$HERE/lib.bash"
e2e_npm

TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  e2e_stop "$SERVER_PID"
  rm -rf "$TMP"
}
trap cleanup EXIT

e2e_tiny_models "$TMP"

"$CASTOR" serve -m "$TMP/qwen3-tiny.gguf" --thinking-budgets 8,12,16,20 --thinking-level minimal \
  -m "$TMP/llama3-tiny.gguf" --no-auth --host 127.0.0.1 --port 0 --port-file "$TMP/port" --data-dir "$TMP/data" \
  -c 1024 -np 4 --max-queue 256 -t 2 > "$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$TMP/port" ] && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if [ ! -f "$TMP/port" ]; then echo "server did not start:"; cat "$TMP/server.log"; exit 1; fi
PORT="$(cat "$TMP/port")"
echo "castor serve on port $PORT (pid $SERVER_PID)"
export CASTOR_URL="http://127.0.0.1:$PORT" CASTOR_KEY=unused
rc=0
node --test --test-concurrency=1 ${CST_STRUCTURED_FILTER:+--test-name-pattern="$CST_STRUCTURED_FILTER"} "$HERE"/structured.test.mjs || rc=$?
if [ $rc -ne 0 ]; then echo "--- server log (tail)"; tail -40 "$TMP/server.log"; fi
exit $rc
