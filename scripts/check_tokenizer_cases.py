#!/usr/bin/env python3
"""Small hand-built tokenizer.json files and the peer's (HF `tokenizers`) encodings of them.

usage: check_tokenizer_cases.py CASES.json OUT_DIR [CASE_NAME]   (CASE_NAME: build only that case)

CASES.json: {"texts": [...], "cases": [{"name", "normalizer", "pre_tokenizer", "decoder",
"model": {BPE options}, "added": [AddedToken fields], "template": "<s> $A </s>" or null,
"post_processor": raw JSON or null, "legacy_merges": bool}]}. For each case a BPE model is
trained on the texts (those holding the held-out character U+02AC excepted, so it stays
unknown) through the case's own normalizer and pre-tokenizer; the resulting file is written to
OUT_DIR/<name>/tokenizer.json, and OUT_DIR/<name>/expected.jsonl gets one line per text: ids
with and without special tokens, byte offsets, and both decodes.
"""
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, pre_tokenizers, processors, trainers

HELD_OUT = "\u02ac"


def byte_offsets(text, offsets):
    starts = [0]
    for ch in text:
        starts.append(starts[-1] + len(ch.encode("utf-8")))
    return [[starts[b], starts[e]] for b, e in offsets]


def build(case, texts):
    model = {"type": "BPE", "dropout": None, "vocab": {}, "merges": []}
    model.update(case.get("model", {}))
    skeleton = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
                "normalizer": case.get("normalizer"), "pre_tokenizer": case.get("pre_tokenizer"),
                "post_processor": None, "decoder": case.get("decoder"), "model": model}
    tok = Tokenizer.from_str(json.dumps(skeleton))
    specials = ["<unk>", "<s>", "</s>"]
    affixes = {k: model[k] for k in ("continuing_subword_prefix", "end_of_word_suffix") if model.get(k)}
    trainer = trainers.BpeTrainer(
        vocab_size=400, min_frequency=1, show_progress=False, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if case.get("byte_alphabet") else [],
        **affixes)
    tok.train_from_iterator([t for t in texts if HELD_OUT not in t], trainer)
    j = json.loads(tok.to_str())
    j["model"].update(case.get("model", {}))  # the trainer resets options like byte_fallback
    if model.get("byte_fallback"):
        vocab = j["model"]["vocab"]
        for b in range(256):
            vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    if case.get("legacy_merges"):
        j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    tok = Tokenizer.from_str(json.dumps(j))
    for a in case.get("added", []):
        token = AddedToken(a["content"], single_word=a.get("single_word", False),
                           lstrip=a.get("lstrip", False), rstrip=a.get("rstrip", False),
                           normalized=a.get("normalized", not a.get("special", False)),
                           special=a.get("special", False))
        (tok.add_special_tokens if a.get("special") else tok.add_tokens)([token])
    post = case.get("post_processor")
    if case.get("template"):
        names = [w for w in case["template"].split() if w != "$A"]
        post_template = processors.TemplateProcessing(
            single=case["template"], special_tokens=[(n, tok.token_to_id(n)) for n in dict.fromkeys(names)])
        tok.post_processor = post_template
    if post is not None:
        j = json.loads(tok.to_str())
        j["post_processor"] = post if not case.get("template") else {
            "type": "Sequence", "processors": [post, j["post_processor"]]}
        tok = Tokenizer.from_str(json.dumps(j))
    return tok


def main():
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    texts = spec["texts"]
    only = sys.argv[3] if len(sys.argv) > 3 else None
    cases = [c for c in spec["cases"] if only in (None, c["name"])]
    if not cases:
        sys.exit(f"check_tokenizer_cases.py: no case named {only!r} in {sys.argv[1]}")
    for case in cases:
        tok = build(case, texts)
        folder = os.path.join(sys.argv[2], case["name"])
        os.makedirs(folder, exist_ok=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "expected.jsonl"), "w", encoding="utf-8") as out:
            for text in texts:
                full = tok.encode(text)
                plain = tok.encode(text, add_special_tokens=False)
                out.write(json.dumps({
                    "ids": full.ids, "plain": plain.ids,
                    "offsets": byte_offsets(text, plain.offsets),
                    "decoded": tok.decode(plain.ids, skip_special_tokens=False),
                    "decoded_skip": tok.decode(full.ids, skip_special_tokens=True),
                }, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
