#!/usr/bin/env bash
# gguf_fuzz.sh: fuzzes the GGUF reader for 30 s (scripts/fuzz.sh, libFuzzer +
# ASan/UBSan, own build dir) and fails if the fuzzer finds a crash. Skips
# (passes with a note) when clang is not installed. Idempotent; temp files
# live in a temp dir that fuzz.sh removes.
set -uo pipefail
src=${CST_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
if ! command -v clang >/dev/null; then
  echo "SKIP: clang not installed, gguf fuzzing not run"
  exit 0
fi
"$src/scripts/fuzz.sh" "${CST_FUZZ_SECONDS:-30}" gguf_fuzz
rc=$?
case $rc in
  0) echo "gguf_fuzz: ok" ;;
  1) echo "gguf_fuzz: the fuzzer found a crash" ;;
  *) echo "gguf_fuzz: could not build or run the fuzzer (rc $rc)" ;;
esac
exit $rc
