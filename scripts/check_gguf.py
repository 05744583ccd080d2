#!/usr/bin/env python3
"""GGUF interop, driven by tests/interop/test_gguf_export.cpp.

  check_gguf.py GGUF_FILE HF_DIR TYPE OURS.safetensors MODEL_NAME
      The gguf package (llama.cpp's gguf-py) reads GGUF_FILE (TYPE f16|q8_0|q4_0, exported from the
      Hugging Face Llama folder HF_DIR). Checks: every llama.* / general.* / tokenizer.ggml.* key
      with its value and value type; every tensor with its name, ggml shape and type; F32/F16
      tensors equal the source (Q/K rows permuted back); gguf's own dequantize of each Q8_0/Q4_0
      tensor equals the values our dequantizer gave (OURS.safetensors, keyed by GGUF name) exactly,
      and gguf's own quantizer gives our bytes; the vocabulary equals the SentencePiece model's.
      Prints one summary line; exits non-zero with the first problem.
"""
import json
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import numpy as np
import sentencepiece as spm
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT
from gguf.quants import dequantize, quantize
from safetensors.numpy import load_file

FILE_TYPE = {"f16": 1, "q4_0": 2, "q8_0": 7}
MATRIX_TYPE = {"f16": QT.F16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0}


def fail(msg):
    sys.exit(f"check_gguf: {msg}")


def permute(w, n_head):  # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_keys(r, cfg, qtype, model_name, sp):
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    want = {
        "general.architecture": (VT.STRING, "llama"),
        "general.name": (VT.STRING, model_name),
        "general.file_type": (VT.UINT32, FILE_TYPE[qtype]),
        "general.quantization_version": (VT.UINT32, 2),
        "general.alignment": (VT.UINT32, 32),
        "llama.context_length": (VT.UINT32, cfg["max_position_embeddings"]),
        "llama.embedding_length": (VT.UINT32, cfg["hidden_size"]),
        "llama.block_count": (VT.UINT32, cfg["num_hidden_layers"]),
        "llama.feed_forward_length": (VT.UINT32, cfg["intermediate_size"]),
        "llama.rope.dimension_count": (VT.UINT32, head_dim),
        "llama.attention.head_count": (VT.UINT32, cfg["num_attention_heads"]),
        "llama.attention.head_count_kv": (VT.UINT32, cfg["num_key_value_heads"]),
        "llama.attention.layer_norm_rms_epsilon": (VT.FLOAT32, np.float32(cfg["rms_norm_eps"])),
        "llama.rope.freq_base": (VT.FLOAT32, np.float32(cfg.get("rope_theta", 10000.0))),
        "llama.vocab_size": (VT.UINT32, cfg["vocab_size"]),
        "tokenizer.ggml.model": (VT.STRING, "llama"),
        "tokenizer.ggml.bos_token_id": (VT.UINT32, sp.bos_id()),
        "tokenizer.ggml.eos_token_id": (VT.UINT32, sp.eos_id()),
        "tokenizer.ggml.unknown_token_id": (VT.UINT32, sp.unk_id()),
        "tokenizer.ggml.add_bos_token": (VT.BOOL, True),
        "tokenizer.ggml.add_eos_token": (VT.BOOL, False),
    }
    for key, (vtype, value) in want.items():
        if key not in r.fields:
            fail(f"key {key} missing")
        field = r.fields[key]
        if field.types[0] != vtype:
            fail(f"key {key}: type {field.types[0].name}, expected {vtype.name}")
        got = field.contents()
        if got != value:
            fail(f"key {key}: {got!r}, expected {value!r}")
    if sp.pad_id() < 0 and "tokenizer.ggml.padding_token_id" in r.fields:
        fail("padding_token_id written but the tokenizer has no pad token")
    return len(want)


def check_vocab(r, sp, n_vocab):
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    scores = r.fields["tokenizer.ggml.scores"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    if r.fields["tokenizer.ggml.scores"].types != [VT.ARRAY, VT.FLOAT32]:
        fail("tokenizer.ggml.scores is not an array of float32")
    if r.fields["tokenizer.ggml.token_type"].types != [VT.ARRAY, VT.INT32]:
        fail("tokenizer.ggml.token_type is not an array of int32")
    if not len(tokens) == len(scores) == len(types) == n_vocab:
        fail(f"vocab lengths {len(tokens)}/{len(scores)}/{len(types)}, expected {n_vocab}")
    for i in range(sp.vocab_size()):
        t = 1
        if sp.IsUnknown(i):
            t = 2
        elif sp.IsControl(i):
            t = 3
        elif sp.IsUnused(i):
            t = 5
        elif sp.IsByte(i):
            t = 6
        if tokens[i] != sp.IdToPiece(i) or np.float32(scores[i]) != np.float32(sp.GetScore(i)) or types[i] != t:
            fail(f"token {i}: ({tokens[i]!r}, {scores[i]}, {types[i]}) expected "
                 f"({sp.IdToPiece(i)!r}, {sp.GetScore(i)}, {t})")
    ids = sp.EncodeAsIds("Once upon a time, there was a little girl.")
    if [tokens[i] for i in ids] != sp.EncodeAsPieces("Once upon a time, there was a little girl."):
        fail("pieces of an encoded sentence differ")


def expected_tensors(cfg, qtype):
    """GGUF name -> (HF name, ggml type, permute heads) by the rules in src/export/gguf_export.h."""
    tied = cfg.get("tie_word_embeddings", False)

    def mat(row, output=False):
        t = MATRIX_TYPE[qtype]
        if qtype == "q4_0" and output:
            t = QT.Q8_0
        return QT.F16 if row % 32 else t

    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    out = {"token_embd.weight": ("model.embed_tokens.weight", mat(h, tied), 0),
           "output_norm.weight": ("model.norm.weight", QT.F32, 0)}
    if not tied:
        out["output.weight"] = ("lm_head.weight", mat(h, True), 0)
    head_dim = cfg.get("head_dim", h // cfg["num_attention_heads"])
    for i in range(cfg["num_hidden_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        out[b + "attn_norm.weight"] = (p + "input_layernorm.weight", QT.F32, 0)
        out[b + "ffn_norm.weight"] = (p + "post_attention_layernorm.weight", QT.F32, 0)
        out[b + "attn_q.weight"] = (p + "self_attn.q_proj.weight", mat(h), cfg["num_attention_heads"])
        out[b + "attn_k.weight"] = (p + "self_attn.k_proj.weight", mat(h), cfg["num_key_value_heads"])
        out[b + "attn_v.weight"] = (p + "self_attn.v_proj.weight", mat(h), 0)
        out[b + "attn_output.weight"] = (p + "self_attn.o_proj.weight", mat(cfg["num_attention_heads"] * head_dim), 0)
        out[b + "ffn_gate.weight"] = (p + "mlp.gate_proj.weight", mat(h), 0)
        out[b + "ffn_up.weight"] = (p + "mlp.up_proj.weight", mat(h), 0)
        out[b + "ffn_down.weight"] = (p + "mlp.down_proj.weight", mat(ff), 0)
    return out


def check_tensors(r, cfg, qtype, hf, ours):
    want = expected_tensors(cfg, qtype)
    got = {t.name: t for t in r.tensors}
    if set(got) != set(want):
        fail(f"tensor names differ: missing {sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}")
    counts = {}
    for name, (hf_name, ttype, heads) in want.items():
        t = got[name]
        src = hf[hf_name].astype(np.float32)
        if t.tensor_type != ttype:
            fail(f"{name}: type {t.tensor_type.name}, expected {ttype.name}")
        if list(t.shape) != list(reversed(src.shape)):
            fail(f"{name}: ggml shape {list(t.shape)}, expected {list(reversed(src.shape))}")
        if t.data_offset % 32:
            fail(f"{name}: data offset {t.data_offset} is not 32-byte aligned")
        if heads:
            src = permute(src, heads)
        values = dequantize(t.data, t.tensor_type).reshape(src.shape)
        if ttype == QT.F32:
            ok = np.array_equal(values, src)
        elif ttype == QT.F16:
            ok = np.array_equal(values, src.astype(np.float16).astype(np.float32))
        else:
            # gguf's dequantize of our blocks == our dequantize, bit for bit; and gguf's reference
            # quantizer gives our bytes
            if not np.array_equal(values.view(np.uint32), ours[name].reshape(src.shape).view(np.uint32)):
                diff = np.abs(values - ours[name].reshape(src.shape)).max()
                fail(f"{name}: gguf dequantize differs from ours by up to {diff}")
            if not np.array_equal(quantize(src, ttype).reshape(-1), np.asarray(t.data).reshape(-1)):
                fail(f"{name}: gguf.quants.quantize gives other {ttype.name} bytes than ours")
            step = np.abs(src).max() / (127 if ttype == QT.Q8_0 else 7)
            ok = np.abs(values - src).max() <= step
        if not ok:
            fail(f"{name}: {ttype.name} values differ from the source")
        if name in ours and ttype in (QT.F32, QT.F16) and not np.array_equal(values, ours[name].reshape(src.shape)):
            fail(f"{name}: our decode differs from gguf's")
        counts[ttype.name] = counts.get(ttype.name, 0) + 1
    return counts


def main(path, hf_dir, qtype, ours_path, model_name):
    r = GGUFReader(path)
    if r.fields["GGUF.version"].contents() != 3:
        fail("not GGUF version 3")
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(hf_dir, "tokenizer.model"))
    hf = load_file(os.path.join(hf_dir, "model.safetensors"))
    ours = load_file(ours_path)
    n_keys = check_keys(r, cfg, qtype, model_name, sp)
    check_vocab(r, sp, cfg["vocab_size"])
    counts = check_tensors(r, cfg, qtype, hf, ours)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"gguf read {os.path.basename(path)}: {n_keys} keys, {len(r.tensors)} tensors ({kinds}), "
          f"{sp.vocab_size()} tokens: all as expected")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:6])
