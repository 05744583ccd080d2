#!/usr/bin/env python3
"""One CPU QLoRA training step with transformers + PEFT + bitsandbytes beside ours (qlora-bench step)
on the same shape: a random Llama of TinyLlama-1.1B shape (2048/5632, GQA 32/4, vocab 32000) cut to
--layers decoder layers, NF4 base (blocksize 64, double quant), compute in --dtype on both sides
(float32, or bfloat16: the QLoRA paper's compute dtype, bnb_4bit_compute_dtype=bfloat16 with the
model in bf16), LoRA r on every q/k/v/o/gate/up/down, LoRA dropout --dropout (0.05,
lora.dropout's default) on both sides, gradient checkpointing, AdamW; median step time after
warm-up. Ours also runs the same step with a dense base in --dtype (the NF4-vs-dense ratio).

    bench-peft-cpu.py [--qlora-bench build/qlora-bench] [--dtype float32|bfloat16] [--layers 4] [--seq 256] [--r 16] [--dropout 0.05] [--threads 2]
Prints one JSON line per side and a summary line.
"""
import argparse
import json
import subprocess
import time

import torch


def peft_step_seconds(args):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=args.layers,
                         num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    dtype = getattr(torch, args.dtype)
    model = LlamaForCausalLM(config).to(dtype)
    # Every decoder linear becomes a bitsandbytes Linear4bit (NF4, double quant), quantized on .to().
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, torch.nn.Linear):
                    continue
                q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                      compute_dtype=dtype, compress_statistics=True, quant_type="nf4")
                q.weight = bnb.nn.Params4bit(lin.weight.data, requires_grad=False, quant_type="nf4",
                                             compress_statistics=True, blocksize=64)
                setattr(parent, name, q.to("cpu"))
    for p in model.parameters():
        p.requires_grad_(False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=args.r, lora_alpha=16, lora_dropout=args.dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    tokens = torch.randint(0, config.vocab_size, (1, args.seq + 1))
    inputs, labels = tokens[:, :-1], tokens[:, 1:]

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, config.vocab_size).float(), labels.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qlora-bench", default="build/qlora-bench")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout on both sides")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="compute dtype on both sides (and ours' dense baseline)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peft_s = peft_step_seconds(args)
    print(json.dumps({"bench": "step", "impl": "transformers+peft+bitsandbytes", "base": "nf4", "compute_dtype": args.dtype,
                      "layers": args.layers, "seq": args.seq, "lora_r": args.r, "lora_dropout": args.dropout, "threads": args.threads,
                      "step_ms": peft_s * 1e3}), flush=True)
    dense = "bf16" if args.dtype == "bfloat16" else "fp32"
    cmd = [args.qlora_bench, "--device", "cpu", "step", "--shape", "1b", "--layers", str(args.layers),
           "--seq", str(args.seq), "--lora-r", str(args.r), "--lora-dropout", str(args.dropout), "--optimizer", "adamw_32bit",
           "--compute-dtype", dense, "--base", "nf4", "--base", dense,
           "--warmup", str(args.warmup), "--iters", str(args.iters)]
    env = {"OMP_NUM_THREADS": str(args.threads)}
    import os
    ours = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **env}).stdout
    rows = [json.loads(l) for l in ours.splitlines() if l.startswith("{")]
    for r in rows:
        print(json.dumps(r), flush=True)
    nf4 = next(r for r in rows if r.get("base") == "nf4")
    base = next(r for r in rows if r.get("base") == dense)
    print(json.dumps({"bench": "step_vs_peft", "compute_dtype": args.dtype, "ours_nf4_ms": nf4["step_ms"],
                      f"ours_{dense}_ms": base["step_ms"], "peft_nf4_ms": peft_s * 1e3,
                      "speedup_vs_peft": peft_s * 1e3 / nf4["step_ms"],
                      f"nf4_vs_{dense}": base["step_ms"] / nf4["step_ms"],
                      f"peak_ratio_nf4_{dense}": nf4["peak_step_bytes"] / base["peak_step_bytes"]}))

if __name__ == "__main__":
    main()
