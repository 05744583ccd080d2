#!/usr/bin/env bash
# QAT experiment (issue 8, DESIGN.md section 11): how much of a fine-tune survives a 4-bit deployment,
# and does quantization-aware training win it back? One command, on the CPU, in a few minutes:
#
#   examples/qat-experiment/run.sh [STEPS]        (default 150 optimizer steps per run)
#
# Model: stories260K (../shared/data/stories260K/hf). Data: the 999 Alpaca records of
# ../shared/data/instruct/alpaca_en_demo_999.json; the last 99 are held out as eval.jsonl (rendered
# in the Alpaca template the runs train with), the first 900 train. Three fine-tunes, same recipe:
#   lora16  16-bit LoRA over the dense fp32 base (quant.enabled=false)
#   qlora   QLoRA: LoRA over the NF4 base
#   qat     QAT merge_aware over the NF4 base: the forward is Q(deq(W0) + s*B*A) with straight-through
#           gradients, so the merged-and-requantized export is exactly the trained model
# Each is exported with `qlora-export --format hf-nf4` (merged, requantized to bitsandbytes NF4) and
# every model is scored with qlora-eval on eval.jsonl. Table: eval loss of the 16-bit fine-tune
# (adapter unmerged on the base it trained on), of its 4-bit export, and the fraction of the
# fine-tune's improvement over the original model that the 4-bit export keeps:
#   retained = (L(original) - L(4-bit export)) / (L(original) - L(16-bit fine-tune)),
# with the original model scored in fp32 and in NF4.
# Outputs under runs/qat-experiment/<time>/ (each run's metrics.jsonl, exports, results.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$("$root/scripts/setup.sh" --print-python)"
build="${QLORA_BUILD_DIR:-$root/build}"
steps="${1:-150}"
model="$root/../shared/data/stories260K/hf"
records="$root/../shared/data/instruct/alpaca_en_demo_999.json"
out="$root/runs/qat-experiment/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLORA_PYTHON="$python" >/dev/null 2>&1
cmake --build "$build" --parallel "$(nproc)" --target qlora-train qlora-export qlora-eval

# Split: the first 900 records train; the last 99 become eval.jsonl, each rendered as the runs see it.
"$python" - "$records" "$out" <<'PY'
import json, sys
records, out = sys.argv[1], sys.argv[2]
rows = json.load(open(records, encoding="utf-8"))
intro = ("Below is an instruction that describes a task. Write a response that appropriately "
         "completes the request.")
intro_input = ("Below is an instruction that describes a task, paired with an input that provides "
               "further context. Write a response that appropriately completes the request.")
json.dump(rows[:900], open(f"{out}/train.json", "w", encoding="utf-8"), ensure_ascii=False)
with open(f"{out}/eval.jsonl", "w", encoding="utf-8") as f:
    for r in rows[900:]:
        text = (intro_input if r["input"] else intro) + "\n\n### Instruction:\n" + r["instruction"] + "\n\n"
        if r["input"]:
            text += "### Input:\n" + r["input"] + "\n\n"
        f.write(json.dumps({"text": text + "### Response:\n" + r["output"]}, ensure_ascii=False) + "\n")
PY

eval_loss() {  # qlora-eval ARGS... -> the loss (one JSON line on stdout)
    "$build/qlora-eval" --data "$out/eval.jsonl" --max-seq-len 256 "$@" 2>/dev/null |
        "$python" -c 'import json, sys; print(json.loads(sys.stdin.read())["loss"])'
}

common=(
    "model.path=$model" "data.train=$out/train.json" train.max_steps="$steps"
    train.micro_batch=4 train.grad_accum=2 optim.lr=1.0e-3 eval.every=0 eval.prompts=[]
    output.save_every=0 hardware.device=cpu
)
declare -A extra=(
    [lora16]="quant.enabled=false"
    [qlora]="quant.enabled=true"
    [qat]="quant.enabled=true qat.enabled=true qat.weight=nf4 qat.mode=merge_aware"
)
for name in lora16 qlora qat; do
    echo "== qlora-train $name (${extra[$name]}), $steps steps"
    # shellcheck disable=SC2086
    "$build/qlora-train" "$root/configs/quickstart.yaml" "${common[@]}" ${extra[$name]} \
        "output.dir=$out/$name" > "$out/$name.train.log"
    tail -1 "$out/$name.train.log"
    echo "== qlora-export $name -> hf-nf4"
    "$build/qlora-export" --base "$model" --adapter "$out/$name/adapter" --out "$out/$name-nf4" \
        --format hf-nf4 > "$out/$name.export.log" 2>&1
done

echo "== scoring on $(wc -l < "$out/eval.jsonl") held-out records"
base16=$(eval_loss --model "$model")
base4=$(eval_loss --model "$model" --quant nf4)
declare -A l16 l4
l16[lora16]=$(eval_loss --model "$model" --adapter "$out/lora16/adapter")
l16[qlora]=$(eval_loss --model "$model" --quant nf4 --adapter "$out/qlora/adapter")
l16[qat]=$(eval_loss --model "$model" --quant nf4 --adapter "$out/qat/adapter")
for name in lora16 qlora qat; do l4[$name]=$(eval_loss --model "$out/$name-nf4"); done

"$python" - "$out/results.md" "$base16" "$base4" "${l16[lora16]}" "${l4[lora16]}" "${l16[qlora]}" \
    "${l4[qlora]}" "${l16[qat]}" "${l4[qat]}" "$steps" <<'PY'
import math, sys
path = sys.argv[1]
base16, base4, a16, a4, b16, b4, c16, c4 = map(float, sys.argv[2:10])
steps = sys.argv[10]
rows = [("16-bit LoRA -> PTQ NF4", a16, a4, "PTQ"), ("QLoRA (NF4 base) -> requantized NF4", b16, b4, "PTQ"),
        ("QAT merge_aware (NF4) -> NF4", c16, c4, "QAT")]
lines = [f"stories260K, {steps} steps per run, eval loss (nats/token) on 99 held-out Alpaca records",
         "", f"original model: fp32 {base16:.4f} (ppl {math.exp(base16):.2f}), NF4 {base4:.4f} (ppl {math.exp(base4):.2f})", "",
         "| run | 16-bit fine-tune | 4-bit export | kind | ppl 16-bit -> 4-bit | retained vs fp32 original | retained vs NF4 original |",
         "|---|---|---|---|---|---|---|"]
def kept(base, l16, l4):
    return f"{100 * (base - l4) / (base - l16):.1f}%" if base != l16 else "n/a"
for name, l16, l4, kind in rows:
    lines.append(f"| {name} | {l16:.4f} | {l4:.4f} | {kind} | {math.exp(l16):.2f} -> {math.exp(l4):.2f} | "
                 f"{kept(base16, l16, l4)} | {kept(base4, l16, l4)} |")
lines += ["", "16-bit fine-tune: the adapter unmerged on the base it trained on (QAT: without fake quantization).",
          "4-bit export: qlora-export --format hf-nf4 scored by qlora-eval (for QAT: the model it trained).",
          "retained = (L(original) - L(4-bit export)) / (L(original) - L(16-bit fine-tune)), the original model",
          "scored in fp32, or in NF4 (what a 4-bit deployment of the untuned model gives)."]
text = "\n".join(lines)
open(path, "w").write(text + "\n")
print(text)
PY
echo "== outputs: $out (results.md, <run>/metrics.jsonl, <run>-nf4/)"
