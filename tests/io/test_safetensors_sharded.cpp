// Hugging Face folders: the sharded writer (shard names, index json, shard sizes, stale files) and
// SafetensorsFolder reading single files and shards back, lazily and with clear errors.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

namespace fs = std::filesystem;
using qlora::test::tensors_identical;

std::set<std::string> files_in(const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
}

std::string expect_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no qlora::Error thrown";
    return {};
}

// Ten F32 tensors of 100 bytes each, distinct values.
std::vector<std::pair<std::string, at::Tensor>> ten_tensors() {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (int i = 0; i < 10; ++i) {
        out.emplace_back("layer." + std::to_string(i) + ".weight",
                         at::arange(25, at::kFloat).reshape({5, 5}) + 100.0 * i);
    }
    return out;
}

TEST(SafetensorsSharded, SplitsIntoHfNamedShardsWithIndex) {
    std::string dir = qlora::test::scratch_dir("st_sharded");
    auto tensors = ten_tensors();
    ShardedSafetensorsWriter writer(dir, "model", 250);  // two 100-byte tensors per shard
    for (const auto& [name, t] : tensors) writer.add(name, t);
    auto written = writer.finish();

    std::set<std::string> expected_files = {"model.safetensors.index.json"};
    for (int k = 1; k <= 5; ++k) {
        expected_files.insert("model-0000" + std::to_string(k) + "-of-00005.safetensors");
    }
    EXPECT_EQ(files_in(dir), expected_files);
    ASSERT_EQ(written.size(), 6u);
    EXPECT_EQ(written.back(), dir + "/model.safetensors.index.json");

    auto index = read_json(dir + "/model.safetensors.index.json");
    EXPECT_EQ(index["metadata"]["total_size"], 1000);
    ASSERT_EQ(index["weight_map"].size(), 10u);
    EXPECT_EQ(index["weight_map"]["layer.0.weight"], "model-00001-of-00005.safetensors");
    EXPECT_EQ(index["weight_map"]["layer.1.weight"], "model-00001-of-00005.safetensors");
    EXPECT_EQ(index["weight_map"]["layer.2.weight"], "model-00002-of-00005.safetensors");
    EXPECT_EQ(index["weight_map"]["layer.9.weight"], "model-00005-of-00005.safetensors");

    SafetensorsReader shard(dir + "/model-00003-of-00005.safetensors");
    EXPECT_EQ(shard.names(), (std::vector<std::string>{"layer.4.weight", "layer.5.weight"}));
    EXPECT_EQ(shard.metadata().at("format"), "pt");

    SafetensorsFolder folder(dir);
    EXPECT_EQ(folder.files().size(), 5u);
    EXPECT_EQ(folder.names().size(), 10u);
    for (const auto& [name, t] : tensors)
        EXPECT_TRUE(tensors_identical(t, folder.load(name))) << name;
    EXPECT_EQ(folder.info("layer.7.weight").shape, (std::vector<int64_t>{5, 5}));
}

TEST(SafetensorsSharded, OversizedTensorGetsItsOwnShard) {
    std::string dir = qlora::test::scratch_dir("st_sharded_big");
    ShardedSafetensorsWriter writer(dir, "model", 100);
    writer.add("small.a", at::ones({10}));  // 40 bytes
    writer.add("big", at::ones({100}));     // 400 bytes > max
    writer.add("small.b", at::ones({10}));  // 40 bytes
    writer.add("small.c", at::ones({10}));  // 40 bytes
    writer.finish();
    auto index = read_json(dir + "/model.safetensors.index.json");
    EXPECT_EQ(index["weight_map"]["small.a"], "model-00001-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["big"], "model-00002-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["small.b"], "model-00003-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["small.c"], "model-00003-of-00003.safetensors");
    EXPECT_EQ(index["metadata"]["total_size"], 520);
}

TEST(SafetensorsSharded, EverythingInOneShardWritesASingleFile) {
    std::string dir = qlora::test::scratch_dir("st_sharded_single");
    ShardedSafetensorsWriter writer(dir, "adapter_model", 1 << 20, {{"format", "pt"}});
    auto tensors = ten_tensors();
    for (const auto& [name, t] : tensors) writer.add(name, t);
    auto written = writer.finish();
    EXPECT_EQ(written, (std::vector<std::string>{dir + "/adapter_model.safetensors"}));
    EXPECT_EQ(files_in(dir), (std::set<std::string>{"adapter_model.safetensors"}));
    SafetensorsFolder folder(dir, "adapter_model");
    EXPECT_EQ(folder.files(), written);
    for (const auto& [name, t] : tensors) EXPECT_TRUE(tensors_identical(t, folder.load(name)));
}

TEST(SafetensorsSharded, CopiesTensorsSoCallersMayReuseThem) {
    std::string dir = qlora::test::scratch_dir("st_sharded_copy");
    ShardedSafetensorsWriter writer(dir, "model", 1000);
    auto buffer = at::zeros({4});
    writer.add("first", buffer);
    buffer.fill_(7);  // reused by the caller before the shard is flushed
    writer.add("second", buffer);
    writer.finish();
    SafetensorsFolder folder(dir);
    EXPECT_TRUE(tensors_identical(at::zeros({4}), folder.load("first")));
    EXPECT_TRUE(tensors_identical(at::full({4}, 7.0f), folder.load("second")));
}

TEST(SafetensorsSharded, ReplacesAnEarlierSaveAndCleansUpWhenAbandoned) {
    std::string dir = qlora::test::scratch_dir("st_sharded_stale");
    save_safetensors(dir + "/model.safetensors", {{"old", at::ones({1})}});
    std::ofstream(dir + "/model-00009-of-00009.safetensors") << "stale";
    std::ofstream(dir + "/config.json") << "{}";
    std::ofstream(dir + "/model-1-of-2.safetensors") << "not our naming";        // kept
    std::ofstream(dir + "/other-00001-of-00001.safetensors") << "another stem";  // kept
    {
        ShardedSafetensorsWriter abandoned(dir, "model", 8);
        abandoned.add("a", at::ones({2}));
        abandoned.add("b", at::ones({2}));  // flushes "a" to a pending shard
    }
    EXPECT_EQ(files_in(dir),
              (std::set<std::string>{"model.safetensors", "config.json",
                                     "model-00009-of-00009.safetensors", "model-1-of-2.safetensors",
                                     "other-00001-of-00001.safetensors"}));
    ShardedSafetensorsWriter writer(dir, "model", 8);
    writer.add("a", at::ones({2}));
    writer.add("b", at::ones({2}));
    writer.finish();
    EXPECT_EQ(files_in(dir),
              (std::set<std::string>{"config.json", "model.safetensors.index.json",
                                     "model-00001-of-00002.safetensors",
                                     "model-00002-of-00002.safetensors", "model-1-of-2.safetensors",
                                     "other-00001-of-00001.safetensors"}));
    EXPECT_FALSE(SafetensorsFolder(dir).contains("old"));
}

TEST(SafetensorsSharded, MisuseIsReported) {
    std::string dir = qlora::test::scratch_dir("st_sharded_misuse");
    ShardedSafetensorsWriter writer(dir);
    writer.add("a", at::ones({1}));
    EXPECT_NE(
        expect_error([&] { writer.add("a", at::ones({1})); }).find("tensor 'a' is added twice"),
        std::string::npos);
    EXPECT_NE(expect_error([&] { writer.add("c", at::ones({1}, at::kComplexDouble)); }).find("'c'"),
              std::string::npos);
    writer.finish();
    EXPECT_NE(expect_error([&] { writer.add("b", at::ones({1})); }).find("after finish()"),
              std::string::npos);
}

TEST(SafetensorsFolder, SingleFileFolderAndDirectFilePath) {
    std::string dir = qlora::test::scratch_dir("st_folder_single");
    save_safetensors(dir + "/model.safetensors", {{"z", at::ones({2})}, {"a", at::zeros({1})}});
    SafetensorsFolder folder(dir);
    EXPECT_EQ(folder.names(), (std::vector<std::string>{"a", "z"}));
    EXPECT_EQ(folder.files(), (std::vector<std::string>{dir + "/model.safetensors"}));
    EXPECT_TRUE(tensors_identical(at::ones({2}), folder.view("z")));
    SafetensorsFolder file = [&] { return SafetensorsFolder(dir + "/model.safetensors"); }();
    SafetensorsFolder moved(std::move(file));
    file = std::move(moved);
    EXPECT_TRUE(file.contains("a"));
    EXPECT_FALSE(file.contains("b"));
    std::string msg = expect_error([&] { folder.load("b"); });
    EXPECT_NE(msg.find("no tensor named 'b'"), std::string::npos) << msg;
}

TEST(SafetensorsFolder, ReadsTheRealStories260KFolder) {
    SafetensorsFolder folder(qlora::test::shared_data("stories260K/hf"));
    EXPECT_EQ(folder.names().size(), 47u);
    EXPECT_EQ(folder.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{512, 64}));
}

TEST(SafetensorsFolder, ShardReadersOpenLazily) {
    std::string dir = qlora::test::scratch_dir("st_folder_lazy");
    ShardedSafetensorsWriter writer(dir, "model", 4);
    writer.add("good", at::ones({1}));
    writer.add("broken", at::ones({1}));
    writer.finish();
    // Corrupt the second shard: the folder still opens, and only that tensor fails.
    std::ofstream(dir + "/model-00002-of-00002.safetensors", std::ios::trunc) << "junk";
    SafetensorsFolder folder(dir);
    EXPECT_TRUE(tensors_identical(at::ones({1}), folder.load("good")));
    std::string msg = expect_error([&] { folder.load("broken"); });
    EXPECT_NE(msg.find("model-00002-of-00002.safetensors: file is 4 bytes"), std::string::npos)
        << msg;
}

TEST(SafetensorsFolder, ConcurrentLoadsAcrossShards) {
    std::string dir = qlora::test::scratch_dir("st_folder_threads");
    ShardedSafetensorsWriter writer(dir, "model", 100);
    auto tensors = ten_tensors();
    for (const auto& [name, t] : tensors) writer.add(name, t);
    writer.finish();
    SafetensorsFolder folder(dir);  // no shard opened yet: the threads race to open them
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, w] {
            for (int rep = 0; rep < 5; ++rep) {
                for (size_t i = 0; i < tensors.size(); ++i) {
                    const auto& [name, t] = tensors[(i + static_cast<size_t>(w)) % tensors.size()];
                    if (!at::equal(t, folder.load(name))) ++mismatches;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(mismatches.load(), 0);
}

TEST(SafetensorsFolder, BadFoldersAndIndexesAreReported) {
    std::string dir = qlora::test::scratch_dir("st_folder_bad");
    std::string msg = expect_error([&] { SafetensorsFolder f(dir + "/absent"); });
    EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
    msg = expect_error([&] { SafetensorsFolder f(dir); });
    EXPECT_NE(msg.find("has neither model.safetensors nor model.safetensors.index.json"),
              std::string::npos)
        << msg;

    write_file_atomic(dir + "/model.safetensors.index.json",
                      R"({"weight_map": {"w": "model-00001-of-00002.safetensors"}})");
    msg = expect_error([&] { SafetensorsFolder f(dir); });
    EXPECT_NE(msg.find("weight_map puts \"w\" in \"model-00001-of-00002.safetensors\", which "
                       "does not exist"),
              std::string::npos)
        << msg;

    // Fuzz finding (fuzz_safetensors_index): a shard name the file system refuses (here over
    // NAME_MAX) made std::filesystem throw past the parser; now it is this index's error, the name
    // cut to a readable length.
    write_file_atomic(dir + "/model.safetensors.index.json",
                      R"({"weight_map": {"w": ")" + std::string(300, 'x') + R"("}})");
    msg = expect_error([&] { SafetensorsFolder f(dir); });
    EXPECT_NE(msg.find("which cannot be opened here: File name too long"), std::string::npos)
        << msg;
    EXPECT_LT(msg.size(), 400u) << msg;

    write_file_atomic(dir + "/model.safetensors.index.json", R"({"metadata": {}})");
    msg = expect_error([&] { SafetensorsFolder f(dir); });
    EXPECT_NE(msg.find("expected a JSON object with a \"weight_map\" object"), std::string::npos)
        << msg;

    write_file_atomic(dir + "/model.safetensors.index.json", "{ nope");
    msg = expect_error([&] { SafetensorsFolder f(dir); });
    EXPECT_NE(msg.find("model.safetensors.index.json: not valid JSON"), std::string::npos) << msg;

    // The index names a real file that lacks the tensor.
    save_safetensors(dir + "/shard.safetensors", {{"other", at::ones({1})}});
    write_file_atomic(dir + "/model.safetensors.index.json",
                      R"({"weight_map": {"w": "shard.safetensors"}})");
    SafetensorsFolder folder(dir);
    msg = expect_error([&] { folder.info("w"); });
    EXPECT_NE(msg.find("the index puts tensor 'w' in"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qlora::io
