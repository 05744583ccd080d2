#!/usr/bin/env python3
"""Writes the optimizer goldens in tests/data/optim/ from the setup venv:
torch.optim.AdamW over 10 steps; bitsandbytes AdamW8bit over 10 steps on its CPU backend, once as
shipped and once with the state requantization swapped for bitsandbytes' reference nearest-code rule
(see nearest_quantize_blockwise); and bitsandbytes' signed/unsigned dynamic maps. Run: ~/.cache/qlora-cpp/venv/bin/python scripts/gen_optim_golden.py
"""
import os
import warnings

import torch
from safetensors.torch import save_file

warnings.filterwarnings("ignore")
import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "optim")
STEPS = 10
# A warmup-then-decay sequence: the optimizer receives a new lr every step, as from a schedule.
LRS = [1e-3 * min(1.0, (s + 1) / 3) * (1.0 - 0.05 * s) for s in range(STEPS)]
HYPER = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def pattern(shape, tensor, step, scale):
    """Exact pseudo-random values in [-scale, scale): integer hash -> k/32768 - 1 (exact in float32),
    times scale in float64, cast to float32. tests/optim/optim_golden.h computes the same bits, so
    the goldens need not store inputs."""
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.int64)
    k = (i * 2654435761 + step * 40503 + tensor * 9973 + 12345) % 65536
    return ((k.double() / 32768.0 - 1.0) * scale).float().reshape(shape)


def make_case(shapes):
    params = [pattern(s, t, 1000, 1.0) for t, s in enumerate(shapes)]
    # grads[step][t]; scaled differently per tensor so blocks see varied magnitudes
    grads = [[pattern(s, t, step, 0.1 * (t + 1)) for t, s in enumerate(shapes)] for step in range(STEPS)]
    return params, grads


def run(opt_factory, params0, grads):
    params = [torch.nn.Parameter(p.clone()) for p in params0]
    opt = opt_factory(params)
    history = [[] for _ in params]
    for s in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = LRS[s]
        for p, gr in zip(params, grads[s]):
            p.grad = gr.clone()
        opt.step()
        for i, p in enumerate(params):
            history[i].append(p.detach().clone())
    return params, opt, history


def common(out, params0, grads):
    out["lrs"] = torch.tensor(LRS, dtype=torch.float64)
    out["hyper"] = torch.tensor([HYPER["betas"][0], HYPER["betas"][1], HYPER["eps"], HYPER["weight_decay"]],
                                dtype=torch.float64)
    out["shapes"] = torch.tensor([p.numel() for p in params0], dtype=torch.int64)


def torch_adamw():
    shapes = [(37, 53), (300, 20), (7,)]
    params0, grads = make_case(shapes)
    params, opt, hist = run(lambda ps: torch.optim.AdamW(ps, lr=LRS[0], **HYPER), params0, grads)
    out = {}
    common(out, params0, grads)
    for i, p in enumerate(params):
        out[f"p{i}.step1"] = hist[i][0].contiguous()
        out[f"p{i}.final"] = hist[i][-1].contiguous()
        out[f"p{i}.m"] = opt.state[p]["exp_avg"].contiguous()
        out[f"p{i}.v"] = opt.state[p]["exp_avg_sq"].contiguous()
    save_file(out, os.path.join(OUT, "adamw_torch.safetensors"))


def nearest_quantize_blockwise(A, code, absmax_out, out_uint8, blocksize):
    """bitsandbytes' reference rule (backends/default/ops.py quantize_blockwise, and what its CUDA
    kernel computes): scale by the block absmax (reciprocal for full blocks), nearest map entry by
    bucketize over midpoints. Its CPU C library instead walks a binary search tuned for the signed
    map, which picks a non-nearest code for ~0.1% of m and ~3% of v (tiny v especially)."""
    flat = A.reshape(-1).float()
    n = flat.numel()
    rem = n % blocksize
    full = n - rem
    com = flat[:full].reshape(-1, blocksize)
    absmax = com.abs().max(dim=-1)[0]
    scaled = torch.clamp(com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = flat[full:].abs().max()
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(flat[full:] / am.clamp(min=1e-38), -1, 1)])
    q = torch.bucketize(scaled, (code[:-1] + code[1:]) / 2, out_int32=True).to(torch.uint8)
    out_uint8.copy_(q.reshape(out_uint8.shape))
    absmax_out.copy_(absmax)


def bnb_adamw8bit(nearest):
    # 8192 = 32 full blocks; 4099 = 16 full blocks + a tail of 3; 2000 < 4096 stays 32-bit.
    shapes = [(32, 256), (4099,), (50, 40)]
    params0, grads = make_case(shapes)
    import bitsandbytes.backends.cpu.ops as cpu_ops
    original = cpu_ops._quant_blockwise_fp32_direct
    if nearest:
        cpu_ops._quant_blockwise_fp32_direct = nearest_quantize_blockwise
    try:
        params, opt, hist = run(lambda ps: bnb.optim.AdamW8bit(ps, lr=LRS[0], **HYPER), params0, grads)
    finally:
        cpu_ops._quant_blockwise_fp32_direct = original
    out = {}
    common(out, params0, grads)
    for i, p in enumerate(params):
        st = opt.state[p]
        out[f"p{i}.step1"] = hist[i][0].contiguous()
        out[f"p{i}.final"] = hist[i][-1].contiguous()
        if st["state1"].dtype == torch.uint8:
            out[f"p{i}.m_codes"] = st["state1"].reshape(-1).contiguous()
            out[f"p{i}.v_codes"] = st["state2"].reshape(-1).contiguous()
            out[f"p{i}.m_absmax"] = st["absmax1"].contiguous()
            out[f"p{i}.v_absmax"] = st["absmax2"].contiguous()
        else:
            out[f"p{i}.m"] = st["state1"].contiguous()
            out[f"p{i}.v"] = st["state2"].contiguous()
    name = "adamw8bit_bnb_nearest.safetensors" if nearest else "adamw8bit_bnb.safetensors"
    save_file(out, os.path.join(OUT, name))


def maps():
    save_file({"signed": F.create_dynamic_map(signed=True), "unsigned": F.create_dynamic_map(signed=False)},
              os.path.join(OUT, "dynamic_maps.safetensors"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch_adamw()
    bnb_adamw8bit(nearest=False)
    bnb_adamw8bit(nearest=True)
    maps()
    print("bitsandbytes", bnb.__version__, "torch", torch.__version__, "->", os.path.normpath(OUT))
