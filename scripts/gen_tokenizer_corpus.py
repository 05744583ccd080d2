#!/usr/bin/env python3
"""Deterministic tokenizer test corpus: writes JSONL lines {"kind": ..., "text": ...}.

usage: gen_tokenizer_corpus.py SHARED_DATA_DIR OUT.jsonl [MIN_BYTES]

The documents mix what breaks tokenizers: English prose (the shared text files), code, numbers
of every length, whitespace runs of spaces/tabs/newlines/CRLF, contractions in every case, many
scripts (CJK, Cyrillic, Arabic, Devanagari, Thai, Khmer, Hangul), emoji with ZWJ sequences and
modifiers, combining marks (composed and decomposed), rare but valid code points, and the
special-token strings of the four shared vocabularies inside user text. Same output every run.
"""
import json
import random
import sys

SCRIPTS = {
    "cjk": "我们今天去公园散步吧天气很好。東京は日本の首都です。漢字とひらがなとカタカナ、한국어도 있어요.",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёжик в тумане!",
    "arabic": "اللغة العربية جميلة جداً، وهي لغة القرآن الكريم. ١٢٣٤٥ مرحبا بالعالم",
    "devanagari": "हिन्दी भारत की राजभाषा है। क्षत्रिय, ज्ञान, श्रृंगार — संस्कृत में ॐ नमः शिवाय।",
    "thai": "ภาษาไทยเป็นภาษาที่มีวรรณยุกต์ สวัสดีครับ ขอบคุณมากค่ะ ๑๒๓",
    "khmer": "ភាសាខ្មែរគឺជាភាសាផ្លូវការរបស់ប្រទេសកម្ពុជា។ សួស្តី",
    "greek": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. ΣΊΣΥΦΟΣ σίσυφος",
    "hebrew": "עברית היא שפה שמית. שלום עולם",
}
RANGES = [(0x4E00, 0x9FFF), (0x0400, 0x04FF), (0x0600, 0x06FF), (0x0900, 0x097F),
          (0x0E00, 0x0E7F), (0x1780, 0x17FF), (0xAC00, 0xD7A3), (0x3040, 0x30FF),
          (0x1F300, 0x1FAFF), (0x1D400, 0x1D7FF), (0x0300, 0x036F), (0xE000, 0xE0FF),
          (0x20000, 0x2A6DF), (0x2000, 0x206F), (0xFE00, 0xFE0F), (0xFFF0, 0xFFFD),
          (0x10000, 0x1007F), (0xE0020, 0xE007F)]
EMOJI = ["👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "🧑🏿‍🤝‍🧑🏻", "👍🏼", "🇯🇵🇫🇷", "1️⃣", "❤️‍🔥",
         "🤷‍♀️", "😀😃😄", "🐈‍⬛", "👁️‍🗨️", "🫠", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
COMBINING = ["e\u0301", "a\u0308\u0304", "Z\u0351\u0354\u034d\u0358", "n\u0303", "\u1100\u1161\u11a8",
             "o\u0328\u0301", "i\u0307", "A\u030a", "\u212b", "\ufb01", "\u2460", "ﾊﾝｶｸ", "x\u20dd",
             "q\u0323\u0307", "\u0915\u094d\u0937", "\u0e01\u0e34\u0e4a"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_5|>",
            "<|fim_prefix|>", "<tool_call>", "</tool_call>", "<repo_name>", "<|endoftext|",
            "<|im_", "<|eot_id|><|eot_id|>", "<|im_start|>user\n", "< |endoftext| >",
            "<|ENDOFTEXT|>", "[PAD151650]", "<|box_start|>"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
WORDS = ("the quick brown fox jumps over lazy dog she he it we they you i "
         "don can won shouldn would could will isn aren").split()
KEYWORDS = ["def", "return", "for", "while", "if", "else", "class", "import", "const", "auto",
            "int", "std::vector<int64_t>", "lambda", "struct", "template<typename T>", "nullptr"]


def random_case(rng, s):
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)


def prose_docs(shared, rng, budget):
    """Consecutive slices of 200-6000 characters, budget/2 characters from each shared text."""
    docs = []
    for name in ["text/tinyshakespeare.txt", "text/tinystories_train_prefix_197k.txt"]:
        with open(f"{shared}/{name}", encoding="utf-8") as f:
            text = f.read()
        pos = 0
        while pos < min(len(text), budget // 2):
            n = rng.randint(200, 6000)
            docs.append(text[pos:pos + n])
            pos += n
    return docs


def code_doc(rng):
    lines = []
    indent = 0
    for _ in range(rng.randint(5, 60)):
        kw = rng.choice(KEYWORDS)
        name = rng.choice(WORDS) + "_" + str(rng.randint(0, 999))
        body = rng.choice([f"{kw} {name}(x, y):", f"{name} = {{\"key\": [{rng.randint(0, 10**6)}, 2.5e-3]}};",
                           f"// TODO({name}): fix the {rng.choice(WORDS)} case", f"{kw} ({name} != nullptr) {{",
                           f"return {name}[i] * 0x{rng.randint(0, 2**32):08X} >> {rng.randint(1, 31)};",
                           "}", f"printf(\"%d\\n\", {name});", f"    # {rng.choice(WORDS)} -> {rng.choice(WORDS)}"])
        ws = rng.choice(["    " * indent, "\t" * indent, "  " * indent])
        lines.append(ws + body)
        indent = max(0, min(6, indent + rng.choice([-1, 0, 1])))
    return rng.choice(["\n", "\r\n", "\n\n"]).join(lines)


def numbers_doc(rng):
    parts = []
    for length in range(1, 41):
        digits = "".join(rng.choice("0123456789") for _ in range(length))
        parts.append(rng.choice([digits, digits + "." + digits[:3], "-" + digits, digits + "%",
                                 f"{int(digits):,}", "$" + digits, digits + "th", "v" + digits]))
    parts += ["٣٤٥", "१२३", "½", "Ⅻ", "２０２４", "3.14159265358979", "1e-10", "0b1011", "12:30:45"]
    rng.shuffle(parts)
    return " ".join(parts)


def whitespace_doc(rng):
    seps = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n", "\t \n ",
            "\u00a0", "\u3000", "\r", " \t\r\n", "\u2028", "\u200b", "        "]
    words = [rng.choice(WORDS + ["x", "42", ".", "!", "(", ")"]) for _ in range(rng.randint(10, 200))]
    out = rng.choice(["", " ", "\n", "\t"])
    for w in words:
        out += w + "".join(rng.choice(seps) for _ in range(rng.randint(1, 4)))
    return out


def contractions_doc(rng):
    out = []
    for _ in range(rng.randint(20, 120)):
        w = rng.choice(WORDS)
        c = random_case(rng, rng.choice(CONTRACTIONS))
        out.append(random_case(rng, w) if rng.random() < 0.3 else w)
        out[-1] += c if rng.random() < 0.8 else rng.choice(["\u2019s", "''", "'", "'S'"])
    return " ".join(out)


def scripts_doc(rng):
    out = []
    for _ in range(rng.randint(5, 40)):
        r = rng.random()
        if r < 0.5:
            s = rng.choice(list(SCRIPTS.values()))
            a = rng.randint(0, len(s) - 1)
            out.append(s[a:a + rng.randint(1, 60)])
        elif r < 0.8:
            lo, hi = rng.choice(RANGES)
            out.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 12))))
        else:
            out.append(rng.choice(WORDS))
    return rng.choice([" ", "", "\n", "、"]).join(out)


def emoji_doc(rng):
    out = []
    for _ in range(rng.randint(5, 50)):
        out.append(rng.choice(EMOJI + COMBINING + WORDS))
    return rng.choice([" ", "", "  "]).join(out)


def specials_doc(rng):
    out = []
    for _ in range(rng.randint(3, 30)):
        out.append(rng.choice(SPECIALS) if rng.random() < 0.5 else rng.choice(WORDS))
        out.append(rng.choice(["", " ", "\n", "  ", "\t"]))
    return "".join(out)


def main():
    shared, out_path = sys.argv[1], sys.argv[2]
    min_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 1_100_000
    rng = random.Random(13)
    docs = [("prose", d) for d in prose_docs(shared, rng, min_bytes // 2)]
    makers = [("code", code_doc), ("numbers", numbers_doc), ("whitespace", whitespace_doc),
              ("contractions", contractions_doc), ("scripts", scripts_doc), ("emoji", emoji_doc),
              ("specials", specials_doc)]
    size = sum(len(d[1].encode()) for d in docs)
    i = 0
    while size < min_bytes:
        kind, make = makers[i % len(makers)]
        text = make(rng)
        docs.append((kind, text))
        size += len(text.encode())
        i += 1
    docs += [("edge", t) for t in ["", " ", "\n", "a", "<|endoftext|>", "  <|im_end|>  ", "\r\n\r\n",
                                   "é", "e\u0301", "\u0301", "👨‍👩‍👧‍👦", "'s", "'S", "I'LL", " " * 300,
                                   "a" * 5000, "ab" * 3000, "\U0010FFFD", "\ufeff BOM"]]
    with open(out_path, "w", encoding="utf-8") as f:
        for kind, text in docs:
            f.write(json.dumps({"kind": kind, "text": text}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
