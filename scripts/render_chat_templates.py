#!/usr/bin/env python3
"""Renders chat templates over a conversation corpus with transformers' apply_chat_template.

The oracle of tests/chat: for each template and each conversation, with add_generation_prompt
False and True, the exact string transformers renders (tokenize=False), or the exception it raises.

usage: render_chat_templates.py CORPUS.json OUT.json SPEC...
  SPEC: folder:DIR  (a tokenizer folder: its own tokenizer and chat_template)
        file:PATH   (a .jinja file, rendered through the tokenizer of --tokenizer-for-files with
                     bos_token="<s>" and eos_token="</s>" passed as kwargs)
  --tokenizer-for-files DIR  (default: the first folder: spec)
"""
import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from transformers import AutoTokenizer  # noqa: E402

FILE_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}


def render_one(tokenizer, template, conv, add_generation_prompt, extra):
    kwargs = dict(conv.get("kwargs", {}))
    kwargs.update(extra)
    try:
        out = tokenizer.apply_chat_template(
            conv["messages"],
            tools=conv.get("tools"),
            chat_template=template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
        return {"output": out}
    except Exception as e:  # the test expects our error to carry this message
        return {"error": str(e), "error_type": type(e).__name__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--tokenizer-for-files")
    args = ap.parse_args()
    corpus = json.load(open(args.corpus, encoding="utf-8"))
    folders = [s[len("folder:"):] for s in args.specs if s.startswith("folder:")]
    file_tok_dir = args.tokenizer_for_files or (folders[0] if folders else None)
    if file_tok_dir is None:
        sys.exit("need a folder: spec or --tokenizer-for-files")
    file_tokenizer = AutoTokenizer.from_pretrained(file_tok_dir)
    results = []
    for spec in args.specs:
        kind, path = spec.split(":", 1)
        if kind == "folder":
            tokenizer = AutoTokenizer.from_pretrained(path)
            template = tokenizer.get_chat_template()
            extra = {}
            special = dict(tokenizer.special_tokens_map)
        else:
            tokenizer = file_tokenizer
            template = open(path, encoding="utf-8").read()
            extra = dict(FILE_TOKENS)
            special = {**tokenizer.special_tokens_map, **FILE_TOKENS}
        for conv in corpus:
            for agp in (False, True):
                r = render_one(tokenizer, template, conv, agp, extra)
                r.update({"spec": spec, "conversation": conv["name"], "add_generation_prompt": agp,
                          "special_tokens": special})
                results.append(r)
    json.dump(results, open(args.out, "w", encoding="utf-8"), ensure_ascii=False)
    print(f"rendered {len(results)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
