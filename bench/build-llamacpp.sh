#!/usr/bin/env bash
# bench/build-llamacpp.sh: builds llama-bench and llama-server from the llama.cpp
# source bundled in node-llama-cpp (bench/out/llama.cpp, cloned by bench/run.sh),
# once per flavour, cached in bench/out/llama-<flavour>/ (outside git).
#   native: -DGGML_NATIVE=ON (everything this CPU has)
#   avx2:   GGML_NATIVE=OFF, AVX/AVX2/FMA/F16C/BMI2 on, AVX-512 off: the fair
#           reference for `CST_ISA=avx2` on an AVX-512 CPU
# usage: bench/build-llamacpp.sh native|avx2 [TARGET...]   (default: llama-bench llama-server)
set -euo pipefail
cd "$(dirname "$0")"
flavour=${1:?native or avx2}; shift
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(llama-bench llama-server)
[ -d node_modules/node-llama-cpp ] || npm ci --no-audit --no-fund || npm install --no-audit --no-fund
[ -d out/llama.cpp ] || git clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle out/llama.cpp
case "$flavour" in
  native) flags=(-DGGML_NATIVE=ON);;
  avx2)   flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
                 -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF);;
  *) echo "unknown flavour $flavour" >&2; exit 2;;
esac
b=out/llama-$flavour
[ -f "$b/CMakeCache.txt" ] || cmake -S out/llama.cpp -B "$b" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF "${flags[@]}" >/dev/null
nice cmake --build "$b" -j "$(nproc)" --target "${targets[@]}"
