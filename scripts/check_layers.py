#!/usr/bin/env python3
"""Include check: every #include "dir/..." in src/ and kernels/ must point to the same folder or to a
lower layer of LAYERS (docs/ARCHITECTURE.md explains each). An upward include, an include of a folder
that is not in the table, or a cycle between folders fails the check with the file and line.

    scripts/check_layers.py            # exit 0 when the tree keeps its layering
"""
import pathlib
import re
import sys

# Lowest first. A folder may include its own headers and those of any folder listed before it.
LAYERS = [
    "kernels",    # raw math beside CPU references: includes nothing from src/
    "core",       # errors, logging, devices, progress
    "quant",      # NF4/FP4, double quant, int4, fake quant, ggml block formats
    "io",         # safetensors, GGUF, bitsandbytes 4-bit state, atomic files
    "optim",      # AdamW 32/8-bit, paged buffers, schedules, clipping
    "tokenizer",  # SentencePiece and tokenizer.json
    "jinja",      # the chat-template engine
    "chat",       # model chat templates
    "model",      # Llama layout, config, loader, forward, generation, eval
    "lora",       # adapters, LoRA autograd, QAT modules, PEFT I/O
    "memory",     # memory plan
    "data",       # records, templates, samples, loader
    "dist",       # world set-up and collectives (torchrun, c10d)
    "convert",    # GGUF -> Hugging Face folder
    "export",     # merged checkpoints, HF/PEFT/GGUF writers, bnb quantization
    "train",      # config, recipe, trainer
    "bench",      # qlora-bench
    "cli",        # thin mains
]
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_0-9]+)/[^"]+"')


def folder_of(root: pathlib.Path, path: pathlib.Path) -> str:
    rel = path.relative_to(root).parts
    return "kernels" if rel[0] == "kernels" else rel[1]


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    files = [p for d in ("src", "kernels") for p in (root / d).rglob("*")
             if p.suffix in (".h", ".cpp", ".cu", ".cuh")]
    problems, edges = [], set()
    for path in sorted(files):
        here = folder_of(root, path)
        if here not in RANK:
            problems.append(f"{path.relative_to(root)}: folder '{here}' is not in scripts/check_layers.py LAYERS")
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m or m.group(1) in ("support",):
                continue
            there = m.group(1)
            where = f"{path.relative_to(root)}:{lineno}"
            if there not in RANK:
                problems.append(f"{where}: includes '{there}/', a folder not in LAYERS")
            elif there != here:
                edges.add((here, there))
                if RANK[there] > RANK[here]:
                    problems.append(f"{where}: {here}/ (layer {RANK[here]}) includes {there}/ "
                                    f"(layer {RANK[there]}), an upward include")
    problems += [f"cycle: {a}/ and {b}/ include each other" for a, b in edges if (b, a) in edges and a < b]
    for p in problems:
        print(p)
    print(f"check_layers: {len(files)} files, {len(edges)} folder edges, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
