#!/usr/bin/env python3
"""Golden data for the C++ Llama model: tiny random-weight Hugging Face folders and the logits
transformers computes for a few token sequences.

Run with the setup venv (it has torch, transformers, safetensors):
    ~/.cache/qlora-cpp/venv/bin/python scripts/gen_llama_golden.py [--out tests/data/llama]

Writes, per case, <out>/<case>/{config.json, model.safetensors, golden.safetensors}.
Weights are stored in BF16 (halves the committed bytes) and upcast exactly to float32, where
transformers (eager attention, fp32) computes the reference logits. golden.safetensors holds
tokens_<i> (int64 [B, T]) and logits_<i> (float32 [B, T, V]) for i = 0, 1, 2.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

# Each model stays tiny (hidden 32-48, 2 layers, vocab <= 300) so the folder is a few tens of kB.
CASES = {
    # multi-head attention, untied lm_head, odd vocabulary
    "mha": dict(cls="llama", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=101, tie_word_embeddings=False),
    # grouped-query attention (3 query heads per kv head), tied embeddings
    "gqa_tied": dict(cls="llama", hidden_size=48, intermediate_size=80, num_attention_heads=6,
                     num_key_value_heads=2, vocab_size=257, tie_word_embeddings=True),
    # Llama 3.1 rope scaling; explicit head_dim (16) different from hidden/heads (12); a small
    # original context so low, medium and high frequency bands all occur
    "llama3_rope": dict(cls="llama", hidden_size=48, intermediate_size=96, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=16, vocab_size=300, tie_word_embeddings=False,
                        rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
                                             low_freq_factor=1.0, high_freq_factor=4.0,
                                             original_max_position_embeddings=64),
                        max_position_embeddings=512),
    # linear rope scaling, written as a transformers 4.x config (rope_theta + rope_scaling "type")
    "linear_rope_legacy": dict(cls="llama", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=263, tie_word_embeddings=True,
                               rope_parameters=dict(rope_type="linear", rope_theta=500000.0, factor=4.0),
                               legacy_config=True),
    # Qwen2: q/k/v bias, no o bias
    "qwen2_bias": dict(cls="qwen2", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=199, tie_word_embeddings=True,
                       rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
    # Llama attention_bias (q, k, v and o) and mlp_bias
    "llama_bias": dict(cls="llama", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       num_key_value_heads=1, vocab_size=128, tie_word_embeddings=False,
                       attention_bias=True, mlp_bias=True, rms_norm_eps=1e-5),
}


def make_model(spec, seed):
    spec = dict(spec)
    cls = spec.pop("cls")
    spec.pop("legacy_config", None)
    common = dict(num_hidden_layers=2, bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    common.update(spec)
    if cls == "qwen2":
        config = Qwen2Config(**common)
        model = Qwen2ForCausalLM(config)
    else:
        config = LlamaConfig(**common)
        model = LlamaForCausalLM(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # projections and biases: large enough that attention is not uniform
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5 * (2.0 if p.dim() == 2 else 0.3))
            # Round to bf16 so the committed bf16 file holds exactly these values.
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.eval()
    return model


def write_legacy_config(path):
    """Rewrites a transformers 5 config.json in the 4.x style (rope_theta + rope_scaling)."""
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    rope["type"] = rope.pop("rope_type")
    cfg["rope_scaling"] = rope
    cfg["torch_dtype"] = cfg.pop("dtype", "bfloat16")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "llama"))
    args = ap.parse_args()
    for index, (case, spec) in enumerate(CASES.items()):
        folder = os.path.join(args.out, case)
        os.makedirs(folder, exist_ok=True)
        model = make_model(spec, seed=1000 + index)
        vocab = model.config.vocab_size
        # Dense bf16 tensors with HF names; tied lm_head left out as transformers does.
        state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()
                 if not (k == "lm_head.weight" and model.config.tie_word_embeddings)}
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        model.config.dtype = torch.bfloat16
        model.config.to_json_file(os.path.join(folder, "config.json"))
        if spec.get("legacy_config"):
            write_legacy_config(os.path.join(folder, "config.json"))

        g = torch.Generator().manual_seed(7 + index)
        sequences = [torch.randint(0, vocab, (1, 7), generator=g),
                     torch.randint(0, vocab, (1, 24), generator=g),  # long enough to see the rope bands
                     torch.randint(0, vocab, (2, 8), generator=g)]  # a batch of two
        golden = {}
        with torch.no_grad():
            for i, tokens in enumerate(sequences):
                golden[f"tokens_{i}"] = tokens.to(torch.int64).contiguous()
                golden[f"logits_{i}"] = model(tokens).logits.to(torch.float32).contiguous()
        save_file(golden, os.path.join(folder, "golden.safetensors"))
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"{case}: {sum(p.numel() for p in model.parameters())} params, {size} bytes")


if __name__ == "__main__":
    main()
