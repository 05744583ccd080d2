#!/usr/bin/env python3
"""The peer's (HF `tokenizers`) view of a corpus, for the C++ parity test to compare against.

usage: check_tokenizer_parity.py TOKENIZER_DIR CORPUS.jsonl OUT.jsonl

For each {"text": ...} line of CORPUS writes {"ids": encode(add_special_tokens=True),
"plain": encode(add_special_tokens=False), "offsets": [[begin, end], ...] of the plain
encoding in UTF-8 bytes, "decoded": decode(plain, skip_special_tokens=False),
"decoded_skip": decode(ids, skip_special_tokens=True)}.
"""
import json
import sys

from tokenizers import Tokenizer


def byte_offsets(text, offsets):
    # HF reports offsets in characters of the Python string; the C++ side uses UTF-8 bytes.
    starts = [0]
    for ch in text:
        starts.append(starts[-1] + len(ch.encode("utf-8")))
    return [[starts[b], starts[e]] for b, e in offsets]


def main():
    tok = Tokenizer.from_file(f"{sys.argv[1]}/tokenizer.json")
    with open(sys.argv[2], encoding="utf-8") as src, open(sys.argv[3], "w", encoding="utf-8") as out:
        for line in src:
            text = json.loads(line)["text"]
            full = tok.encode(text)
            plain = tok.encode(text, add_special_tokens=False)
            out.write(json.dumps({
                "ids": full.ids,
                "plain": plain.ids,
                "offsets": byte_offsets(text, plain.offsets),
                "decoded": tok.decode(plain.ids, skip_special_tokens=False),
                "decoded_skip": tok.decode(full.ids, skip_special_tokens=True),
            }, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
