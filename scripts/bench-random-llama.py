#!/usr/bin/env python3
"""Saves a random-weight Llama of TinyLlama-1.1B shape as a Hugging Face folder (float32
safetensors) for scripts/bench-llamacpp.sh: the same model our qlora-bench loads and llama.cpp's
convert_hf_to_gguf.py converts. A SentencePiece tokenizer.model (stories260K's 512 pieces) is copied
in because the converter needs one; it pads the vocabulary to config.vocab_size.

    bench-random-llama.py OUT_DIR --tokenizer tok512.model [--layers 22]
"""
import argparse
import pathlib
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--tokenizer", required=True, help="a SentencePiece .model file")
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    config = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=args.layers,
                         num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                         max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                         tie_word_embeddings=False, initializer_range=0.02, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).to(torch.float32)
    out = pathlib.Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.copyfile(args.tokenizer, tmp / "tokenizer.model")
    (tmp / "tokenizer_config.json").write_text('{"tokenizer_class": "LlamaTokenizer", "add_bos_token": true}\n')
    tmp.rename(out)
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters to {out}")


if __name__ == "__main__":
    main()
