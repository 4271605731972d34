#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET]: builds the libFuzzer target TARGET (default
# gguf_fuzz; tests/fuzz/TARGET.c) in build-fuzz (CC=clang, -DCST_FUZZ=ON,
# ASan+UBSan) and fuzzes it for SECONDS (default 60), one job, from its seed
# corpus plus the persistent corpus in build-fuzz/corpus-TARGET. Seeds:
# gguf_fuzz and image_fuzz write their own (GGUF_FUZZ_WRITE_SEEDS /
# IMAGE_FUZZ_WRITE_SEEDS), template_fuzz takes golden/templates/*.jinja,
# image_fuzz also golden/vision/*.png, tokenizer_fuzz and request_fuzz use
# tests/fuzz/seeds/TARGET/; tests/fuzz/TARGET.dict is passed as -dict.
# Exit 0: no crash found; 1: the fuzzer found a crash (reproducer copied to
# build-fuzz/crashes-TARGET/, rerun with: build-fuzz/tests/TARGET FILE);
# 2: setup or build failed. Env: CST_FUZZ_BUILD (build dir), CST_SHARED
# (fixtures, default ../shared next to the source), CST_FUZZ_ARGS (extra
# libFuzzer flags).
set -uo pipefail
secs=${1:-60}
target=${2:-gguf_fuzz}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${CST_FUZZ_BUILD:-$src/build-fuzz}
shared=${CST_SHARED:-$src/../shared}
export CST_SHARED=$shared
command -v clang >/dev/null || { echo "fuzz.sh: clang not found" >&2; exit 2; }
[ -f "$src/tests/fuzz/$target.c" ] || { echo "fuzz.sh: no target tests/fuzz/$target.c" >&2; exit 2; }
mkdir -p "$build" || exit 2

# Two runs may share the build dir (ctest from two build configs): serialise the build.
(
  flock 9
  if [ ! -f "$build/build.ninja" ]; then
    CC=clang cmake -S "$src" -B "$build" -G Ninja -DCST_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
  fi
  cmake --build "$build" -j2 --target "$target" >"$build/fuzz-build-$target.log" 2>&1 ||
    { tail -40 "$build/fuzz-build-$target.log" >&2; exit 2; }
) 9>"$build/.fuzz.lock" || { echo "fuzz.sh: build of $target failed" >&2; exit 2; }

bin="$build/tests/$target"
work=$(mktemp -d "${TMPDIR:-/tmp}/castor-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seeds" "$work/corpus" "$work/artifacts"
case $target in
  gguf_fuzz) GGUF_FUZZ_WRITE_SEEDS="$work/seeds" "$bin" || { echo "fuzz.sh: writing seeds failed" >&2; exit 2; } ;;
  image_fuzz)
    IMAGE_FUZZ_WRITE_SEEDS="$work/seeds" "$bin" || { echo "fuzz.sh: writing seeds failed" >&2; exit 2; }
    cp "$shared"/golden/vision/*.png "$work/seeds/" 2>/dev/null ;;
  template_fuzz) cp "$shared"/golden/templates/*.jinja "$work/seeds/" 2>/dev/null ;;
esac
[ -d "$src/tests/fuzz/seeds/$target" ] && cp "$src/tests/fuzz/seeds/$target/"* "$work/seeds/" 2>/dev/null
dict=()
[ -f "$src/tests/fuzz/$target.dict" ] && dict=(-dict="$src/tests/fuzz/$target.dict")
# Earlier runs' interesting inputs (optional, ignored if absent) speed up coverage.
persist="$build/corpus-$target"
[ -d "$persist" ] && cp -r "$persist/." "$work/corpus/" 2>/dev/null

echo "fuzz.sh: fuzzing $target for ${secs}s ($(ls "$work/seeds" | wc -l) seeds, $(ls "$work/corpus" | wc -l) corpus files)"
# shellcheck disable=SC2086
"$bin" "$work/corpus" "$work/seeds" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=16384 -artifact_prefix="$work/artifacts/" -print_final_stats=1 ${CST_FUZZ_ARGS:-} \
  >"$work/log" 2>&1
rc=$?
grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: Loaded)" "$work/log" | head -5
if [ $rc -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  mkdir -p "$build/crashes-$target"
  cp "$work/artifacts/"* "$build/crashes-$target/" 2>/dev/null
  grep -E -A30 "ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error|deadly signal" "$work/log" | head -60
  [ -s "$work/log" ] && ! grep -qE "ERROR:|runtime error|deadly signal" "$work/log" && tail -20 "$work/log"
  echo "fuzz.sh: $target FOUND A CRASH (rc $rc); reproducers in $build/crashes-$target/" >&2
  exit 1
fi
# keep the grown corpus for next time (best effort, serialised; capped at
# 3000 files so that loading it stays a small part of a short run)
(
  flock 9
  mkdir -p "$persist" && [ "$(ls "$persist" | wc -l)" -lt 3000 ] && cp -n "$work/corpus/"* "$persist/" 2>/dev/null
) 9>"$build/.fuzz.lock"
echo "fuzz.sh: $target: no crash in ${secs}s"
exit 0
