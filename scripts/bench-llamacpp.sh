#!/usr/bin/env bash
# Our CPU decode/prefill beside llama.cpp's own llama-bench, same random-weight model, same threads.
#
#   scripts/bench-llamacpp.sh [BUILD_DIR]       (default BUILD_DIR: build; needs build/qlora-bench)
#
# 1. llama.cpp: the llama-cpp-python==0.3.36 source distribution from PyPI (pip download
#    --no-binary llama-cpp-python --no-deps: its build dependencies come as wheels, not compiled),
#    its vendor/llama.cpp built with only the CPU backend (-j2), cached in $QLORA_LLAMACPP_CACHE
#    (default ~/.cache/qlora-cpp/llama.cpp-build), outside the work tree, one build per CPU flag
#    set (this CPU's ISA flags, AMX off).
# 2. A random Llama of TinyLlama-1.1B shape (22 layers, 2048/5632, GQA 32/4, vocab 32000) saved as
#    an HF folder by scripts/bench-random-llama.py (torch + transformers), with stories260K's
#    SentencePiece tokenizer (llama.cpp's converter pads the vocabulary to 32000).
# 3. The sdist's convert_hf_to_gguf.py -> F16 GGUF, its llama-quantize -> Q4_0.
# 4. llama-bench (pp256, tg64) on both, then qlora-bench decode and prefill on the HF folder
#    (NF4 with int8 activations, NF4 and dense in bf16, exact NF4 and dense fp32 in one process),
#    printed side by side
#    with ratios.
# Env: THREADS (default 2), QLORA_PYTHON (default the setup venv), BENCH_STAGE=build stops after 1,
# BENCH_STAGE=model after 3 (the slow, noisy preparation, so that 4 can run on a quiet machine).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-$root/build}"
threads="${THREADS:-2}"
python="${QLORA_PYTHON:-$HOME/.cache/qlora-cpp/venv/bin/python}"
cache="${QLORA_LLAMACPP_CACHE:-$HOME/.cache/qlora-cpp/llama.cpp-build}"
version="0.3.36"
mkdir -p "$cache"

# ---- 1. llama.cpp from the sdist --------------------------------------------------------------
src="$cache/llama_cpp_python-$version"
if [[ ! -d "$src/vendor/llama.cpp" ]]; then
    "$python" -m pip download --no-binary llama-cpp-python --no-deps -d "$cache/sdist" \
        "llama-cpp-python==$version" >&2
    tar -xzf "$cache/sdist/llama_cpp_python-$version.tar.gz" -C "$cache"
fi
# Built for this CPU's instruction sets, one build per CPU flag set (a cache shared with another
# machine kind died of SIGILL). Not GGML_NATIVE: these VMs report AMX in cpuinfo, but its tile
# state is not usable (ggml's AMX matmul died of SIGILL on tileloadd), so AMX stays off.
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ "$cpu_flags" == *" $1 "* ]] && echo ON || echo OFF; }
isa=(-DGGML_NATIVE=OFF -DGGML_AVX="$(has avx)" -DGGML_AVX2="$(has avx2)" -DGGML_FMA="$(has fma)"
    -DGGML_F16C="$(has f16c)" -DGGML_BMI2="$(has bmi2)" -DGGML_AVX_VNNI="$(has avx_vnni)"
    -DGGML_AVX512="$(has avx512f)" -DGGML_AVX512_VBMI="$(has avx512vbmi)"
    -DGGML_AVX512_VNNI="$(has avx512_vnni)" -DGGML_AVX512_BF16="$(has avx512_bf16)"
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
lbuild="$cache/build-$(echo "${isa[*]}" | md5sum | cut -c1-8)"
if [[ ! -x "$lbuild/bin/llama-bench" || ! -x "$lbuild/bin/llama-quantize" ]]; then
    cmake -S "$src/vendor/llama.cpp" -B "$lbuild" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=OFF "${isa[@]}" \
        -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$lbuild" -j2 --target llama-bench llama-quantize >&2
fi
[[ "${BENCH_STAGE:-}" == "build" ]] && { echo "llama.cpp built in $lbuild"; exit 0; }

# ---- 2./3. the model: HF folder, F16 and Q4_0 GGUF ---------------------------------------------
model="$cache/tinyllama-shape-random"
if [[ ! -f "$model/model.safetensors" && ! -f "$model/model.safetensors.index.json" ]]; then
    "$python" "$root/scripts/bench-random-llama.py" "$model" \
        --tokenizer "$root/../shared/data/stories260K/tok512.model" >&2
fi
f16="$cache/tinyllama-shape-random-f16.gguf"
q40="$cache/tinyllama-shape-random-q4_0.gguf"
if [[ ! -f "$f16" ]]; then
    "$python" "$src/vendor/llama.cpp/convert_hf_to_gguf.py" "$model" --outtype f16 --outfile "$f16" >&2
fi
if [[ ! -f "$q40" ]]; then
    "$lbuild/bin/llama-quantize" "$f16" "$q40" Q4_0 "$threads" >&2
fi

[[ "${BENCH_STAGE:-}" == "model" ]] && { echo "models ready: $model, $f16, $q40"; exit 0; }

# ---- 4. both benchmarks, one table -------------------------------------------------------------
out="$cache/results"
mkdir -p "$out"
: >"$out/llama-bench.jsonl"
for m in "$q40" "$f16"; do  # one model per run: several -m in one call printed nothing here
    "$lbuild/bin/llama-bench" -m "$m" -t "$threads" -p 256 -n 64 -r 2 -o jsonl >>"$out/llama-bench.jsonl"
done
"$build_dir/qlora-bench" decode --model "$model" --threads "$threads" \
    --base nf4-int8 --base nf4-bf16 --base bf16 --base nf4 --base fp32 >"$out/qlora-decode.jsonl"
"$build_dir/qlora-bench" prefill --model "$model" --threads "$threads" --prompt 256 \
    --base nf4-int8 --base nf4-bf16 --base bf16 --base nf4 --base fp32 >"$out/qlora-prefill.jsonl"
"$python" - "$out" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def lines(name):
    return [json.loads(l) for l in (out / name).read_text().splitlines() if l.strip().startswith("{")]
llama = {}
for r in lines("llama-bench.jsonl"):
    kind = "q4_0" if "q4_0" in r["model_filename"].lower() else "f16"
    test = "pp" if r["n_prompt"] > 0 else "tg"
    llama[(kind, test)] = r["avg_ts"]
ours = {}
for name, test in (("qlora-decode.jsonl", "tg"), ("qlora-prefill.jsonl", "pp")):
    for r in lines(name):
        if "base" in r:
            ours[(r["base"], test)] = r["tokens_per_s"]
rows = [("decode, NF4 with int8 activations vs llama.cpp Q4_0", ("nf4-int8", "tg"), ("q4_0", "tg")),
        ("decode, NF4 in bf16 vs llama.cpp Q4_0", ("nf4-bf16", "tg"), ("q4_0", "tg")),
        ("decode, NF4 vs llama.cpp Q4_0", ("nf4", "tg"), ("q4_0", "tg")),
        ("decode, dense bf16 vs llama.cpp F16", ("bf16", "tg"), ("f16", "tg")),
        ("decode, dense fp32 vs llama.cpp F16", ("fp32", "tg"), ("f16", "tg")),
        ("prefill pp256, NF4 with int8 activations vs llama.cpp Q4_0", ("nf4-int8", "pp"), ("q4_0", "pp")),
        ("prefill pp256, NF4 in bf16 vs llama.cpp Q4_0", ("nf4-bf16", "pp"), ("q4_0", "pp")),
        ("prefill pp256, NF4 vs llama.cpp Q4_0", ("nf4", "pp"), ("q4_0", "pp")),
        ("prefill pp256, dense bf16 vs llama.cpp F16", ("bf16", "pp"), ("f16", "pp")),
        ("prefill pp256, dense fp32 vs llama.cpp F16", ("fp32", "pp"), ("f16", "pp"))]
print(f"| case | qlora-cpp tok/s | llama.cpp tok/s | ratio |")
print("|---|---|---|---|")
for label, a, b in rows:
    if a in ours and b in llama:
        print(f"| {label} | {ours[a]:.2f} | {llama[b]:.2f} | {ours[a] / llama[b]:.2f}x |")
for test, name in (("tg", "decode"), ("pp", "prefill")):
    for base in ("nf4-int8", "nf4-bf16", "nf4"):
        if (base, test) in ours and ("fp32", test) in ours:
            print(f"| {name}, {base} vs our dense fp32 | {ours[(base, test)]:.2f} | "
                  f"{ours[('fp32', test)]:.2f} | {ours[(base, test)] / ours[('fp32', test)]:.2f}x |")
for r in lines("qlora-decode.jsonl"):
    if r.get("base") == "nf4-int8":
        print(f"int8 activations vs the exact GEMV on this model: logits relative RMS error "
              f"{r['int8_logits_rel_rms_error']:.2e}, top-1 agreement {r['int8_top1_agreement']:.3f}")
EOF
