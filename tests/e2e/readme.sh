#!/usr/bin/env bash
# readme.sh: the README's and docs/sdk.md's commands and code blocks run as
# written (readme.test.mjs). Installs the build as `make install PREFIX=...`
# does (cmake --install) into a temporary prefix whose bin goes first on the
# PATH, so the docs' `castor ...` lines find it; installs the pinned SDK
# (npm ci) when missing. Env: CST_BUILD (the build dir), CST_SOURCE (the
# repo), CST_SHARED (fixtures).
set -euo pipefail
: "${CST_BUILD:?set CST_BUILD to the build dir}"
: "${CST_SOURCE:?set CST_SOURCE to the repository}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CASTOR_STORIES="$CST_SHARED/models/stories260K.gguf"
[ -f "$CASTOR_STORIES" ] || { echo "missing fixture $CASTOR_STORIES"; exit 1; }
command -v node >/dev/null || { echo "node is required for the docs test"; exit 1; }
source "$HERE/lib.bash"
e2e_npm
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cmake --install "$CST_BUILD" --prefix "$TMP/prefix" >/dev/null
# the pinned Gemini CLI stands in for `npm install -g @google/gemini-cli@0.61.0`;
# the blocks write their settings (~/.gemini) into a home of their own
export PATH="$TMP/prefix/bin:$HERE/node_modules/.bin:$PATH"
mkdir -p "$TMP/home"
export HOME="$TMP/home"
unset CASTOR_URL
node --test --test-concurrency=1 "$HERE/readme.test.mjs"
