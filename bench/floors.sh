#!/usr/bin/env bash
# bench/floors.sh: issue 10's AVX2 floors, castor (CST_ISA=avx2) against
# llama.cpp's AVX2 build (llama-bench, no AVX-512), same GGUF, same threads.
# A report, never a test. Prints a markdown table (and writes
# bench/out/floors.md): pp512 and tg128 for smollm2-135m Q8_0 and
# llama3.2-1b-shaped Q4_K, Q4_0, Q8_0 and a Q4_K_M mix, and decode at depth
# 2048 (smollm2: castor's tg after a 2048-token prompt, llama-bench -d 2048).
# The tg128 rows run at depth 0 on both sides (llama-bench's tg test starts
# from an empty cache; castor decodes after a 1-token prompt).
# Models: castor mkmodel (random weights, seed 1), cached in bench/out/models;
# the Q4_K_M mix is bench/mkmix.c over the Q4_K and Q6_K files.
# usage: bench/floors.sh [-t 2] [-r 1] [-k 1] [-p 512] [-n 128] [-d 2048] [MODEL_SPEC...]
#   MODEL_SPEC = preset:type (default: the five above); -d 0 skips the depth row;
#   -k K: K rounds per row, castor and llama.cpp alternating, each column the
#   median of its K values (this machine's memory bandwidth drifts by 20-40 %
#   over minutes: alternating keeps both sides under the same drift)
# env: CASTOR (default build/castor), LLAMA_BENCH (default
#      bench/out/llama-avx2/bin/llama-bench, built by build-llamacpp.sh avx2),
#      CASTOR_ISA (castor's CST_ISA, default avx2; with an AVX-512 CPU,
#      CASTOR_ISA=avx512 and LLAMA_BENCH=bench/out/llama-native/bin/llama-bench
#      compare both engines at their best),
#      CASTOR_ENV (extra environment for castor, e.g. CST_REPACK=0)
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd); root=$(cd .. && pwd)
T=2; R=1; K=1; P=512; N=128; D=2048; specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) T=$2; shift 2;; -r) R=$2; shift 2;; -k) K=$2; shift 2;; -p) P=$2; shift 2;; -n) N=$2; shift 2;;
    -d) D=$2; shift 2;;
    -*) echo "usage: bench/floors.sh [-t 2] [-r 1] [-k 1] [-p 512] [-n 128] [-d 2048] [preset:type...]"; exit 2;;
    *) specs+=("$1"); shift;;
  esac
done
[ ${#specs[@]} -gt 0 ] || specs=(smollm2-135m:Q8_0 llama3.2-1b:Q4_K llama3.2-1b:Q4_0 llama3.2-1b:Q8_0 llama3.2-1b:Q4_K_M)
shared=${CST_SHARED:-$root/../shared}
castor=${CASTOR:-$root/build/castor}
[ -x "$castor" ] || { echo "build castor first (make build)"; exit 1; }
lbench=${LLAMA_BENCH:-$here/out/llama-avx2/bin/llama-bench}
[ -x "$lbench" ] || ./build-llamacpp.sh avx2 llama-bench
mkdir -p out/models
vocab=$shared/models/vocab-llama3.gguf

model() { # preset type -> path (generated once)
  local m=out/models/$1-$2.gguf
  [ -f "$m" ] || "$castor" mkmodel --preset "$1" --vocab-from "$vocab" --type "$2" --seed 1 -o "$m" >&2
  echo "$m"
}
mix() { # preset -> Q4_K_M-style mix
  local m=out/models/$1-Q4_K_M.gguf
  if [ ! -f "$m" ]; then
    if [ ! -x out/mkmix ] || [ mkmix.c -nt out/mkmix ]; then
      gcc -O2 -I"$root/include" -I"$root/src" mkmix.c "$root/build/libcst_gguf.a" "$root/build/libcst_kernels.a" \
          "$root/build/libcst_core.a" -lpthread -lm -o out/mkmix
    fi
    out/mkmix "$(model "$1" Q4_K)" "$(model "$1" Q6_K)" "$m"
  fi
  echo "$m"
}
load() { cut -d' ' -f1 /proc/loadavg; }

# castor bench --json -> "pp tg"; llama-bench -o json -> "pp tg" (avg_ts of the pp and tg records)
isa=${CASTOR_ISA:-avx2}
lname=$(basename "$(dirname "$(dirname "$lbench")")")
castor_run() { env CST_ISA=$isa ${CASTOR_ENV:-} "$castor" bench -m "$1" -p "$2" -n "$3" -t $T -r $R --json | tail -1 |
  python3 -c 'import json,sys; c=json.loads(sys.stdin.read()); print(c["pp_tps"], c["tg_tps"])'; }
llama_run() { "$lbench" -m "$1" -p "$2" -n "$3" -d "$4" -t $T -r $R -o json 2>/dev/null |
  python3 -c '
import json, sys
recs = json.loads(sys.stdin.read() or "[]")
pp = [r["avg_ts"] for r in recs if r.get("n_prompt", 0) and not r.get("n_gen", 0)]
tg = [r["avg_ts"] for r in recs if r.get("n_gen", 0) and not r.get("n_prompt", 0)]
print(pp[0] if pp else 0, tg[0] if tg else 0)'; }

report=out/floors.md
l0=$(load); t0=$(date +%s)
rows=()
row() { # name castor_pp castor_tg llama_pp llama_tg load
  rows+=("$(python3 -c '
import sys
n, cp, ct, lp, lt, ld = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
f = lambda a, b: f"{a / b:.2f}" if a > 0 and b > 0 else "-"
v = lambda x: f"{x:.1f}" if x > 0 else "-"
print(f"| {n} | {v(cp)} | {v(lp)} | {f(cp, lp)} | {v(ct)} | {v(lt)} | {f(ct, lt)} | {ld} |")' "$@")")
  echo "${rows[-1]}" >&2
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for spec in "${specs[@]}"; do
  preset=${spec%%:*}; type=${spec#*:}
  if [ "$type" = Q4_K_M ]; then m=$(mix "$preset"); else m=$(model "$preset" "$type"); fi
  cps=(); cts=(); lps=(); lts=()
  for _ in $(seq "$K"); do
    # llama-bench's tg runs on an empty cache: castor's too (a 1-token prompt), pp on its own
    read -r cp _ < <(castor_run "$m" $P 1)
    read -r _ ct < <(castor_run "$m" 1 $N)
    read -r lp lt < <(llama_run "$m" $P $N 0)
    cps+=("$cp"); cts+=("$ct"); lps+=("$lp"); lts+=("$lt")
  done
  row "$preset $type" "$(median "${cps[@]}")" "$(median "${cts[@]}")" "$(median "${lps[@]}")" "$(median "${lts[@]}")" "$(load)"
done
# decode at depth D: castor's tg after a D-token prompt (its pp column is pp$D), llama-bench -d D
if [ "$D" -gt 0 ]; then
  m=$(model smollm2-135m Q8_0)
  cps=(); cts=(); lps=(); lts=()
  for _ in $(seq "$K"); do
    read -r cp ct < <(castor_run "$m" $D 32)
    read -r lp _ < <(llama_run "$m" $D 0 0)
    read -r _ lt < <(llama_run "$m" 0 32 $D)
    cps+=("$cp"); cts+=("$ct"); lps+=("$lp"); lts+=("$lt")
  done
  row "smollm2-135m Q8_0, pp$D / tg32 at depth $D" "$(median "${cps[@]}")" "$(median "${cts[@]}")" \
      "$(median "${lps[@]}")" "$(median "${lts[@]}")" "$(load)"
fi
{
  echo "# castor (CST_ISA=$isa${CASTOR_ENV:+, $CASTOR_ENV}) vs llama.cpp ($lname), $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo "$(nproc) cores, $T threads, pp$P / tg$N, $R run(s) after a warm-up, median of $K alternating round(s); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //');"
  echo "load average (1 min) $l0 at the start; the last column is the load after each row; $(( $(date +%s) - t0 )) s in all."
  echo
  echo "| model | castor pp t/s | llama.cpp pp t/s | pp ratio | castor tg t/s | llama.cpp tg t/s | tg ratio | load |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > $report
cat $report
