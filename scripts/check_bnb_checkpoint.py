#!/usr/bin/env python3
"""Checks a bitsandbytes-4bit folder written by qlora-quantize with the peer tools:
transformers + bitsandbytes load it (CPU), every Linear4bit's QuantState dequantizes to exactly the
weights in OURS (a safetensors file of our float32 dequantization), and the model runs a forward pass.

usage: check_bnb_checkpoint.py MODEL_DIR OURS.safetensors
Prints one line "checked N quantized linears" on success; exits 1 with the first mismatch.
bitsandbytes' dequantization is taken through its flat-block torch path: its native AVX-512 CPU
kernel (0.50.2) indexes absmax per row and is wrong when in_features is not a multiple of the
blocksize (stories260K's down_proj has 172 inputs), which is a bitsandbytes bug, not a format issue.
"""
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # bitsandbytes torch.compiles its dequant per shape: slow, same result

import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def bnb_dequantize(weight) -> torch.Tensor:
    qs = weight.quant_state
    absmax = qs.absmax
    if qs.nested:
        absmax = F.dequantize_blockwise(qs.absmax, qs.state2) + qs.offset
    return _dequantize_4bit_compute(weight.data.reshape(-1).view(torch.uint8), absmax.float(), qs.code,
                                    qs.blocksize, tuple(qs.shape), torch.float32)


def main():
    model_dir, ours_path = sys.argv[1], sys.argv[2]
    ours = load_file(ours_path)
    model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="cpu")
    checked = 0
    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        key = name + ".weight"
        if key not in ours:
            sys.exit(f"{key}: quantized by transformers but absent from {ours_path}")
        theirs = bnb_dequantize(module.weight)
        if theirs.shape != ours[key].shape or not torch.equal(theirs, ours[key]):
            diff = (theirs.float() - ours[key].float()).abs().max().item()
            sys.exit(f"{key}: bitsandbytes dequantizes to different values (max abs diff {diff})")
        checked += 1
    if checked != len(ours):
        sys.exit(f"only {checked} of {len(ours)} weights were loaded as Linear4bit")
    # bitsandbytes' CPU 4-bit matmul refuses the tiny model's shapes ("N must be divisible by
    # block_n"), so the forward runs each Linear4bit through its dequantized weight instead.
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.forward = (lambda m: (lambda x: torch.nn.functional.linear(x, bnb_dequantize(m.weight), m.bias)))(module)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 403, 407, 261, 378]])).logits
    if not torch.isfinite(logits).all():
        sys.exit("forward pass produced non-finite logits")
    print(f"checked {checked} quantized linears; forward logits shape {list(logits.shape)}, "
          f"next token after BOS {logits[0, 0].argmax().item()}")


if __name__ == "__main__":
    main()
