#!/usr/bin/env python3
"""Checks a GGUF file's byte-level BPE vocabulary against the tokenizer folder it came from.

usage: check_gguf_bpe_vocab.py FILE.gguf TOKENIZER_DIR PRE_NAME [TEXTS.jsonl]

With llama.cpp's `gguf` reader: tokenizer.ggml.model is "gpt2" and .pre is PRE_NAME; the tokens
are the HF tokenizer's id -> token (ids without a token "[PAD<id>]"); the merges are
tokenizer.json's; special added tokens are CONTROL; bos/eos ids and add_bos_token are what
transformers' AutoTokenizer gives; tokenizer.chat_template is tokenizer_config.json's.
With TEXTS, llama.cpp itself (llama-cpp-python, vocab_only) must tokenize every text to the ids
HF `tokenizers` gives (add_special_tokens=False; special tokens parsed). Prints a summary line.
"""
import json
import sys

import gguf
from tokenizers import Tokenizer
from transformers import AutoTokenizer


def field(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def check(cond, what):
    if not cond:
        print("MISMATCH:", what)
        sys.exit(1)


def main():
    path, folder, pre = sys.argv[1], sys.argv[2], sys.argv[3]
    reader = gguf.GGUFReader(path)
    hf = Tokenizer.from_file(f"{folder}/tokenizer.json")
    auto = AutoTokenizer.from_pretrained(folder)
    j = json.load(open(f"{folder}/tokenizer.json", encoding="utf-8"))
    config = json.load(open(f"{folder}/tokenizer_config.json", encoding="utf-8"))
    check(field(reader, "tokenizer.ggml.model") == "gpt2", "tokenizer.ggml.model")
    check(field(reader, "tokenizer.ggml.pre") == pre, f"tokenizer.ggml.pre != {pre}")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    for i, t in enumerate(tokens):
        want = hf.id_to_token(i)
        check(t == (want if want is not None else f"[PAD{i}]"), f"token {i}: {t!r} vs {want!r}")
    specials = {a["id"] for a in j["added_tokens"] if a["special"]}
    for i in specials:
        check(types[i] == gguf.TokenType.CONTROL, f"token {i} type {types[i]} is not CONTROL")
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    check(field(reader, "tokenizer.ggml.merges") == merges, "merges")
    if auto.bos_token_id is not None:
        check(field(reader, "tokenizer.ggml.bos_token_id") == auto.bos_token_id, "bos id")
    check(field(reader, "tokenizer.ggml.eos_token_id") == auto.eos_token_id, "eos id")
    adds_bos = auto("x").input_ids[:1] == [auto.bos_token_id] if auto.bos_token_id is not None else False
    check(bool(field(reader, "tokenizer.ggml.add_bos_token")) == adds_bos, "add_bos_token")
    if isinstance(config.get("chat_template"), str):
        check(field(reader, "tokenizer.chat_template") == config["chat_template"], "chat_template")
    summary = f"{len(tokens)} tokens, {len(merges)} merges, pre {pre}"
    if len(sys.argv) > 4:
        from llama_cpp import Llama
        llama = Llama(model_path=path, vocab_only=True, verbose=False)
        texts = [json.loads(line)["text"] for line in open(sys.argv[4], encoding="utf-8")]
        bad = [t for t in texts
               if llama.tokenize(t.encode("utf-8"), add_bos=False, special=True)
               != hf.encode(t, add_special_tokens=False).ids]
        summary += f"; llama.cpp tokenizes {len(texts) - len(bad)}/{len(texts)} texts as HF does"
        check(not bad, f"llama.cpp tokenizes {len(bad)} texts differently, e.g. {bad[0][:80]!r}"
              if bad else "")
    print(summary)


if __name__ == "__main__":
    main()
