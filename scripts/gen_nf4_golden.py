#!/usr/bin/env python3
"""Regenerates tests/data/nf4/golden.safetensors: bitsandbytes' own 4-bit quantization of fixed
inputs, the reference our NF4/FP4 code must reproduce byte for byte.

Run with the setup venv:  ~/.cache/qlora-cpp/venv/bin/python scripts/gen_nf4_golden.py
For each case NAME the file holds
  NAME.input      the input tensor (its own dtype; shapes include odd sizes and tail blocks)
  NAME.packed     uint8 [(n+1)//2, 1]    bitsandbytes.functional.quantize_4bit(...)[0]
  NAME.absmax     float32 [blocks]       (no double quant) or uint8 [blocks] (double quant)
  NAME.nested_absmax, NAME.offset        (double quant) float32
  NAME.absmax_nearest  uint8 [blocks]    (double quant) the nested codes by bitsandbytes' exact
                                         nearest rule (its default backend and CUDA kernel:
                                         bucketize on the map's midpoints); bitsandbytes' native
                                         CPU library approximates that rule with a 65536-bin table
  NAME.dequant    bitsandbytes' dequantization of the state, in the input dtype, by its flat-block
                  torch path (_dequantize_4bit_compute, as its CUDA kernel computes). Its native
                  AVX-512 CPU kernel in 0.50.2 indexes absmax per row and is wrong when the last
                  dimension is not a multiple of the blocksize, so it is not used here.
and the metadata maps NAME to {"quant_type", "blocksize", "double_quant", "shape", "dtype"}.
The dynamic map is stored once as "dynamic_map" (create_dynamic_map(signed=True)).
"""
import json
import os
import sys

import torch
import bitsandbytes
import bitsandbytes.functional as F
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "nf4", "golden.safetensors")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def nearest_codes(values: torch.Tensor, code: torch.Tensor, blocksize: int) -> torch.Tensor:
    """bitsandbytes' exact rule for 8-bit blockwise codes (default backend / CUDA)."""
    n = values.numel()
    rem = n % blocksize
    full = n - rem
    a = values[:full].reshape(-1, blocksize)
    am = a.abs().max(dim=-1)[0]
    scaled = torch.clamp(a * (1.0 / am.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am_t = values[full:].abs().max().clamp(min=1e-38)
        scaled = torch.cat([scaled, torch.clamp(values[full:] / am_t, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    return torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8)


def make_input(kind: str, shape, dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = 1
    for d in shape:
        n *= d
    if kind == "randn":
        x = torch.randn(n, generator=g) * 0.02
        x[:: 97] *= 25.0  # outliers, as real weights have
    elif kind == "zeros_inside":
        x = torch.randn(n, generator=g)
        x[64:128] = 0.0  # an all-zero full block
        x[-(n % 64 or 64):] = 0.0  # an all-zero tail block
    elif kind == "midpoints":
        # Values exactly on the codebook midpoints (absmax 1): the tie rule decides them.
        code = F.get_4bit_type(seed_to_type[seed], device="cpu")
        s = torch.sort(code).values
        mids = (s[:-1] + s[1:]) / 2
        x = torch.zeros(n)
        vals = torch.cat([torch.tensor([1.0]), mids, -mids, mids * 0.5])
        x[: vals.numel()] = vals
    else:
        raise ValueError(kind)
    return x.reshape(shape).to(dtype)


seed_to_type = {101: "nf4", 102: "fp4"}


def cases():
    out = []
    for i, bs in enumerate([32, 64, 128, 256, 512, 1024, 2048, 4096]):
        out.append((f"nf4_f32_bs{bs}_tail_dq", "nf4", bs, True, (3 * bs + 17,), "float32", "randn", i))
    for quant in ("nf4", "fp4"):
        for dname in ("float32", "float16", "bfloat16"):
            for dq in (False, True):
                out.append((f"{quant}_{dname}_37x65_{'dq' if dq else 'nodq'}", quant, 64, dq, (37, 65), dname,
                            "randn", 10 + len(out)))
    out.append(("nf4_bf16_bs32_nested_tail_dq", "nf4", 32, True, (32 * 300 + 5,), "bfloat16", "randn", 50))
    out.append(("nf4_bf16_256x160_dq", "nf4", 64, True, (256, 160), "bfloat16", "randn", 51))
    out.append(("fp4_f32_bs128_dq", "fp4", 128, True, (40, 50), "float32", "randn", 52))
    for quant in ("nf4", "fp4"):
        for dq in (False, True):
            out.append((f"{quant}_f32_zero_blocks_{'dq' if dq else 'nodq'}", quant, 64, dq, (64 * 5 + 10,),
                        "float32", "zeros_inside", 60))
    out.append(("nf4_f32_midpoint_ties", "nf4", 64, False, (64,), "float32", "midpoints", 101))
    out.append(("fp4_f32_midpoint_ties", "fp4", 64, False, (64,), "float32", "midpoints", 102))
    out.append(("nf4_f32_single", "nf4", 64, False, (1,), "float32", "randn", 70))
    return out


def main():
    tensors = {}
    meta = {}
    dyn = F.create_dynamic_map(signed=True)
    tensors["dynamic_map"] = dyn
    for name, quant, bs, dq, shape, dname, kind, seed in cases():
        x = make_input(kind, shape, DTYPES[dname], seed)
        packed, state = F.quantize_4bit(x, blocksize=bs, compress_statistics=dq, quant_type=quant)
        tensors[f"{name}.input"] = x.contiguous()
        tensors[f"{name}.packed"] = packed.contiguous()
        tensors[f"{name}.absmax"] = state.absmax.contiguous()
        if dq:
            tensors[f"{name}.nested_absmax"] = state.state2.absmax.contiguous()
            tensors[f"{name}.offset"] = state.offset.reshape(1).float().contiguous()
            # Recompute the first-level absmax the way quantize_4bit does, then the exact codes.
            _, first = torch.ops.bitsandbytes.quantize_4bit.default(x, bs, quant, torch.uint8)
            tensors[f"{name}.first_absmax"] = first.contiguous()
            tensors[f"{name}.absmax_nearest"] = nearest_codes(first - state.offset, state.state2.code, 256)
            assert torch.equal(state.state2.code, dyn)
        absmax = state.absmax
        if dq:
            absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
        tensors[f"{name}.dequant"] = _dequantize_4bit_compute(
            packed.reshape(-1), absmax.float(), state.code, bs, tuple(shape), DTYPES[dname]).contiguous()
        meta[name] = {"quant_type": quant, "blocksize": bs, "double_quant": dq, "shape": list(shape),
                      "dtype": dname}
    meta_str = {"cases": json.dumps(meta), "bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata=meta_str)
    print(f"wrote {len(meta)} cases, {os.path.getsize(OUT)} bytes to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
