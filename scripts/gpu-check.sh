#!/usr/bin/env bash
# The one prepared GPU check (DESIGN.md section 13), for a machine with an NVIDIA GPU, no internet,
# and a python3 that already holds torch 2.11.0+cu130 (CMake, ninja and nvcc for the fallback build).
#
#   scripts/gpu-check.sh --prepare [BUILD_DIR]   here, before the run (default BUILD_DIR: build):
#       .debs/        our Debian dependencies as .deb files (apt-get download)
#       .gpu-bin/     the tools and the cuda/core test binaries of BUILD_DIR, built against the same
#                     torch 2.11.0+cu130 wheel, so the GPU's time goes to tests, not to compiling
#       .gpu-shared/  a copy of ../shared/data (../shared does not travel)
#     All three are git-ignored; carry them: run(carry=[".debs", ".gpu-bin", ".gpu-shared"]).
#   scripts/gpu-check.sh [RESULTS_DIR]           on the GPU machine (default: $OUT, else ./gpu-results)
#
# On the GPU machine the .debs are unpacked into /tmp/deps (never into /). When .gpu-bin runs there
# (torch found, libraries resolve) it is used; otherwise the tree is built against the machine's
# torch (QLORA_GPU_BUILD=1 forces that). Then: the cuda tests, the dequant and training-step
# benchmarks, a one-rank NCCL world under torchrun (collectives and the sharded base's logits and
# gradients, then data-parallel and shard_base training), and a QLoRA run of the quickstart
# config on the GPU. Every stage has its own time limit
# and a failure does not stop the later ones. Results (at most 8 files): gpu-check.log, *.xml,
# bench-*.jsonl, train-metrics.jsonl. Budget: under 8 minutes.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
debs="$root/.debs"
bin="$root/.gpu-bin"
packages=(libyaml-cpp0.7 libyaml-cpp-dev libsentencepiece0 libsentencepiece-dev nlohmann-json3-dev
          libgtest-dev googletest libcli11-dev)
tools=(qlora-bench qlora-train qlora-generate qlora-eval qlora-dist-check)
tests=(test_kernels test_core)

if [[ "${1:-}" == "--prepare" || "${1:-}" == "--fetch-debs" ]]; then
    set -e
    mkdir -p "$debs" && (cd "$debs" && apt-get download "${packages[@]}")
    [[ "$1" == "--fetch-debs" ]] && exit 0
    build="$(cd "$root" && cd "${2:-build}" && pwd)"
    rm -rf "$bin" && mkdir -p "$bin"
    for t in "${tools[@]}"; do cp "$build/$t" "$bin/"; done
    for t in "${tests[@]}"; do cp "$build/tests/$t" "$bin/"; done
    # Test binaries have the source and shared folders compiled in (tests/test_paths.h.in).
    grep -E '^CMAKE_HOME_DIRECTORY:|^QLORA_SHARED_DIR:' "$build/CMakeCache.txt" | sed 's/:[A-Z]*=/=/' > "$bin/paths.env"
    source_dir="$(sed -n 's/^CMAKE_HOME_DIRECTORY=//p' "$bin/paths.env")"
    git -C "$source_dir" describe --always --dirty > "$bin/commit"
    rm -rf "$root/.gpu-shared" && mkdir -p "$root/.gpu-shared"
    cp -r "$root/../shared/data" "$root/.gpu-shared/"
    du -sh "$debs" "$bin" "$root/.gpu-shared"
    exit 0
fi

results="${1:-${OUT:-$root/gpu-results}}"
mkdir -p "$results"
exec > >(tee "$results/gpu-check.log") 2>&1
start=$(date +%s)
stamp() { echo "[gpu-check +$(( $(date +%s) - start ))s] $*"; }
# stage SECONDS NAME CMD...: runs with a time limit; reports its status and never stops the script.
stage() {
    local limit=$1 name=$2; shift 2
    stamp "$name"
    timeout -k 10 "$limit" "$@"
    local rc=$?
    [[ $rc -eq 0 ]] && stamp "$name: ok" || stamp "$name: FAILED (exit $rc)"
    return 0
}

stamp "machine: $(nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader 2>&1 | head -1)"
torch_lib="$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")')"
site="$(dirname "$(dirname "$torch_lib")")"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())'

deps=/tmp/deps
mkdir -p "$deps"
for f in "$debs"/*.deb; do dpkg -x "$f" "$deps"; done
cudart_dir="$(dirname "$(find "$site/nvidia" /usr/local/cuda/lib64 -name 'libcudart.so.13*' 2>/dev/null | head -1)")"
export LD_LIBRARY_PATH="$torch_lib:$cudart_dir:$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"

use_prebuilt=0
if [[ -x "$bin/qlora-bench" && "${QLORA_GPU_BUILD:-0}" != 1 ]]; then
    # Recreate the folders compiled into the test binaries: the source tree and ../shared/data.
    source "$bin/paths.env"
    if [[ ! -e "$CMAKE_HOME_DIRECTORY" ]]; then mkdir -p "$(dirname "$CMAKE_HOME_DIRECTORY")" && ln -s "$root" "$CMAKE_HOME_DIRECTORY"; fi
    if "$bin/qlora-bench" --version && "$bin/test_kernels" --gtest_list_tests > /dev/null; then
        use_prebuilt=1
        stamp "using the binaries built here from commit $(cat "$bin/commit") (this tree: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown))"
        mkdir -p "$QLORA_SHARED_DIR" && cp -rn "$root/.gpu-shared/data" "$QLORA_SHARED_DIR/" 2>/dev/null
    else
        stamp "the prepared binaries do not run here (above); building from source"
        ldd "$bin/qlora-bench" | grep "not found"
    fi
fi
if [[ ! -e "$root/../shared/data" ]]; then mkdir -p "$root/../shared" && cp -r "$root/.gpu-shared/data" "$root/../shared/"; fi

if [[ $use_prebuilt == 0 ]]; then
    export CMAKE_PREFIX_PATH="$deps/usr:$deps/usr/lib/x86_64-linux-gnu/cmake:${CMAKE_PREFIX_PATH:-}"
    export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig:${PKG_CONFIG_PATH:-}"
    # Debian's .pc files name /usr; point them at the unpacked prefix.
    sed -i "s|^prefix=/usr|prefix=$deps/usr|" "$deps"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc 2>/dev/null
    build=/tmp/qlora-gpu-build
    stamp "configure"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLORA_PYTHON="$(command -v python3)" \
          -DQLORA_CUDA=ON -DQLORA_CUDA_ARCHITECTURES=90 -DGTest_DIR="$deps/usr/lib/x86_64-linux-gnu/cmake/GTest" \
          -DCMAKE_CXX_FLAGS="-isystem $deps/usr/include" -DQLORA_SHARED_DIR="$root/../shared" \
          > "$results/configure.log" 2>&1 || { stamp "configure failed"; tail -40 "$results/configure.log"; exit 1; }
    stamp "build"
    cmake --build "$build" --parallel "$(nproc)" --target "${tools[@]}" "${tests[@]}" > "$results/build.log" 2>&1 ||
        { stamp "build failed"; grep -m5 -A10 -E "error" "$results/build.log"; exit 1; }
    rm -f "$results/configure.log" "$results/build.log"
    mkdir -p "$bin.built" && bin="$bin.built"
    for t in "${tools[@]}"; do cp "$build/$t" "$bin/"; done
    for t in "${tests[@]}"; do cp "$build/tests/$t" "$bin/"; done
fi

stage 240 "cuda tests" "$bin/test_kernels" --gtest_output="xml:$results/test_kernels.xml"
stage 120 "device tests" "$bin/test_core" --gtest_filter='*Device*:*Dtype*' --gtest_output="xml:$results/test_core.xml"

stage 120 "bench dequant (NF4+DQ vs copy: 8192x8192, 65B's 22016x8192 MLP weight)" \
    bash -o pipefail -c "'$bin/qlora-bench' --device cuda dequant --rows 8192 --cols 8192 --iters 50 | tee '$results/bench-dequant.jsonl' &&
                         '$bin/qlora-bench' --device cuda dequant --rows 22016 --cols 8192 --iters 50 | tee -a '$results/bench-dequant.jsonl'"
stage 180 "bench step 7B (seq 2048): NF4 base vs bf16 base" \
    bash -o pipefail -c "'$bin/qlora-bench' --device cuda step --shape 7b --seq 2048 --iters 5 --base nf4 --base bf16 | tee '$results/bench-step.jsonl'"
stage 180 "bench step 65B NF4 (seq 512, paged AdamW): does a step fit 48 GB?" \
    bash -o pipefail -c "'$bin/qlora-bench' --device cuda step --shape 65b --seq 512 --iters 3 --warmup 1 --base nf4 | tee -a '$results/bench-step.jsonl'"

# Distributed over c10d + NCCL, launched by torchrun. This machine has one GPU and NCCL refuses two
# ranks on one device, so these are one-rank worlds; with two GPUs use --nproc-per-node=2 (and drop
# --single-rank-world / hardware.parallel=data, which only force a world of one).
torchrun1=(python3 -m torch.distributed.run --nproc-per-node=1 --master-addr=127.0.0.1 --max-restarts=0)
stage 120 "NCCL, one rank under torchrun: agent store, ProcessGroupNCCL, all-reduce/broadcast/all-gather/barrier" \
    "${torchrun1[@]}" --master-port=29531 --no-python "$bin/qlora-dist-check" --device cuda --backend nccl \
    --single-rank-world --timeout-s 60 --out /tmp \
    --shard-model "$root/../shared/data/stories260K/hf"
stage 180 "data-parallel qlora-train (quickstart, 20 steps), one NCCL rank" \
    "${torchrun1[@]}" --master-port=29532 --no-python "$bin/qlora-train" "$root/configs/quickstart.yaml" \
    hardware.device=cuda hardware.parallel=data train.max_steps=20 output.dir=/tmp/gpu-dp
stage 180 "shard_base qlora-train with offloaded checkpoints (quickstart, 20 steps), one NCCL rank" \
    "${torchrun1[@]}" --master-port=29533 --no-python "$bin/qlora-train" "$root/configs/quickstart.yaml" \
    hardware.device=cuda hardware.parallel=shard_base train.offload_activations=true \
    train.max_steps=20 output.dir=/tmp/gpu-shard

run=/tmp/gpu-quickstart
stage 180 "qlora-train configs/quickstart.yaml on cuda (bf16, paged AdamW)" \
    "$bin/qlora-train" "$root/configs/quickstart.yaml" hardware.device=cuda optim.name=paged_adamw_32bit \
    "output.dir=$run"
cp "$run/metrics.jsonl" "$results/train-metrics.jsonl" 2>/dev/null
model="$root/../shared/data/stories260K/hf"
stage 60 "qlora-generate on cuda with the adapter" "$bin/qlora-generate" --device cuda --model "$model" --quant nf4 \
    --adapter "$run/adapter" --prompt "Once upon a time" --max-new-tokens 256 --temperature 0 --stats
stage 60 "qlora-eval on cuda, base then base + adapter" bash -c \
    "'$bin/qlora-eval' --device cuda --model '$model' --quant nf4 --data '$root/../shared/data/text/tinystories_sample_cs336.txt' &&
     '$bin/qlora-eval' --device cuda --model '$model' --quant nf4 --adapter '$run/adapter' --data '$root/../shared/data/text/tinystories_sample_cs336.txt'"
nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader
stamp "done"
