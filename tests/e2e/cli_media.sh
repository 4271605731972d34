#!/usr/bin/env bash
# cli_media.sh: `castor run` with images and documents (cli_media.test.mjs):
# the public vision goldens (../shared/golden/vision) through
# `castor run --mmproj --image -p --temp 0 --logits-json`, marker placement,
# --chat, errors, and `castor run --file` (text and PDF documents).
# Env: CASTOR (the binary), CST_SHARED (fixtures).
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required"; exit 1; }
node --test --test-concurrency=1 "$HERE"/cli_media.test.mjs
