#!/usr/bin/env bash
# fault.sh: the fault suite of `castor serve` (fault.test.mjs): kill -9 during
# bursts of stored, background and streamed creates, then restart: every
# acknowledged id is retrievable and consistent; a full disk (a small tmpfs
# mounted as the data dir, or where mounting is not permitted the test-only
# CST_STORE_MAX_PAGES cap, never a silent skip); descriptor exhaustion; a
# damaged database at start-up; connections.test.mjs: thousands of idle
# sockets and SSE streams held at once (threads and memory bounded; the soft
# descriptor limit is raised to the hard one, up to 20000, for it); and
# protocol.test.mjs: request framing,
# query and JSON strictness, /metrics auth, input bounds, defaults. Needs node
# (no npm packages); framing.test.mjs: what libmicrohttpd refuses while parsing,
# answered in the JSON shape by the framing guard, and a bounded fuzz.
# Env: CASTOR (the binary), CST_SHARED (fixtures). FAULT_ROUNDS: kill -9 rounds (default 4);
# FAULT_NO_MOUNT=1: the injected disk-full path even where mounting works.
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CASTOR_STORIES="$CST_SHARED/models/stories260K.gguf"
[ -f "$CASTOR_STORIES" ] || { echo "missing fixture $CASTOR_STORIES"; exit 1; }
command -v node >/dev/null || { echo "node is required for the fault suite"; exit 1; }
export CASTOR
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 20000 ]; then hard=20000; fi
ulimit -n "$hard" 2>/dev/null || true
exec node --test --test-concurrency=1 "$HERE/fault.test.mjs" "$HERE/connections.test.mjs" "$HERE/protocol.test.mjs" \
    "$HERE/framing.test.mjs"
