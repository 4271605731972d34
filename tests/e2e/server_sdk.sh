#!/usr/bin/env bash
# server_sdk.sh: end-to-end suite for `castor serve`. Installs the pinned
# @google/genai SDK (npm ci) when missing, writes a qwen3-architecture model
# with the real Qwen3 vocabulary and chat template, starts the real server on
# a random loopback port with a temporary data dir and API keys, and runs the
# node test files (node --test) that drive it with the SDK, curl and raw
# sockets (robust.test.mjs: hostile input); ops.test.mjs spawns servers of its
# own (fault injection, full queue, deadlines, SIGTERM drain).
# files.test.mjs spawns vision servers of its own (Files API, image input);
# docs.test.mjs too (documents: text, CSV, JSON, PDF).
# Env: CASTOR (the binary), CST_SHARED (fixtures); CST_TEST_PG (set by
# scripts/with-pg.sh): every server runs on the PostgreSQL store instead of
# SQLite (the spawned ones on databases of their own, common.mjs storeArgs).
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
STORIES="$CST_SHARED/models/stories260K.gguf"
VOCAB="$CST_SHARED/models/vocab-qwen3.gguf"
for f in "$STORIES" "$VOCAB"; do
  [ -f "$f" ] || { echo "missing fixture $f"; exit 1; }
done
command -v node >/dev/null || { echo "node is required for the SDK suite"; exit 1; }
command -v curl >/dev/null || { echo "curl is required"; exit 1; }
source "$HERE/lib.bash"
e2e_npm

TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  e2e_stop "$SERVER_PID"
  rm -rf "$TMP"
}
trap cleanup EXIT

"$CASTOR" mkmodel --arch qwen3 --vocab-from "$VOCAB" --preset tiny --type Q8_0 -o "$TMP/qwen3-tiny.gguf" >/dev/null
printf '# e2e keys\ntest-key-alpha\ntest-key-beta\n' > "$TMP/keys"
STORE_ARGS=()
[ -n "${CST_TEST_PG:-}" ] && STORE_ARGS=(--store "$CST_TEST_PG")

# tiny-qwen: small thought budgets (thinking.test.mjs); thinking off unless asked
"$CASTOR" serve -m "$STORIES" -m "$TMP/qwen3-tiny.gguf" --thinking-budgets 8,12,16,20 --thinking-level minimal \
  --alias tiny-qwen=qwen3-tiny \
  --api-keys "$TMP/keys" --host 127.0.0.1 --port 0 --port-file "$TMP/port" --data-dir "$TMP/data" "${STORE_ARGS[@]}" \
  -c 1024 -np 4 --max-queue 64 --max-body 4194304 --max-output 48 -t 2 > "$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$TMP/port" ] && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if [ ! -f "$TMP/port" ]; then echo "server did not start:"; cat "$TMP/server.log"; exit 1; fi
PORT="$(cat "$TMP/port")"
echo "castor serve on port $PORT (pid $SERVER_PID)"

export CASTOR_URL="http://127.0.0.1:$PORT" CASTOR_KEY=test-key-alpha CASTOR_KEY2=test-key-beta
export CASTOR_SERVER_PID="$SERVER_PID" CASTOR_DATA="$TMP/data" CASTOR_STORIES="$STORIES" CASTOR
export CASTOR_QWEN="$TMP/qwen3-tiny.gguf"
rc=0
# ops.test.mjs starts its own servers (fault injection, tiny queues, SIGTERM)
node --test --test-concurrency=1 "$HERE"/sdk.test.mjs "$HERE"/rest.test.mjs "$HERE"/robust.test.mjs \
  "$HERE"/ops.test.mjs "$HERE"/thinking.test.mjs \
  "$HERE"/files.test.mjs "$HERE"/docs.test.mjs "$HERE"/dialects.test.mjs "$HERE"/playground.test.mjs \
  "$HERE"/pull.test.mjs || rc=$?

# SIGTERM drains and exits cleanly
kill -TERM "$SERVER_PID"
for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then echo "server did not exit on SIGTERM"; rc=1; fi
wait "$SERVER_PID" || { echo "server exit status $?"; rc=1; }
SERVER_PID=""
grep -q "stopped" "$TMP/server.log" || { echo "no clean shutdown in the log"; rc=1; }
if [ $rc -ne 0 ]; then echo "--- server log (tail)"; tail -40 "$TMP/server.log"; fi
exit $rc
