#!/usr/bin/env python3
"""Scores qlora-export outputs with the peer tools, driven by tests/interop/test_export_interop.cpp.

  check_merged_export.py loss DATA.txt MAX_SEQ_LEN MODEL_DIR[,adapter=ADAPTER_DIR][,bnb] ...
      For each model spec: transformers loads MODEL_DIR in float32 (a bitsandbytes-4bit folder with
      ",bnb"), PEFT puts ADAPTER_DIR on it when given (unmerged), and the loss over DATA.txt is
      computed with qlora-eval's protocol (model/evaluate.h): documents split on <|endoftext|>
      lines, each BOS + SentencePiece ids, concatenated, scored in windows of MAX_SEQ_LEN inputs,
      BOS targets skipped. Prints one JSON line per spec: {"model": SPEC, "loss": ..., "tokens": ...}.

bitsandbytes' CPU 4-bit matmul refuses the tiny model's shapes, so with --bnb every Linear4bit runs
through its weight dequantized by bitsandbytes' own flat-block code (as check_bnb_checkpoint.py).
"""
import json
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch
import sentencepiece as spm
from transformers import AutoModelForCausalLM


def documents(path):
    docs, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if line.strip() == "<|endoftext|>":
                docs.append("\n".join(current).strip())
                current = []
            else:
                current.append(line)
    docs.append("\n".join(current).strip())
    return [d for d in docs if d]


def token_stream(model_dir, data):
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    stream = []
    for doc in documents(data):
        stream += [sp.bos_id()] + sp.encode(doc)
    return stream, sp.bos_id()


def windowed_loss(model, stream, max_seq_len, bos):
    total, count = 0.0, 0
    ids = torch.tensor(stream, dtype=torch.long)
    with torch.no_grad():
        for s in range(0, len(stream) - 1, max_seq_len):
            n = min(max_seq_len, len(stream) - 1 - s)
            inputs = ids[s:s + n].view(1, n)
            targets = ids[s + 1:s + n + 1].clone()
            targets[targets == bos] = -100
            logits = model(inputs).logits[0].float()
            total += torch.nn.functional.cross_entropy(logits.double(), targets, ignore_index=-100,
                                                       reduction="sum").item()
            count += int((targets != -100).sum())
    return total / count, count


def dequantize_linear4bit(model):
    import bitsandbytes as bnb
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from check_bnb_checkpoint import bnb_dequantize

    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            w = bnb_dequantize(module.weight)
            module.forward = (lambda w, b: (lambda x: torch.nn.functional.linear(x.float(), w, b)))(w, module.bias)
            n += 1
    if n == 0:
        sys.exit("bnb: the model has no Linear4bit layers")


def score(spec, data, max_seq_len):
    model_dir, *options = spec.split(",")
    options = dict(o.split("=", 1) if "=" in o else (o, True) for o in options)
    if options.get("bnb"):
        model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="cpu")
        dequantize_linear4bit(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if options.get("adapter"):
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, options["adapter"])
    model.eval()
    stream, bos = token_stream(model_dir, data)
    loss, tokens = windowed_loss(model, stream, max_seq_len, bos)
    print(json.dumps({"model": spec, "loss": loss, "tokens": tokens}), flush=True)


def main():
    if len(sys.argv) < 5 or sys.argv[1] != "loss":
        sys.exit(__doc__)
    for spec in sys.argv[4:]:
        score(spec, sys.argv[2], int(sys.argv[3]))


if __name__ == "__main__":
    main()
