#!/usr/bin/env bash
# The README's main job on a fresh machine: set up, build (Release), then run what qlora-cpp does
# today on the shipped tiny real model (stories260K from ../shared/data, CPU):
#   quantize it to NF4 in the bitsandbytes layout, generate from the 4-bit model, and show
#   qlora-train's usage (the training loop lands with the trainer issue).
# QLORA_MODEL overrides the model folder; QLORA_BUILD_DIR the build folder.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/scripts/setup.sh" --print-python)"
build="${QLORA_BUILD_DIR:-$root/build}"
model="${QLORA_MODEL:-$root/../shared/data/stories260K/hf}"
runs="$root/runs/quickstart"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLORA_PYTHON="$python" >/dev/null
cmake --build "$build" --parallel "$(nproc)"

mkdir -p "$runs"
echo "== qlora-quantize: $model -> $runs/model-nf4"
"$build/qlora-quantize" --model "$model" --out "$runs/model-nf4" --overwrite
if [[ -x "$build/qlora-generate" ]]; then
    echo "== qlora-generate from the NF4 model (greedy)"
    "$build/qlora-generate" --model "$runs/model-nf4" --prompt "Once upon a time" --max-new-tokens 48 --temperature 0
fi
echo "== qlora-train --help"
"$build/qlora-train" --help
