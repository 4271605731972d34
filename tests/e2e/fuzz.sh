#!/usr/bin/env bash
# fuzz.sh: runs every libFuzzer target (tests/fuzz/*_fuzz.c: gguf, template,
# tokenizer, image, request, docs) for CST_FUZZ_SECONDS each (default 10, one
# target at a time) through scripts/fuzz.sh (clang, ASan+UBSan, own build dir
# build-fuzz) and fails if any target crashes or cannot be built. Skips
# (passes with a note) when clang is not installed; targets that need the
# shared model files are skipped when those are missing. Idempotent; temp
# files live in temp dirs that fuzz.sh removes. Reproducers of a crash are
# kept in build-fuzz/crashes-TARGET/.
set -uo pipefail
src=${CST_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
shared=${CST_SHARED:-$src/../shared}
secs=${CST_FUZZ_SECONDS:-10}
if ! command -v clang >/dev/null; then
  echo "SKIP: clang not installed, fuzzing not run"
  exit 0
fi
failed=()
for f in "$src"/tests/fuzz/*_fuzz.c; do
  t=$(basename "$f" .c)
  case $t in
    tokenizer_fuzz | request_fuzz)
      if [ ! -f "$shared/models/vocab-qwen3.gguf" ]; then
        echo "SKIP: $t (no $shared/models)"
        continue
      fi ;;
  esac
  CST_SHARED=$shared "$src/scripts/fuzz.sh" "$secs" "$t"
  rc=$?
  case $rc in
    0) echo "$t: ok" ;;
    1) echo "$t: the fuzzer found a crash"; failed+=("$t (crash)") ;;
    *) echo "$t: could not build or run the fuzzer (rc $rc)"; failed+=("$t (setup, rc $rc)") ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all targets ok (${secs}s each)"
exit 0
