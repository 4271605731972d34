#!/usr/bin/env bash
# `make test-arm64`: cross-compiles the engine and its unit and golden suites
# for aarch64 (build-arm64/, cmake/aarch64-linux-gnu.cmake, CST_ENGINE_ONLY:
# no server libraries) and runs them under qemu-aarch64 at every ARM ISA level
# qemu emulates:
#   -cpu max (dotprod + i8mm): every suite at the default ISA (must be i8mm);
#       the kernel and KV-cache suites also with CST_ISA=ref, dotprod and
#       neon forced
#   -cpu cortex-a53 (neither): the kernel, model, KV-cache and multimodal
#       suites at the default ISA, which must be neon (the NEON code path)
# We choose the CPU, so a forced ISA that is not applied fails (exit 77, the
# per-ISA skip code, counts as a failure here, as does the dispatcher's
# "not available" warning); test_kernels checks the active ISA against
# CST_ISA_EXPECT. Two runs at a time; ends with "N passed, N failed".
# On a host that is not x86-64 there is nothing to emulate: 0 passed, 0 failed.
set -uo pipefail
cd "$(dirname "$0")/.."
B=build-arm64
JOBS=${CST_ARM64_JOBS:-2}
LOGS=$B/logs

if [ "$(uname -m)" != x86_64 ]; then
  echo "test-arm64: host is $(uname -m), not x86-64; the native ctest run covers it"
  echo "0 passed, 0 failed"
  exit 0
fi
./scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
if [ ! -f $B/CMakeCache.txt ]; then
  gen=$(command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
  cmake -S . -B $B $gen -DCMAKE_BUILD_TYPE=Release -DCST_ENGINE_ONLY=ON \
    -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! cmake --build $B -j "$(nproc)" >$B/build.log 2>&1; then
  tail -30 $B/build.log
  echo "test-arm64: cross build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
rm -rf $LOGS && mkdir -p $LOGS

# qemu's pauth emulation (QARMA) is slow; the implementation-defined
# algorithm keeps pointer authentication and costs far less.
MAX="max,pauth-impdef=on"
ISA_SUITES="test_kernels test_model test_kvcache test_mm"
runs=()
for s in test_core test_gguf test_tokenizer test_sampler test_template $ISA_SUITES test_vision; do
  runs+=("$MAX default i8mm $s")
done
# forced ref and dotprod: test_kernels (the dispatch check) and the KV-cache
# suite; the model and multimodal suites run at the default (i8mm) and on the
# cortex-a53 (neon) only: test_kernels already compares dotprod's dots and
# every tile with ref bit for bit in one process, and the ref path is the
# same C as on x86, where it runs natively (test_model_ref)
for isa in ref dotprod; do
  for s in test_kernels test_kvcache; do runs+=("$MAX $isa $isa $s"); done
done
# forced neon on max runs the code the cortex-a53 default runs below: only
# the dispatch check and the fast suite
runs+=("$MAX neon neon test_kernels" "$MAX neon neon test_kvcache")
for s in $ISA_SUITES; do runs+=("cortex-a53 default neon $s"); done
# test_kernels compares every available ISA with ref in one process whatever
# the active one; forced, only its check of the active ISA is new
declare -A FILTER=([test_kernels_ref]=isa_names [test_kernels_neon]=isa_names [test_kernels_dotprod]=isa_names)

# one run: cpu, CST_ISA (or "default"), the ISA that must be active, suite
run_one() {
  local cpu=$1 isa=$2 expect=$3 suite=$4 log
  log=$LOGS/${suite}_${isa}_${cpu%%,*}.log
  local env=(CST_SHARED="${CST_SHARED:-$PWD/../shared}" CST_BUILD="$PWD/$B" CST_SOURCE="$PWD" CST_ISA_EXPECT="$expect")
  [ "$isa" != default ] && env+=(CST_ISA="$isa")
  local t0=$SECONDS
  # no QEMU_LD_PREFIX: the arm64 libc comes from the multiarch packages (with
  # the prefix set, qemu 7.2's forked children hang: the suites fork per test)
  env "${env[@]}" timeout 1500 qemu-aarch64 -cpu "$cpu" "$B/tests/$suite" ${FILTER[${suite}_$isa]:-} >"$log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ] && grep -q "not available on this CPU\|was not applied\|is not one of" "$log"; then rc=3; fi
  echo "$rc $((SECONDS - t0))" >"$log.rc"
}

i=0
for r in "${runs[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  # shellcheck disable=SC2086
  run_one $r &
  i=$((i + 1))
done
wait

passed=0; failed=0
for r in "${runs[@]}"; do
  read -r cpu isa expect suite <<<"$r"
  log=$LOGS/${suite}_${isa}_${cpu%%,*}.log
  read -r rc secs <"$log.rc" 2>/dev/null || { rc=99; secs=0; }
  label="$suite (qemu -cpu ${cpu%%,*}, CST_ISA=$isa)"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok    $label ${secs}s: $(tail -1 "$log")"
  else
    failed=$((failed + 1)); echo "FAIL  $label rc $rc ${secs}s"; tail -40 "$log"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
