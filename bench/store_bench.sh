#!/usr/bin/env bash
# store_bench.sh: bench/store_bench.mjs against a throwaway PostgreSQL with
# fsync on (as a real deployment), SQLite alongside. Args go to the script.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CST_PG_FSYNC=on exec bash "$HERE/../scripts/with-pg.sh" node "$HERE/store_bench.mjs" "$@"
