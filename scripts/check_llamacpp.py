#!/usr/bin/env python3
"""llama.cpp itself (llama-cpp-python, CPU, setup venv) as the peer for our GGUF model code,
driven by tests/interop/test_llamacpp_logits.cpp.

  check_llamacpp.py f32-gguf IN.gguf OUT.gguf
      Writes OUT.gguf with every tensor of IN.gguf dequantized to F32 (gguf.quants.dequantize)
      and every metadata key copied (general.file_type set to ALL_F32), so that llama.cpp runs
      on exactly the float32 weights our loader decodes; then checks that llama.cpp loads it.
  check_llamacpp.py tokenize GGUF TEXT_FILE N OUT_IDS
      llama.cpp's own tokenizer of GGUF (vocab_only) on TEXT_FILE, BOS first when the file's
      tokenizer.ggml.add_bos_token asks for it (as llama-perplexity does), special tokens in the
      text parsed (as HF tokenizers does); the first N ids are written comma-separated to OUT_IDS.
  check_llamacpp.py logits GGUF IDS_FILE OURS.safetensors MIN_TOP1 MAX_ABS_DIFF NLL_REL_TOL
      llama.cpp evaluates the comma-separated ids of IDS_FILE (no BOS added, logits at every
      position) and compares its logits with OURS.safetensors["logits"] ([T, vocab], row t
      predicts token t + 1): the fraction of positions whose argmax agrees, the largest
      |difference| and the mean next-token NLL of each over positions 0..T-2. Prints one line;
      exits non-zero when top-1 < MIN_TOP1, max |diff| > MAX_ABS_DIFF or
      |NLL ours - NLL llama.cpp| / NLL llama.cpp > NLL_REL_TOL (a huge value skips a check).
  check_llamacpp.py nll GGUF IDS_FILE
      llama.cpp's mean next-token NLL over IDS_FILE's ids in one window, printed as the line
      "llama.cpp mean NLL: <number>" (llama.cpp may log warnings on stderr around it).
  check_llamacpp.py same-ids GGUF TEXTS.jsonl OURS.jsonl
      llama.cpp's tokenizer of GGUF (vocab_only; no BOS, special tokens parsed: HF's
      add_special_tokens=False) on every line's "text" of TEXTS against the JSON id array on the
      same line of OURS; prints documents, characters and mismatches, exits non-zero on any.
  check_llamacpp.py chat GGUF PROMPT MAX_NEW
      One user turn through GGUF's own tokenizer.chat_template (rendered by llama-cpp-python's
      Jinja2ChatFormatter, generation prompt added), answered greedily by llama.cpp until an
      end-of-generation token or MAX_NEW tokens; prints the answer.

QLORA_LLAMACPP_THREADS (default 2) sets llama.cpp's CPU threads.
"""
import json
import os
import sys

# llama.cpp is run single-process with a fixed thread count: the tests share a small machine.
THREADS = int(os.environ.get("QLORA_LLAMACPP_THREADS", "2"))

import numpy as np


def fail(msg):
    sys.exit(f"check_llamacpp: {msg}")


def read_ids(path):
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    ids = [int(x) for x in text.split(",") if x.strip()]
    if len(ids) < 2:
        fail(f"{path}: need at least two token ids, got {len(ids)}")
    return ids


def copy_metadata(reader, writer):
    """Every key/value of reader except the header fields and the ones GGUFWriter writes itself."""
    import gguf
    VT = gguf.GGUFValueType
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # version/counts are the writer's; the arch is its constructor argument
        value = field.contents()
        if key == "general.file_type":
            value = int(gguf.LlamaFileType.ALL_F32)  # llama.cpp reports it; keep it truthful
        main_type = field.types[0]
        if main_type == VT.ARRAY:
            # the element type is the last one listed (nested arrays list every level)
            writer.add_key_value(key, value, VT.ARRAY, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, value, main_type)


def architecture(reader):
    field = reader.fields.get("general.architecture")
    if field is None:
        fail("the input has no general.architecture")
    return field.contents()


def f32_gguf(src, out):
    import gguf
    from gguf.quants import dequantize
    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(out, arch=architecture(reader))
    copy_metadata(reader, writer)
    for t in reader.tensors:
        # dequantize gives the numpy shape (ne reversed), which is what add_tensor expects
        values = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        expected = tuple(int(n) for n in reversed(t.shape.tolist()))
        if values.shape != expected:
            fail(f"{t.name}: dequantized shape {values.shape}, expected {expected}")
        writer.add_tensor(t.name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # the check: llama.cpp accepts the metadata and tensors and runs a token through them
    logits = llama_cpp_logits(out, [0, 1])
    print(f"wrote {out}: {len(reader.tensors)} tensors in F32, {len(reader.fields)} fields; "
          f"llama.cpp loads and runs it (vocab {logits.shape[1]})")


def quiet_llama_cpp():
    """The llama_cpp module with its log callback at errors only (it prints everything by default)."""
    import logging
    import llama_cpp
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    llama_cpp.llama_backend_init()
    return llama_cpp


def load_model(path):
    lc = quiet_llama_cpp()
    params = lc.llama_model_default_params()
    params.n_gpu_layers = 0
    # No extra buffer types (AMX, repacked weights): this VM's CPU advertises AMX but faults on
    # it (SIGILL on Q4_x/Q8_0), and the plain ggml kernels are the reference arithmetic anyway.
    # llama_cpp.Llama cannot pass this, hence the low-level API throughout.
    params.use_extra_bufts = False
    model = lc.llama_model_load_from_file(path.encode("utf-8"), params)
    if not model:
        fail(f"llama.cpp cannot load {path}")
    return lc, model


def new_context(lc, model, n_ctx):
    params = lc.llama_context_default_params()
    # one decode of the whole window (n_batch = n_ubatch = n_ctx) with an output for every token
    params.n_ctx = params.n_batch = params.n_ubatch = n_ctx
    params.n_seq_max = 1
    params.n_threads = params.n_threads_batch = THREADS
    # float32 K/V cache and no flash attention: the default F16 cache would round K and V, a
    # llama.cpp-side error we do not want inside the comparison with our float32 model
    params.type_k = params.type_v = lc.GGML_TYPE_F32
    params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = lc.llama_init_from_model(model, params)
    if not ctx:
        fail(f"llama.cpp cannot make a context of {n_ctx} tokens")
    return ctx


def llama_cpp_logits(path, ids):
    """[T, vocab] float32: llama.cpp's logits at every position of ids, exactly the ids given
    (a raw llama_batch: no tokenizer, no BOS added)."""
    lc, model = load_model(path)
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    ctx = new_context(lc, model, len(ids))
    batch = lc.llama_batch_init(len(ids), 0, 1)
    try:
        for i, token in enumerate(ids):
            if not 0 <= token < n_vocab:
                fail(f"token id {token} is outside the vocabulary of {n_vocab}")
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1  # an output row for every position, not only the last
        batch.n_tokens = len(ids)
        rc = lc.llama_decode(ctx, batch)
        if rc != 0:
            fail(f"llama_decode returned {rc}")
        # rows in batch order, one per token with logits set: here all of them
        flat = np.ctypeslib.as_array(lc.llama_get_logits(ctx), shape=(len(ids) * n_vocab,))
        logits = flat.reshape(len(ids), n_vocab).astype(np.float32)  # a copy, before the free
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)
        lc.llama_model_free(model)
    if not np.isfinite(logits).all():
        fail("llama.cpp logits are not all finite")
    return logits


def mean_nll(logits, ids):
    """Mean -log p(ids[t+1] | ids[..t]) over t = 0..T-2, computed in float64."""
    x = logits[:-1].astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(x).sum(axis=1))
    targets = np.asarray(ids[1:])
    return float(np.mean(log_z - x[np.arange(len(targets)), targets]))


def tokenize(path, text_file, n, out):
    from llama_cpp import Llama
    llama = Llama(model_path=path, vocab_only=True, verbose=False)  # tokenizer only: no weights
    with open(text_file, encoding="utf-8") as f:
        text = f.read(int(n) * 32)
    import gguf
    field = gguf.GGUFReader(path).fields.get("tokenizer.ggml.add_bos_token")
    add_bos = bool(field.contents()) if field is not None else True
    # special=True: "<|endoftext|>" in the text is the control token, as HF tokenizers reads it
    ids = llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)[: int(n)]
    if len(ids) < int(n):
        fail(f"{text_file}: only {len(ids)} tokens")
    with open(out, "w", encoding="utf-8") as f:
        f.write(",".join(str(i) for i in ids))
    print(f"{len(ids)} ids (BOS first: {add_bos and ids[0] == llama.token_bos()}) -> {out}")


def logits(path, ids_file, ours_path, min_top1, max_abs_diff, nll_rel_tol):
    from safetensors.numpy import load_file
    ids = read_ids(ids_file)
    ours = load_file(ours_path)["logits"].astype(np.float32)
    theirs = llama_cpp_logits(path, ids)
    if ours.shape != theirs.shape:
        fail(f"our logits shape {ours.shape} vs llama.cpp {theirs.shape}")
    agree = int((ours.argmax(-1) == theirs.argmax(-1))[:-1].sum())
    positions = len(ids) - 1  # the last row predicts nothing we can score; keep the count honest
    top1 = agree / positions
    diff = float(np.abs(ours.astype(np.float64) - theirs).max())
    nll_ours, nll_theirs = mean_nll(ours, ids), mean_nll(theirs, ids)
    rel = abs(nll_ours - nll_theirs) / nll_theirs
    print(f"llama.cpp vs ours over {len(ids)} tokens: top-1 agree {top1 * 100:.1f}% "
          f"({agree}/{positions}), max |dlogit| {diff:.4g}, mean NLL {nll_ours:.4f} (ours) vs "
          f"{nll_theirs:.4f} (llama.cpp), relative {rel * 100:.3f}%")
    if top1 < float(min_top1):
        fail(f"top-1 agreement {top1:.4f} is below {min_top1}")
    if not diff <= float(max_abs_diff):
        fail(f"max logit difference {diff:.4g} is above {max_abs_diff}")
    if not rel <= float(nll_rel_tol):
        fail(f"relative NLL difference {rel:.4g} is above {nll_rel_tol}")


def nll(path, ids_file):
    ids = read_ids(ids_file)
    print(f"llama.cpp mean NLL: {mean_nll(llama_cpp_logits(path, ids), ids):.6f}")


def same_ids(path, texts_file, ours_file):
    from llama_cpp import Llama
    llama = Llama(model_path=path, vocab_only=True, verbose=False)
    with open(texts_file, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    with open(ours_file, encoding="utf-8") as f:
        ours = [json.loads(line) for line in f if line.strip()]
    if len(texts) != len(ours):
        fail(f"{len(texts)} texts but {len(ours)} id arrays")
    bad, chars = [], 0
    for i, (text, mine) in enumerate(zip(texts, ours)):
        chars += len(text)
        theirs = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if theirs != mine:
            bad.append(i)
    print(f"llama.cpp vs ours: {len(texts)} documents, {chars} characters, {len(bad)} mismatches")
    if bad:
        i = bad[0]
        theirs = llama.tokenize(texts[i].encode("utf-8"), add_bos=False, special=True)
        k = next((j for j, (a, b) in enumerate(zip(theirs, ours[i])) if a != b), min(len(theirs), len(ours[i])))
        fail(f"document {i} ({texts[i][:60]!r}...) first differs at id {k}: llama.cpp "
             f"{theirs[k:k + 8]} vs ours {ours[i][k:k + 8]}")


def chat_prompt_ids(path, prompt):
    """The GGUF's chat template applied to one user turn, tokenized by llama.cpp."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    vocab = Llama(model_path=path, vocab_only=True, verbose=False)
    meta = vocab.metadata
    if "tokenizer.chat_template" not in meta:
        fail(f"{path} has no tokenizer.chat_template")
    piece = lambda key: vocab.detokenize([int(meta[key])], special=True).decode() if key in meta else ""
    formatter = Jinja2ChatFormatter(template=meta["tokenizer.chat_template"],
                                    eos_token=piece("tokenizer.ggml.eos_token_id"),
                                    bos_token=piece("tokenizer.ggml.bos_token_id"),
                                    add_generation_prompt=True)
    text = formatter(messages=[{"role": "user", "content": prompt}]).prompt
    # the template writes any BOS itself; special=True reads <|im_start|> as its control token
    return vocab, vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def decode_one(lc, ctx, batch, token, pos, want_logits):
    batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.seq_id[0][0] = token, pos, 1, 0
    batch.logits[0] = 1 if want_logits else 0
    batch.n_tokens = 1
    if lc.llama_decode(ctx, batch) != 0:
        fail("llama_decode failed")


def chat(path, prompt, max_new):
    vocab, ids = chat_prompt_ids(path, prompt)
    lc, model = load_model(path)
    vocab_ptr = lc.llama_model_get_vocab(model)
    n_vocab = lc.llama_vocab_n_tokens(vocab_ptr)
    ctx = new_context(lc, model, len(ids) + int(max_new))
    batch = lc.llama_batch_init(1, 0, 1)
    answer = []
    try:
        for pos, token in enumerate(ids):  # the prompt, one token at a time (small prompts)
            decode_one(lc, ctx, batch, token, pos, pos == len(ids) - 1)
        for pos in range(len(ids), len(ids) + int(max_new)):
            row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            token = int(row.argmax())  # greedy, as qlora-generate at temperature 0
            if lc.llama_vocab_is_eog(vocab_ptr, token):
                break
            answer.append(token)
            decode_one(lc, ctx, batch, token, pos, True)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)
        lc.llama_model_free(model)
    print(vocab.detokenize(answer).decode("utf-8", errors="replace").strip())


def main(argv):
    if len(argv) == 4 and argv[1] == "f32-gguf":
        f32_gguf(argv[2], argv[3])
    elif len(argv) == 6 and argv[1] == "tokenize":
        tokenize(argv[2], argv[3], argv[4], argv[5])
    elif len(argv) == 8 and argv[1] == "logits":
        logits(*argv[2:8])
    elif len(argv) == 4 and argv[1] == "nll":
        nll(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "same-ids":
        same_ids(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "chat":
        chat(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
