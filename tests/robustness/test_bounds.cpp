// Classes "crashes", "hangs / memory blow-ups" and "accepted when it should be refused": every size
// read from a file or the command line meets a documented limit (core/limits.h) and the memory it
// implies before anything is allocated; records are bounded work; what is not text, duplicate
// YAML keys and foreign quantization are refused naming the place.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/limits.h"
#include "data/dataset.h"
#include "data/record_limits.h"
#include "data/records.h"
#include "data/text_check.h"
#include "model/generate.h"
#include "model/llama_config.h"
#include "model/llama_loader.h"
#include "robustness/robustness_support.h"
#include "tokenizer/tokenizer.h"
#include "train/config.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

nlohmann::json stories_config() {
    return nlohmann::json::parse(test::read_text(test::shared_data("stories260K/hf/config.json")));
}

std::string config_error(const nlohmann::json& patch) {
    nlohmann::json j = stories_config();
    j.merge_patch(patch);
    return test::error_of([&] { model::LlamaConfig::from_json(j, "x/config.json"); });
}

TEST(Bounds, ConfigSizesMeetDocumentedLimits) {
    EXPECT_NE(config_error({{"num_hidden_layers", 1000000000}})
                  .find("'num_hidden_layers' expected an integer <= 1024"),
              std::string::npos);
    EXPECT_NE(config_error({{"vocab_size", 1LL << 40}}).find("'vocab_size' expected an integer <="),
              std::string::npos);
    EXPECT_NE(config_error({{"hidden_size", 18446744073709551615ULL}})
                  .find("'hidden_size' expected an integer <="),
              std::string::npos);
    EXPECT_NE(config_error({{"num_attention_heads", 100000}}).find("num_attention_heads"),
              std::string::npos);
    EXPECT_NE(
        config_error({{"max_position_embeddings", 1LL << 40}}).find("max_position_embeddings"),
        std::string::npos);
    EXPECT_EQ(config_error(nlohmann::json::object()), "(no error)");
}

// Within every per-key limit, but 10^14 parameters: refused from config.json alone, at once.
TEST(Bounds, ConfigImpliedMemoryIsCheckedBeforeAllocation) {
    const std::string dir = test::scratch_dir("bounds_memory");
    const std::string model = test::copy_stories_model(dir);
    test::patch_config(
        model, R"({"num_hidden_layers": 1024, "hidden_size": 65536, "intermediate_size": 1048576,
                                  "num_attention_heads": 512, "num_key_value_heads": 512, "head_dim": 128})");
    const auto t0 = clock_type::now();
    const std::string e = test::error_of([&] { model::load_llama(model, {}); });
    EXPECT_NE(e.find("parameters) needs"), std::string::npos) << e;
    EXPECT_NE(e.find("of memory is available"), std::string::npos) << e;
    EXPECT_LT(std::chrono::duration<double>(clock_type::now() - t0).count(), 5.0);
}

TEST(Bounds, HostMemoryCheckRefusesTheImpossible) {
    EXPECT_GT(limits::available_host_memory(), 0u);
    const std::string e = test::error_of(
        [] { limits::check_host_memory(limits::saturating_mul(1ULL << 40, 1ULL << 30), "x"); });
    EXPECT_NE(e.find("x needs"), std::string::npos) << e;
    EXPECT_EQ(limits::saturating_mul(1ULL << 40, 1ULL << 40), std::numeric_limits<uint64_t>::max());
}

TEST(Bounds, MaxNewTokensIsBoundedBeforeTheKvCache) {
    model::Llama llama = model::load_llama(test::shared_data("stories260K/hf"), {});
    model::GenerateOptions o;
    o.max_new_tokens = int64_t{1} << 40;
    const std::string e = test::error_of([&] { model::generate(llama, {1}, o); });
    EXPECT_NE(e.find("--max-new-tokens must lie in [0, 1048576]"), std::string::npos) << e;
    auto r = test::run_command(test::tool("qlora-generate") + " --model " +
                               test::shared_data("stories260K/hf") +
                               " --prompt x -n 99999999999 --device cpu");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
}

TEST(Bounds, CliFloatParametersMustBeFinite) {
    const std::string base = test::tool("qlora-generate") + " --model " +
                             test::shared_data("stories260K/hf") + " --prompt x -n 4 --device cpu ";
    for (const std::string bad :
         {"--temperature nan", "--temperature inf", "--top-p nan", "--repetition-penalty nan",
          "--temperature 1e999", "--top-p -0.5"}) {
        auto r = test::run_command(base + bad);
        EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.output;
        EXPECT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
    }
    auto ok = test::run_command(base + "--temperature 1e-40 --top-p 0.9 --seed 3");
    EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

std::string train_config_error(const std::string& dir, const std::vector<std::string>& overrides,
                               const std::string& extra_yaml = "") {
    const std::string path = dir + "/c.yaml";
    std::ofstream(path) << "model: {path: " << test::shared_data("stories260K/hf") << "}\n"
                        << "data: {train: " << test::shared_data("instruct/alpaca_tiny_100.json")
                        << "}\n"
                        << extra_yaml;
    return test::error_of([&] { train::load_config(path, overrides); });
}

TEST(Bounds, TrainSizesAndFloatsAreBounded) {
    const std::string dir = test::scratch_dir("bounds_train");
    EXPECT_NE(train_config_error(dir, {"train.grad_accum=1000000000"})
                  .find("train.grad_accum: expected an integer <= 65536"),
              std::string::npos);
    EXPECT_NE(train_config_error(dir, {"train.micro_batch=10000000"}).find("train.micro_batch"),
              std::string::npos);
    EXPECT_NE(train_config_error(dir, {"data.max_seq_len=100000000000"}).find("data.max_seq_len"),
              std::string::npos);
    EXPECT_NE(train_config_error(dir, {"optim.lr=.nan"}).find("optim.lr"), std::string::npos);
    EXPECT_NE(train_config_error(dir, {"optim.max_grad_norm=.inf"}).find("optim.max_grad_norm"),
              std::string::npos);
    EXPECT_EQ(train_config_error(dir, {}), "(no error)");
}

TEST(Bounds, DuplicateYamlKeysAreRefusedNamingBothLines) {
    const std::string dir = test::scratch_dir("bounds_yaml_dup");
    const std::string e = train_config_error(dir, {}, "lora:\n  r: 8\n  alpha: 16\n  r: 64\n");
    EXPECT_NE(e.find("c.yaml:6:3: duplicate key 'lora.r' (first given at line 4)"),
              std::string::npos)
        << e;
    const std::string sections =
        train_config_error(dir, {}, "train: {max_steps: 2}\ntrain: {max_steps: 3}\n");
    EXPECT_NE(sections.find("duplicate key 'train' (first given at line 3)"), std::string::npos)
        << sections;
}

TEST(Bounds, ForeignQuantizationConfigIsRefusedByName) {
    for (const std::string method : {"awq", "gptq", "fp8"}) {
        const std::string e =
            config_error({{"quantization_config", {{"quant_method", method}, {"bits", 4}}}});
        EXPECT_NE(e.find("found \"" + method + "\""), std::string::npos) << e;
        EXPECT_NE(e.find("not supported"), std::string::npos) << e;
    }
    EXPECT_EQ(config_error({{"quantization_config",
                             {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}}}}),
              "(no error)");
}

// PEFT applies an adapter only to the modules its target_modules finds, silently: an export whose
// targets name modules the base lacks is refused, naming the target and the base, and writes
// nothing.
TEST(Bounds, PeftExportWithTargetsTheBaseLacksIsRefused) {
    const std::string dir = test::scratch_dir("bounds_peft_targets");
    const std::string model = test::copy_stories_model(dir);
    test::write_small_adapter(dir + "/adapter");
    const std::string config_path = dir + "/adapter/adapter_config.json";
    nlohmann::json config = nlohmann::json::parse(test::read_text(config_path));
    config["target_modules"] = {"q_proj", "query_key_value"};
    std::ofstream(config_path) << config.dump();
    auto r = test::run_command(test::tool("qlora-export") + " --base " + model + " --adapter " +
                               dir + "/adapter --format peft --out " + dir + "/out");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    ASSERT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
    EXPECT_NE(r.output.find("target_modules names 'query_key_value', but the base " + model +
                            " has no such module"),
              std::string::npos)
        << r.output;
    EXPECT_FALSE(fs::exists(dir + "/out"));
}

std::string write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

TEST(Bounds, BinaryUtf16AndInvalidUtf8AreNotText) {
    const std::string dir = test::scratch_dir("bounds_text");
    const std::string utf16("\xFF\xFEh\0e\0l\0l\0o\0\n\0", 14);
    EXPECT_NE(test::error_of([&] {
                  data::read_records(write_bytes(dir + "/a.txt", utf16), data::Format::kText,
                                     false);
              }).find("a.txt:1: not UTF-8 text: starts with a UTF-16 byte-order mark"),
              std::string::npos);
    const std::string binary = std::string("ok line\nsecond\n") + std::string(
                                                                      "\x7f"
                                                                      "ELF\0\0\x01",
                                                                      7);
    EXPECT_NE(test::error_of([&] {
                  data::read_records(write_bytes(dir + "/b.txt", binary), data::Format::kText,
                                     false);
              }).find("b.txt:3: not UTF-8 text"),
              std::string::npos);
    const std::string jsonl = "{\"text\": \"fine\"}\n{\"text\": \"caf\xE9\"}\n";
    const std::string e = test::error_of([&] {
        data::read_records(write_bytes(dir + "/c.jsonl", jsonl), data::Format::kText, false);
    });
    EXPECT_NE(e.find("c.jsonl:2: not UTF-8 text: invalid UTF-8"), std::string::npos) << e;
    const std::string nul_jsonl("{\"text\": \"a\"}\n{\"te\0xt\": 1}\n", 27);
    EXPECT_NE(test::error_of([&] {
                  data::read_records(write_bytes(dir + "/d.jsonl", nul_jsonl), data::Format::kText,
                                     true);
              }).find("d.jsonl:2: not UTF-8 text: holds a NUL byte"),
              std::string::npos);
    // Well-formed UTF-8 of every length passes; overlong forms and surrogates do not.
    EXPECT_FALSE(data::invalid_utf8_at("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
    EXPECT_EQ(data::invalid_utf8_at("ab\xC0\xAF"), std::optional<size_t>(2));
    EXPECT_EQ(data::invalid_utf8_at("\xED\xA0\x80"), std::optional<size_t>(0));
    EXPECT_EQ(data::invalid_utf8_at("\xF4\x90\x80\x80"), std::optional<size_t>(0));
    EXPECT_EQ(data::invalid_utf8_at("x\xE2\x82"), std::optional<size_t>(1));
}

// Cutting a record before encode keeps exactly the tokens the sample would keep, and a 20 MB
// record costs what a small one does.
TEST(Bounds, HugeRecordIsCutBeforeTokenizing) {
    const std::string dir = test::scratch_dir("bounds_huge_record");
    tokenizer::Tokenizer tok(test::shared_data("stories260K/hf"));
    std::string story = test::read_text(test::shared_data("text/tinystories_sample_cs336.txt"));
    story.erase(std::remove(story.begin(), story.end(), '\n'), story.end());
    std::string text;
    while (text.size() < 400'000) text += story + " ";
    data::Record r;
    r.text = text;
    const int64_t max_seq_len = 256;
    data::cap_record_bytes(r, data::record_byte_budget(max_seq_len));
    EXPECT_EQ(r.text.size(), static_cast<size_t>(max_seq_len * limits::kMaxBytesPerToken));
    std::vector<int64_t> full = tok.encode(text, false, false);
    std::vector<int64_t> cut = tok.encode(r.text, false, false);
    full.resize(max_seq_len);
    cut.resize(max_seq_len);
    EXPECT_EQ(full, cut);

    while (text.size() < 20'000'000) text += text;
    nlohmann::json record = {{"text", text}};
    std::ofstream(dir + "/big.jsonl") << record.dump() << "\n";
    data::DatasetOptions o;
    o.format = data::Format::kText;
    o.tmpl = data::Template::kPlain;
    o.tokenize.max_seq_len = max_seq_len;
    const auto t0 = clock_type::now();
    data::Dataset ds = data::load_dataset(dir + "/big.jsonl", tok, o);
    const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    ASSERT_EQ(ds.samples.size(), 1u);
    EXPECT_EQ(static_cast<int64_t>(ds.samples[0].tokens.size()), max_seq_len);
    EXPECT_LT(seconds, 10.0) << "a 20 MB record must not be tokenized whole";
}

}  // namespace
}  // namespace qlora
