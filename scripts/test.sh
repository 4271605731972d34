#!/usr/bin/env bash
# Runs every test suite in the release build and in the ASan+UBSan build and
# ends with one summary line: "N passed, N failed, N skipped". The kernel,
# model, KV-cache and multimodal suites run once per ISA (NAME_ref,
# NAME_avx2, ...); only an ISA the CPU lacks is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0; skipped=0
for b in build build-asan; do
  echo "== ctest in $b"
  out=$(ctest --test-dir "$b" --output-on-failure -j2 2>&1); rc=$?
  echo "$out"
  total=$(echo "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' | tail -1)
  nfail=$(echo "$out" | sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' | tail -1)
  if [ -z "$total" ]; then echo "ctest in $b produced no summary (rc $rc)"; failed=$((failed + 1)); continue; fi
  nskip=$(echo "$out" | grep -c '(Skipped)$')
  passed=$((passed + total - nfail - nskip)); failed=$((failed + nfail)); skipped=$((skipped + nskip))
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
