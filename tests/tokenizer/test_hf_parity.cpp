// Parity with HF `tokenizers` on the four real byte-level BPE vocabularies (Llama 3, Qwen2,
// GPT-2, SmolLM2) over a >1 MB corpus that scripts/gen_tokenizer_corpus.py assembles: prose,
// code, numbers, whitespace runs, contractions, many scripts, emoji, combining marks and
// special-token strings inside text. Ids (with and without special tokens), byte offsets,
// decodes and streaming decodes must all match the peer's, text for text (decode equal to the
// peer's also means we round-trip exactly the documents it round-trips).
#include <gtest/gtest.h>

#include <filesystem>

#include "hf_reference.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::tokenizer {
namespace {

// Every vocabulary reads the same (deterministic) corpus. CTest runs each vocabulary in its own
// process, in parallel, so each writes its copy to a folder of its own.
std::string corpus(const std::string& name) {
    const std::string file = qlora::test::scratch_dir("tokenizer_corpus_" + name) + "/corpus.jsonl";
    test::run_peer_script("gen_tokenizer_corpus.py",
                          std::string(QLORA_SHARED_DIR) + "/data " + file + " 1100000");
    return file;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, MatchesPeerOnEveryDocument) {
    const std::string name = GetParam();
    const std::string folder = qlora::test::shared_data("tokenizers/" + name);
    const std::string corpus_file = corpus(name);
    const std::string expected_file =
        qlora::test::scratch_dir("tokenizer_parity_" + name) + "/peer.jsonl";
    test::run_peer_script("check_tokenizer_parity.py",
                          folder + " " + corpus_file + " " + expected_file);
    const Tokenizer tok(folder);
    ASSERT_EQ(tok.kind(), BackendKind::kHfJson);
    const std::vector<std::string> texts = test::read_texts(corpus_file);
    // Qwen2 normalizes to NFC: there our offsets may be wider than HF's (see hf_reference.h).
    const test::ParityReport r = test::compare_with_peer(
        tok, texts, test::read_expected(expected_file), /*exact_offsets=*/name != "qwen2");
    std::cout << "[ measured ] " << name << ": " << r.texts << " documents, " << r.characters
              << " characters (" << r.bytes << " bytes) compared; mismatches: ids "
              << r.id_mismatches << ", offsets " << r.offset_mismatches << ", decode "
              << r.decode_mismatches << ", streaming " << r.stream_mismatches << "; "
              << r.round_trips << " documents round-trip\n";
    for (const std::string& e : r.examples) ADD_FAILURE() << name << ": " << e;
    EXPECT_GE(r.bytes, 1000000u);
    EXPECT_EQ(r.id_mismatches, 0u);
    EXPECT_EQ(r.offset_mismatches, 0u);
    EXPECT_EQ(r.decode_mismatches, 0u);
    EXPECT_EQ(r.stream_mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(RealVocabularies, HfParity,
                         ::testing::Values("llama3", "qwen2", "gpt2", "smollm2"),
                         [](const auto& test_case) { return test_case.param; });

}  // namespace
}  // namespace qlora::tokenizer
