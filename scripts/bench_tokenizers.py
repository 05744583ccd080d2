#!/usr/bin/env python3
"""Encode throughput on one core: qlora-tokenize beside HF `tokenizers`, same text, same run.

usage: bench_tokenizers.py QLORA_TOKENIZE SHARED_DATA_DIR [VOCAB ...]

Generates the parity corpus (scripts/gen_tokenizer_corpus.py, ~1.1 MB), then per vocabulary
times (CPU time) HF's Tokenizer.encode over every document sequentially (one thread:
RAYON_NUM_THREADS=1)
and runs `qlora-tokenize --jsonl CORPUS --bench` (load and JSON parsing excluded on both
sides). Prints one line per vocabulary. A benchmark, not a test: numbers depend on the machine.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402


def main():
    tool, shared = sys.argv[1], sys.argv[2]
    vocabs = sys.argv[3:] or ["llama3", "qwen2", "gpt2", "smollm2"]
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        subprocess.run([sys.executable, os.path.join(here, "gen_tokenizer_corpus.py"), shared, corpus],
                       check=True)
        texts = [json.loads(line)["text"] for line in open(corpus, encoding="utf-8")]
        size = sum(len(t.encode("utf-8")) for t in texts)
        for name in vocabs:
            folder = os.path.join(shared, "tokenizers", name)
            hf = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
            start = time.process_time()  # CPU time: what one core does, even on a busy machine
            tokens = sum(len(hf.encode(t).ids) for t in texts)
            hf_s = time.process_time() - start
            ours = json.loads(subprocess.run([tool, "--model", folder, "--jsonl", corpus, "--bench"],
                                             check=True, capture_output=True, text=True).stdout)
            print(f"{name}: {len(texts)} documents, {size / 1e6:.2f} MB, {tokens} tokens; "
                  f"per CPU second: qlora-cpp {ours['tokens_per_cpu_s'] / 1e3:.0f}k tokens "
                  f"({ours['mb_per_cpu_s']:.2f} MB), "
                  f"HF tokenizers {tokens / hf_s / 1e3:.0f}k tokens ({size / 1e6 / hf_s:.2f} MB)")


if __name__ == "__main__":
    main()
