#!/usr/bin/env bash
# The one prepared GPU check (DESIGN.md section 13), for a machine with an NVIDIA GPU, no internet,
# and a python3 that already holds torch 2.11.0+cu130, CMake, ninja and nvcc.
#   scripts/gpu-check.sh [RESULTS_DIR]      (default: $OUT, else ./gpu-results)
# Our Debian dependencies travel as .deb files in .debs/ (git-ignored; fill it here with
# `scripts/gpu-check.sh --fetch-debs`); they are unpacked into /tmp/deps, never into /.
# Builds against the machine's torch, runs the `cuda` tests, then the benchmarks; logs and JSON
# results land in RESULTS_DIR. Budget: under 8 minutes.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
debs="$root/.debs"
packages=(libyaml-cpp0.7 libyaml-cpp-dev libsentencepiece0 libsentencepiece-dev nlohmann-json3-dev
          libgtest-dev googletest libcli11-dev)

if [[ "${1:-}" == "--fetch-debs" ]]; then
    mkdir -p "$debs" && cd "$debs" && apt-get download "${packages[@]}"
    exit $?
fi

results="${1:-${OUT:-$root/gpu-results}}"
mkdir -p "$results"
exec > >(tee "$results/gpu-check.log") 2>&1
start=$(date +%s)
stamp() { echo "[gpu-check +$(( $(date +%s) - start ))s] $*"; }

stamp "machine: $(nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader 2>&1 | head -1)"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())'

deps=/tmp/deps
mkdir -p "$deps"
for f in "$debs"/*.deb; do dpkg -x "$f" "$deps"; done
export CMAKE_PREFIX_PATH="$deps/usr:$deps/usr/lib/x86_64-linux-gnu/cmake:${CMAKE_PREFIX_PATH:-}"
export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig:${PKG_CONFIG_PATH:-}"
# Debian's .pc files name /usr; point them at the unpacked prefix.
sed -i "s|^prefix=/usr|prefix=$deps/usr|" "$deps"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc 2>/dev/null

build=/tmp/qlora-gpu-build
stamp "configure"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLORA_PYTHON="$(command -v python3)" \
      -DQLORA_CUDA=ON -DQLORA_CUDA_ARCHITECTURES=90 -DGTest_DIR="$deps/usr/lib/x86_64-linux-gnu/cmake/GTest" \
      -DCMAKE_CXX_FLAGS="-isystem $deps/usr/include" -DQLORA_SHARED_DIR="$root/.gpu-shared" \
      > "$results/configure.log" 2>&1 || { stamp "configure failed"; tail -40 "$results/configure.log"; exit 1; }
stamp "build"
cmake --build "$build" --parallel "$(nproc)" > "$results/build.log" 2>&1 || { stamp "build failed"; grep -m5 -A10 -E "error" "$results/build.log"; exit 1; }

stamp "cuda tests"
ctest --test-dir "$build" -L cuda --output-on-failure --timeout 300 2>&1 | tee "$results/ctest-cuda.log" | tail -25
stamp "unit tests on the GPU machine (quant, core)"
ctest --test-dir "$build" -L unit -R 'Nf4|Error|Log|Device|Dtype|Progress' --output-on-failure --timeout 300 2>&1 | tail -5

stamp "benchmarks"
"$build/qlora-bench" --device all dequant --rows 8192 --cols 8192 --iters 20 | tee "$results/bench-dequant.jsonl"
if "$build/qlora-bench" --help 2>&1 | grep -q " step"; then
    "$build/qlora-bench" --device cuda step --shape 7b --seq 2048 | tee "$results/bench-step.jsonl"
fi
stamp "done"
