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
