#!/usr/bin/env bash
# tools.sh: end-to-end suite for function calling (§9). Writes random-weight
# models with the real Qwen3 vocabulary and template (the hermes <tool_call>
# family, tools rendered by the template) and the Llama 3 vocabulary (its
# 3.0 template renders no tools: the fallback tool prompt; the same file
# served again as llama31-tiny with llama31-tools.jinja, a Llama 3.1-style
# tool template: {"name", "parameters"} calls, ipython results), starts
# `castor serve --log-prompts` on a random loopback port, and runs
# tools.test.mjs through @google/genai: tool_choice any always yields calls
# whose arguments ajv validates, none never a call, call -> result -> answer
# round trips (streamed and not, stored and stateless), the prompts as the
# templates render them (read from the server log), 400s.
# Env: CASTOR (the binary), CST_SHARED (fixtures), CST_TOOLS_SEEDS (seeds per
# tool set; default 6, 2 for the ASan build), CST_TOOLS_FILTER (a test name
# pattern). Release build on 2 idle cores: about a minute.
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
case "$CASTOR" in *asan*) export CST_TOOLS_SEEDS="${CST_TOOLS_SEEDS:-2}" ;; esac
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
ln "$TMP/llama3-tiny.gguf" "$TMP/llama31-tiny.gguf" 2>/dev/null || cp "$TMP/llama3-tiny.gguf" "$TMP/llama31-tiny.gguf"

"$CASTOR" serve -m "$TMP/qwen3-tiny.gguf" --thinking-budgets 8,12,16,20 --thinking-level minimal \
  -m "$TMP/llama3-tiny.gguf" -m "$TMP/llama31-tiny.gguf" --chat-template "$HERE/llama31-tools.jinja" \
  --no-auth --host 127.0.0.1 --port 0 --port-file "$TMP/port" --data-dir "$TMP/data" \
  -c 1024 -np 4 --max-queue 256 -t 2 --log-prompts > "$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$TMP/port" ] && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if [ ! -f "$TMP/port" ]; then echo "server did not start:"; cat "$TMP/server.log"; exit 1; fi
PORT="$(cat "$TMP/port")"
echo "castor serve on port $PORT (pid $SERVER_PID)"
export CASTOR_URL="http://127.0.0.1:$PORT" CASTOR_KEY=unused CASTOR_SERVER_LOG="$TMP/server.log"
rc=0
node --test --test-concurrency=1 ${CST_TOOLS_FILTER:+--test-name-pattern="$CST_TOOLS_FILTER"} "$HERE"/tools.test.mjs || rc=$?
if [ $rc -ne 0 ]; then echo "--- server log (tail)"; grep -v '^castor prompt:' "$TMP/server.log" | tail -40; fi
exit $rc
