#!/usr/bin/env bash
# Runs every test suite in the release build and in the ASan+UBSan build and
# ends with one summary line: "N passed, N failed, N skipped". The kernel,
# model, KV-cache and multimodal suites run once per ISA (NAME_ref,
# NAME_avx2, ...); only an ISA the CPU lacks is skipped. The aarch64 suites
# (scripts/test-arm64.sh, qemu) run in the background meanwhile.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0; skipped=0
arm_log=$(mktemp)
./scripts/test-arm64.sh >"$arm_log" 2>&1 &
arm_pid=$!
for b in build build-asan; do
  echo "== ctest in $b"
  # streamed as it runs (tee), kept for the summary below
  log=$(mktemp)
  ctest --test-dir "$b" --output-on-failure -j2 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  out=$(cat "$log"); rm -f "$log"
  total=$(echo "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' | tail -1)
  nfail=$(echo "$out" | sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' | tail -1)
  if [ -z "$total" ]; then echo "ctest in $b produced no summary (rc $rc)"; failed=$((failed + 1)); continue; fi
  nskip=$(echo "$out" | grep -c '(Skipped)$')
  passed=$((passed + total - nfail - nskip)); failed=$((failed + nfail)); skipped=$((skipped + nskip))
done
# the engine's suites for aarch64 under qemu (scripts/test-arm64.sh), started
# first and run alongside the x86 suites; their counts join the summary
wait "$arm_pid"
echo "== arm64 suites under qemu"
cat "$arm_log"
sum=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$arm_log" | tail -1)
rm -f "$arm_log"
if [ -z "$sum" ]; then echo "test-arm64 produced no summary"; failed=$((failed + 1))
else read -r p f <<<"$sum"; passed=$((passed + p)); failed=$((failed + f)); fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
