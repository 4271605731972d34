#!/usr/bin/env bash
# gemini_cli.sh: Gemini CLI 0.61.0 (npm @google/gemini-cli, pinned in
# package.json) in headless mode (`gemini -p`) against `castor serve`, the
# way a user points it at Castor: GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY.
# It sends a long system prompt through :streamGenerateContent?alt=sse.
#  1. a random-weight qwen3 model (castor mkmodel) served with a 16k context:
#     the CLI must exit 0 and print the model's answer;
#  2. the same model served with a 2k context: the prompt does not fit, the
#     CLI must fail with the server's 400 naming the context size.
# The CLI runs with its built-in tools (read_file, list_directory, ...):
# their declarations must be accepted and rendered into the prompt (the
# server logs prompts; the test looks for them there); its model router asks
# for JSON output (responseSchema).
# Env: CASTOR (the binary), CST_SHARED (fixtures).
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
VOCAB="$CST_SHARED/models/vocab-qwen3.gguf"
[ -f "$VOCAB" ] || { echo "missing fixture $VOCAB"; exit 1; }
command -v node >/dev/null || { echo "node is required"; exit 1; }
source "$HERE/lib.bash"
e2e_npm
GEMINI="$HERE/node_modules/.bin/gemini"

TMP="$(mktemp -d)"
SERVER_PID=""
stop_server() {
  e2e_stop "$SERVER_PID"
  SERVER_PID=""
}
trap 'stop_server; rm -rf "$TMP"' EXIT

"$CASTOR" mkmodel --arch qwen3 --vocab-from "$VOCAB" --preset tiny --type Q8_0 --ctx 16384 -o "$TMP/qwen3-cli.gguf" >/dev/null

# ctx: the served context. Small thought budgets: the CLI asks for thinking,
# and a random-weight model would think up to the budget.
start_server() {
  rm -f "$TMP/port"
  "$CASTOR" serve -m "$TMP/qwen3-cli.gguf" --api-keys "$TMP/keys" --host 127.0.0.1 --port 0 --port-file "$TMP/port" \
    --data-dir "$TMP/data-$1" -c "$1" -np 1 --max-output 64 --thinking-budgets 4,4,4,4 -t 2 --log-prompts > "$TMP/server-$1.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -f "$TMP/port" ] && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  [ -f "$TMP/port" ] || { echo "server did not start:"; cat "$TMP/server-$1.log"; exit 1; }
  PORT="$(cat "$TMP/port")"
}

printf 'cli-test-key\n' > "$TMP/keys"
mkdir -p "$TMP/home/.gemini" "$TMP/work" "$TMP/tmp"
cat > "$TMP/home/.gemini/settings.json" <<'EOF'
{"security": {"auth": {"selectedType": "gemini-api-key"}}}
EOF
run_cli() { # prompt -> $TMP/out, $TMP/err, $rc
  rc=0
  (cd "$TMP/work" && HOME="$TMP/home" TMPDIR="$TMP/tmp" GEMINI_CLI_TRUST_WORKSPACE=true NO_COLOR=1 \
    GOOGLE_GEMINI_BASE_URL="http://127.0.0.1:$PORT" GEMINI_API_KEY=cli-test-key \
    timeout 300 "$GEMINI" -p "$1" > "$TMP/out" 2> "$TMP/err" < /dev/null) || rc=$?
}
fail=0

start_server 16384
run_cli "Say hi"
answer="$(tr -d '[:space:]' < "$TMP/out")"
tokens="$(curl -s -H "x-goog-api-key: cli-test-key" "http://127.0.0.1:$PORT/metrics" | sed -n 's/^castor_output_tokens_total \([0-9]*\)$/\1/p')"
# declared tools as the template renders them: {"name": "read_file", ...} (JSON-escaped in the log)
ntools="$(grep '^castor prompt:' "$TMP/server-16384.log" |
  grep -o '\\"name\\": \\"\(read_file\|list_directory\|grep_search\)\\"' | sort -u | wc -l)"
if [ "$rc" -ne 0 ] || [ -z "$answer" ] || [ "${tokens:-0}" -lt 1 ] || [ "$ntools" -lt 3 ]; then
  echo "FAIL: gemini -p against a 16k-context model: exit $rc, output tokens ${tokens:-?}, CLI tools in the prompt: $ntools of 3"
  echo "--- stdout"; cat "$TMP/out"; echo "--- stderr (tail)"; tail -30 "$TMP/err"
  echo "--- server log (tail)"; tail -20 "$TMP/server-16384.log"
  fail=1
else
  echo "ok: gemini -p printed the model's answer (${#answer} non-space characters, $tokens tokens generated; its tools read_file, list_directory, grep_search were declared in the prompt)"
fi
stop_server

start_server 2048
run_cli "Say hi"
if [ "$rc" -eq 0 ] || ! grep -q "context holds 2048" "$TMP/err" || ! grep -q '"code":400' "$TMP/err"; then
  echo "FAIL: gemini -p against a 2k-context model: exit $rc, expected the 400 naming the context"
  echo "--- stdout"; cat "$TMP/out"; echo "--- stderr (tail)"; tail -30 "$TMP/err"
  fail=1
else
  echo "ok: a 2k-context model refuses the CLI's prompt: $(grep -o 'the prompt is [0-9]* tokens[^"]*' "$TMP/err" | head -1)"
fi
stop_server
exit $fail
