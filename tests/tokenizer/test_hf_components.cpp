// Every normalizer, pre-tokenizer, post-processor, decoder and BPE option we read, each on a
// small tokenizer.json that scripts/check_tokenizer_cases.py trains and encodes with HF
// `tokenizers` (the cases are in tests/tokenizer/hf_cases.json): our ids, offsets, decodes and
// streaming decodes must equal the peer's for every text.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "hf_reference.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::tokenizer {
namespace {

const std::string kCases = std::string(QLORA_SOURCE_DIR) + "/tests/tokenizer/hf_cases.json";

std::vector<std::string> case_names() {
    std::ifstream in(kCases);
    std::vector<std::string> names;
    if (!in.good()) return {"missing_hf_cases_json"};
    const nlohmann::json spec = nlohmann::json::parse(in);
    for (const auto& c : spec["cases"]) names.push_back(c["name"].get<std::string>());
    return names;
}

// The peer script builds one case into a folder of its own: CTest runs each case in its own
// process, in parallel.
std::string built_case(const std::string& name) {
    const std::string out = qlora::test::scratch_dir("tokenizer_hf_cases/" + name);
    test::run_peer_script("check_tokenizer_cases.py", kCases + " " + out + " " + name);
    return out + "/" + name;
}

std::vector<std::string> case_texts() {
    std::ifstream in(kCases);
    return nlohmann::json::parse(in)["texts"].get<std::vector<std::string>>();
}

class HfComponent : public ::testing::TestWithParam<std::string> {};

TEST_P(HfComponent, MatchesPeer) {
    const std::string folder = built_case(GetParam());
    const Tokenizer tok(folder);
    const std::vector<std::string> texts = case_texts();
    // Under Unicode normalizers our offsets may be wider than HF's (see hf_reference.h).
    const bool unicode_normalizer = GetParam().starts_with("normalizer_NF");
    const test::ParityReport r = test::compare_with_peer(
        tok, texts, test::read_expected(folder + "/expected.jsonl"), !unicode_normalizer);
    for (const std::string& e : r.examples) ADD_FAILURE() << GetParam() << ": " << e;
    EXPECT_EQ(r.texts, texts.size());
    EXPECT_EQ(r.id_mismatches + r.offset_mismatches + r.decode_mismatches + r.stream_mismatches,
              0u);
}

INSTANTIATE_TEST_SUITE_P(HandBuilt, HfComponent, ::testing::ValuesIn(case_names()),
                         [](const auto& test_case) { return test_case.param; });

}  // namespace
}  // namespace qlora::tokenizer
