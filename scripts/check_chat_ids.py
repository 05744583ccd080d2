#!/usr/bin/env python3
"""The ids transformers trains on for conversations under a tokenizer folder's own chat template.

usage: check_chat_ids.py TOKENIZER_DIR CONVERSATIONS.json OUT.json

CONVERSATIONS.json: a list of message lists. OUT.json gets, per conversation, the ids of
apply_chat_template(messages, tokenize=True) (add_generation_prompt=False): the rendered string
encoded whole, no special tokens added by the tokenizer (the template writes them).
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from transformers import AutoTokenizer  # noqa: E402


def main():
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    conversations = json.load(open(sys.argv[2], encoding="utf-8"))
    out = []
    for messages in conversations:
        ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers may return a BatchEncoding
            ids = ids["input_ids"]
        out.append([int(i) for i in ids])
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
