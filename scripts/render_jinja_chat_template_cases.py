#!/usr/bin/env python3
"""Renders small Jinja templates in transformers' chat-template environment (the oracle of
tests/jinja): the same jinja2 ImmutableSandboxedEnvironment, trim_blocks/lstrip_blocks, tojson,
raise_exception, namespace and loop controls that apply_chat_template uses.

usage: render_jinja_chat_template_cases.py CASES.json OUT.json
  CASES.json: [{"template": str, "variables": {...}}, ...]
  OUT.json:   [{"output": str} | {"error": str, "error_type": str}, ...] in the same order
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from transformers.utils.chat_template_utils import _compile_jinja_template  # noqa: E402


def render(case):
    try:
        return {"output": _compile_jinja_template(case["template"]).render(**case.get("variables", {}))}
    except Exception as e:
        return {"error": str(e), "error_type": type(e).__name__}


def main():
    cases = json.load(open(sys.argv[1], encoding="utf-8"))
    json.dump([render(c) for c in cases], open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    main()
