#!/usr/bin/env python3
"""Our GGUF export of stories260K against llama.cpp's own file for the same model.

  check_gguf_reference.py OURS_F16.gguf REFERENCE.gguf

REFERENCE is ../shared/data/stories260K/stories260K.gguf, the file llama.cpp's CI runs (F32, written
by llama.cpp's converter from the llama2.c checkpoint; PROVENANCE.md). Our file was exported from the
Hugging Face folder of the same weights, so this checks, independently of our own permutation code,
that Q/K come out in llama.cpp's RoPE row order and every tensor lands under llama.cpp's name:
  - every reference tensor is in ours (output.weight only when the embeddings are not tied; the
    reference stores it and it must then equal token_embd), same ggml shape;
  - matrices: ours (F16) equal the reference rounded to F16, bit for bit; norms (F32) equal exactly;
  - tokenizer tokens, scores, token types and bos/eos/unk ids equal; llama.* hyperparameters equal
    except llama.context_length (the reference says 2048; the model was trained at 512 and config.json
    says 512: PROVENANCE.md's caveat).
Prints one summary line; exits non-zero with the first problem.
"""
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import numpy as np
from gguf import GGUFReader


def fail(msg):
    sys.exit(f"check_gguf_reference: {msg}")


def value(reader, key):
    f = reader.fields.get(key)
    if f is None:
        fail(f"key {key} missing")
    return [f.parts[i].tolist() for i in f.data]


def main():
    ours_path, ref_path = sys.argv[1:3]
    ours, ref = GGUFReader(ours_path), GGUFReader(ref_path)
    ot = {t.name: t for t in ours.tensors}
    rt = {t.name: t for t in ref.tensors}
    tied = "output.weight" not in ot
    for name, r in rt.items():
        src = "token_embd.weight" if (name == "output.weight" and tied) else name
        if src not in ot:
            fail(f"tensor {name} of the reference is not in ours")
        o = ot[src]
        if list(o.shape) != list(r.shape):
            fail(f"{name}: ggml shape {list(o.shape)} vs the reference's {list(r.shape)}")
        ref_values = np.asarray(r.data, dtype=np.float32).reshape(-1)
        our_values = np.asarray(o.data).astype(np.float32).reshape(-1)
        if o.tensor_type.name == "F16":
            ref_values = ref_values.astype(np.float16).astype(np.float32)
        elif o.tensor_type.name != "F32":
            fail(f"{name}: expected an F16 or F32 tensor in ours, found {o.tensor_type.name}")
        if not np.array_equal(our_values, ref_values):
            worst = int(np.argmax(np.abs(our_values - ref_values)))
            fail(f"{name}: differs from the reference, e.g. element {worst}: {our_values[worst]} vs {ref_values[worst]}")
    extra = sorted(set(ot) - set(rt))
    if extra:
        fail(f"tensors the reference does not have: {extra}")

    for key in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.unknown_token_id", "general.architecture", "llama.embedding_length",
                "llama.block_count", "llama.feed_forward_length", "llama.rope.dimension_count",
                "llama.attention.head_count", "llama.attention.head_count_kv",
                "llama.attention.layer_norm_rms_epsilon"):
        if value(ours, key) != value(ref, key):
            fail(f"{key} differs: ours {str(value(ours, key))[:80]} vs reference {str(value(ref, key))[:80]}")
    print(f"check_gguf_reference: {len(rt)} reference tensors matched ({'tied output = token_embd' if tied else 'output'}), "
          f"vocab of {len(value(ref, 'tokenizer.ggml.tokens'))} tokens and hyperparameters equal; all as expected")


if __name__ == "__main__":
    main()
