# lib.bash: what the e2e scripts share; sourced, not a test (ctest runs e2e/*.sh).

# e2e_npm: installs the pinned packages (package-lock.json) when any is
# missing, under a lock: ctest -j2 starts two scripts at once, and npm ci
# replaces node_modules whole under the other's feet.
e2e_npm() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  (
    flock 9
    for d in @google/genai openai @google/gemini-cli puppeteer-core ajv ajv-formats; do
      if [ ! -d "$dir/node_modules/$d" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        break
      fi
    done
  ) 9>"$dir/.npm.lock"
}

# e2e_stop PID: SIGTERM, up to 5 s to drain, then SIGKILL (no-op when gone)
e2e_stop() {
  local pid="${1:-}"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# e2e_tiny_models DIR: random-weight tiny models with the real Qwen3 and
# Llama 3 vocabularies (and templates): DIR/qwen3-tiny.gguf, DIR/llama3-tiny.gguf
e2e_tiny_models() {
  local v
  for v in vocab-qwen3 vocab-llama3; do
    [ -f "$CST_SHARED/models/$v.gguf" ] || { echo "missing fixture $CST_SHARED/models/$v.gguf"; return 1; }
  done
  "$CASTOR" mkmodel --arch qwen3 --vocab-from "$CST_SHARED/models/vocab-qwen3.gguf" --preset tiny --type Q8_0 \
    -o "$1/qwen3-tiny.gguf" >/dev/null
  "$CASTOR" mkmodel --arch llama --vocab-from "$CST_SHARED/models/vocab-llama3.gguf" --preset tiny --type Q8_0 \
    -o "$1/llama3-tiny.gguf" >/dev/null
}
