#!/usr/bin/env bash
# Runs every test suite in the release build and in the ASan+UBSan build and
# ends with one summary line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0
for b in build build-asan; do
  echo "== ctest in $b"
  out=$(ctest --test-dir "$b" --output-on-failure -j2 2>&1); rc=$?
  echo "$out"
  total=$(echo "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' | tail -1)
  nfail=$(echo "$out" | sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' | tail -1)
  if [ -z "$total" ]; then echo "ctest in $b produced no summary (rc $rc)"; failed=$((failed + 1)); continue; fi
  passed=$((passed + total - nfail)); failed=$((failed + nfail))
done
# the engine's suites for aarch64 under qemu (scripts/test-arm64.sh)
echo "== arm64 suites under qemu"
out=$(./scripts/test-arm64.sh 2>&1)
echo "$out"
sum=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' | tail -1)
if [ -z "$sum" ]; then echo "test-arm64 produced no summary"; failed=$((failed + 1))
else read -r p f <<<"$sum"; passed=$((passed + p)); failed=$((failed + f)); fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
