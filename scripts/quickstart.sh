#!/usr/bin/env bash
# The README's main job on a fresh machine: set up, build (Release), fine-tune the shipped tiny
# real model (stories260K, NF4 base + LoRA, CPU) on a 100-record Stanford Alpaca sample with
# configs/quickstart.yaml, then generate with the trained adapter and compare eval loss.
# QLORA_BUILD_DIR overrides the build folder. Each run writes a new runs/quickstart/<time>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/setup.sh" --print-python)"
build="${QLORA_BUILD_DIR:-$root/build}"
model="$root/../shared/data/stories260K/hf"
run="$root/runs/quickstart/$(date +%Y%m%d-%H%M%S)"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLORA_PYTHON="$python" >/dev/null
# Only the three tools it runs: the test binaries are scripts/test.sh's business.
cmake --build "$build" --parallel "$(nproc)" --target qlora-train qlora-generate qlora-eval

echo "== qlora-train configs/quickstart.yaml -> $run"
"$build/qlora-train" "$root/configs/quickstart.yaml" "output.dir=$run"

prompt=$'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nGive three tips for staying healthy.\n\n### Response:\n'
echo "== qlora-generate with the adapter (greedy)"
"$build/qlora-generate" --model "$model" --quant nf4 --adapter "$run/adapter" --prompt "$prompt" \
    --max-new-tokens 48 --temperature 0
echo
echo "== document-stream loss on TinyStories text: NF4 base, then + adapter (an instruction tune moves it)"
"$build/qlora-eval" --model "$model" --quant nf4 --data "$root/../shared/data/text/tinystories_sample_cs336.txt"
"$build/qlora-eval" --model "$model" --quant nf4 --adapter "$run/adapter" \
    --data "$root/../shared/data/text/tinystories_sample_cs336.txt"
echo "== qlora-eval --run: the run's own eval (same samples and masks), the loss of its last eval line"
"$build/qlora-eval" --run "$run"
echo "== outputs: $run (metrics.jsonl, config.resolved.yaml, checkpoints/, adapter/)"
