#!/usr/bin/env bash
# bench/run.sh: castor vs llama.cpp, same GGUF, same threads, same run.
# Generates benchmark models shaped like real ones with `castor mkmodel`
# (random weights), builds bench/out/llamacpp_bench against the prebuilt
# libllama of node-llama-cpp (npm) and llama-bench from the same source with
# -DGGML_NATIVE=ON (bench/build-llamacpp.sh, once, cached in bench/out/; with
# CST_ISA=avx2: an AVX2-only build and the package's AVX2 variant), runs all
# three, and writes bench/out/report.md.
# usage: bench/run.sh [-t THREADS] [-p 512] [-n 128] [-r 3] [MODEL_SPEC...]
#   MODEL_SPEC = preset:type, e.g. smollm2-135m:Q8_0 llama3.2-1b:Q4_K
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd); root=$(cd .. && pwd)
T=2; P=512; N=128; R=3; specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) T=$2; shift 2;; -p) P=$2; shift 2;; -n) N=$2; shift 2;; -r) R=$2; shift 2;;
    *) specs+=("$1"); shift;;
  esac
done
[ ${#specs[@]} -gt 0 ] || specs=(smollm2-135m:Q8_0 llama3.2-1b:Q4_K llama3.2-1b:Q8_0)
shared=${CST_SHARED:-$root/../shared}
castor=${CASTOR:-$root/build/castor}
[ -x "$castor" ] || { echo "build castor first (make build)"; exit 1; }
mkdir -p out/models

# llama.cpp from npm (npm 11 refuses `npm ci` with this lock file: fall back to install)
[ -d node_modules/node-llama-cpp ] || npm ci --no-audit --no-fund || npm install --no-audit --no-fund
bins=$here/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
# CST_ISA=avx2 (AVX2 forced on an AVX-512 CPU): the fair references are the
# prebuilt package's AVX2 variant (haswell) and a llama.cpp build without AVX-512
be=$bins; flavour=native
if [ "${CST_ISA:-}" = avx2 ]; then
  flavour=avx2; be=$here/out/be-haswell
  mkdir -p "$be"; ln -sf "$bins/libggml-cpu-haswell.so" "$be/"
fi
# llama.cpp built from the bundled source (bench/build-llamacpp.sh, cached in
# bench/out/llama-$flavour; LLAMA_NATIVE=0 skips it)
lbench=""
if [ "${LLAMA_NATIVE:-1}" != 0 ]; then
  lbench=$here/out/llama-$flavour/bin/llama-bench
  [ -x "$lbench" ] || ./build-llamacpp.sh "$flavour" llama-bench
fi
if [ ! -x out/llamacpp_bench ] || [ llamacpp_bench.c -nt out/llamacpp_bench ]; then
  [ -d out/llama.cpp ] || git clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle out/llama.cpp
  cc -O2 -o out/llamacpp_bench llamacpp_bench.c -Iout/llama.cpp/include -Iout/llama.cpp/ggml/include \
     -L"$bins" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so -Wl,-rpath,"$bins" -lm
fi

vocab_for() { # the real vocabulary of the model family
  case "$1" in
    smollm2-*|llama3*) echo "$shared/models/vocab-llama3.gguf";;
    qwen3*) echo "$shared/models/vocab-qwen3.gguf";;
    *) echo "$shared/models/vocab-llama3.gguf";;
  esac
}

report=out/report.md
{
  echo "# castor vs llama.cpp ($(date -u +%Y-%m-%d), $(nproc) cores, threads $T, prompt $P, gen $N, reps $R)"
  echo
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo
  echo "castor ISA: ${CST_ISA:-best}; llama.cpp prebuilt: node-llama-cpp CPU variants in $(basename "$be");" \
       "llama.cpp built: ${lbench:-(skipped)}"
  echo
  echo "| model | file MiB | castor pp t/s | llama.cpp pp t/s | pp ratio | castor tg t/s | llama.cpp tg t/s | tg ratio | built llama.cpp pp / tg t/s | ratio pp / tg vs built | castor run RSS MiB | RSS limit MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} > $report
for spec in "${specs[@]}"; do
  preset=${spec%%:*}; type=${spec#*:}
  m=out/models/$preset-$type.gguf
  [ -f "$m" ] || "$castor" mkmodel --preset "$preset" --vocab-from "$(vocab_for "$preset")" --type "$type" --seed 1 -o "$m"
  c=$("$castor" bench -m "$m" -p $P -n $N -t $T -r $R --json | tail -1)
  l=$(LLAMA_BACKEND_DIR="$be" out/llamacpp_bench "$m" -p $P -n $N -t $T -r $R | tail -1)
  nb='[]'
  [ -z "$lbench" ] || nb=$("$lbench" -m "$m" -p $P -n $N -t $T -r $R -o json 2>/dev/null | tr -d '\n') || nb='[]'
  # RSS of a plain `castor run` over the same context size
  rss_kb=$( { /usr/bin/time -f '%M' "$castor" run -m "$m" --prompt-ids 1,2,3,4 -n 16 -c $((P + N + 16)) -t $T >/dev/null; } 2>&1 | tail -1)
  kv=$(echo "$c" | sed -n 's/.*"kv_bytes":\([0-9]*\).*/\1/p'); kv=${kv:-0}
  python3 - "$m" "$c" "$l" "$rss_kb" "$kv" "$preset:$type" "$nb" >> $report <<'PY'
import json, os, sys
m, c, l, rss_kb, kv, name = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
# llama-bench -o json: one record per test, n_prompt > 0 (pp) or n_gen > 0 (tg), avg_ts
nat = {("pp" if r.get("n_prompt", 0) else "tg"): r["avg_ts"] for r in json.loads(sys.argv[7] or "[]")}
fmib = os.path.getsize(m) / 2**20
if "pp" in nat and "tg" in nat:
    built = f"{nat['pp']:.1f} / {nat['tg']:.2f} | {c['pp_tps']/nat['pp']:.2f} / {c['tg_tps']/nat['tg']:.2f}"
else:
    built = "- | -"
print(f"| {name} | {fmib:.0f} | {c['pp_tps']:.1f} | {l['pp_tps']:.1f} | {c['pp_tps']/l['pp_tps']:.2f} | "
      f"{c['tg_tps']:.2f} | {l['tg_tps']:.2f} | {c['tg_tps']/l['tg_tps']:.2f} | {built} | "
      f"{rss_kb/1024:.0f} | {fmib + kv/2**20 + 32:.0f} |")
PY
done
cat $report
