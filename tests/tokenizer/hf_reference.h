// Comparing our Tokenizer with the peer (HF `tokenizers`, run by scripts/check_tokenizer_*.py):
// reads the peer's per-text results and counts, per text, mismatching ids (with and without
// special tokens), byte offsets, decodes and streaming decodes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace qlora::tokenizer::test {

struct HfExpected {
    std::vector<int64_t> ids;                        // encode(add_special_tokens=True)
    std::vector<int64_t> plain;                      // encode(add_special_tokens=False)
    std::vector<std::pair<size_t, size_t>> offsets;  // of `plain`, UTF-8 bytes
    std::string decoded;                             // decode(plain, skip_special_tokens=False)
    std::string decoded_skip;                        // decode(ids, skip_special_tokens=True)
};

// One HfExpected per line of a check_tokenizer_*.py output file.
std::vector<HfExpected> read_expected(const std::string& path);
// The "text" of every line of a JSONL file.
std::vector<std::string> read_texts(const std::string& path);

struct ParityReport {
    size_t texts = 0;
    size_t bytes = 0;
    size_t characters = 0;
    size_t id_mismatches = 0;           // texts whose ids (either flavour) differ
    size_t offset_mismatches = 0;       // texts whose offsets differ
    size_t decode_mismatches = 0;       // texts whose decode (either flavour) differs
    size_t stream_mismatches = 0;       // texts whose streaming decode differs from decode
    size_t round_trips = 0;             // texts the peer decodes back to themselves (we must too)
    std::vector<std::string> examples;  // the first few mismatches, readable
};

// `exact_offsets`: offsets must equal the peer's; otherwise (tokenizers with a Unicode
// normalizer) each of our spans must contain the peer's.
ParityReport compare_with_peer(const Tokenizer& tok, const std::vector<std::string>& texts,
                               const std::vector<HfExpected>& expected, bool exact_offsets);

// Runs `<python> <QLORA_SOURCE_DIR>/scripts/<script> <args>`; fails the test on a non-zero exit.
void run_peer_script(const std::string& script, const std::string& args);

// Everything StreamDecoder emits for `ids`, step by step, then finish().
std::string stream_decode(const Tokenizer& tok, const std::vector<int64_t>& ids, bool skip_special,
                          bool* emitted_partial_utf8 = nullptr);

}  // namespace qlora::tokenizer::test
