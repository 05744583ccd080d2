// qlora-export outputs against the peers (setup venv): PEFT loads our re-saved adapter and scores
// it as qlora-eval --adapter does; we load and merge an adapter PEFT saved; transformers loads the
// merged bf16/fp16 folders and the bitsandbytes-4bit one with our losses; bitsandbytes dequantizes
// our requantized merged weights to exactly our values. Losses: scripts/check_merged_export.py,
// qlora-eval's protocol on the cs336 sample (1804 tokens, windows of 512), float32 on CPU.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "export/quantize_model.h"
#include "io/bnb_format.h"
#include "io/safetensors.h"
#include "lora/peft_adapter.h"
#include "model/llama_layout.h"
#include "support/test_support.h"

namespace qlora::exporting {
namespace {

using test::python;

constexpr double kLossTolerance = 1e-4;  // fp32 on CPU, different kernels and summation orders

const char* kTargets[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                          "mlp.down_proj"};

std::string hf_dir() { return test::shared_data("stories260K/hf"); }
std::string data() { return test::shared_data("text/tinystories_sample_cs336.txt"); }

// A seeded adapter on every linear of stories260K, large enough to move the loss.
std::string write_our_adapter(const std::string& dir) {
    io::SafetensorsFolder model(hf_dir());
    lora::PeftAdapter adapter;
    adapter.config.r = 4;
    adapter.config.lora_alpha = 8;
    adapter.config.target_modules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                     "gate_proj", "up_proj", "down_proj"};
    at::manual_seed(7);
    for (int layer = 0; layer < 5; ++layer) {
        for (const char* target : kTargets) {
            const std::string module = "model.layers." + std::to_string(layer) + "." + target;
            at::Tensor w = model.load(module + ".weight");
            adapter.tensors[lora::lora_name(module, 'A')] = at::randn({4, w.size(1)}) * 0.1;
            adapter.tensors[lora::lora_name(module, 'B')] = at::randn({w.size(0), 4}) * 0.05;
        }
    }
    std::filesystem::create_directories(dir);
    lora::save_peft_adapter(dir, adapter);
    return dir;
}

void run_ok(const std::string& command) {
    auto r = test::run_command(command);
    ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
}

double our_loss(const std::string& args) {
    auto r = test::run_command("{ " + test::tool("qlora-eval") + " " + args + " --data " + data() +
                               " --max-seq-len 512 --device cpu 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output).at("loss").get<double>();
}

// check_merged_export.py loss over model specs -> spec -> loss.
std::map<std::string, double> their_losses(const std::vector<std::string>& specs) {
    std::string command = python() + " " + QLORA_SOURCE_DIR +
                          "/scripts/check_merged_export.py loss " + data() + " 512";
    for (const auto& s : specs) command += " " + s;
    auto r = test::run_command("{ " + command + " 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.output;
    std::map<std::string, double> losses;
    std::istringstream lines(r.output);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] != '{') continue;
        auto j = nlohmann::json::parse(line);
        EXPECT_EQ(j.at("tokens").get<int64_t>(), 1804) << line;
        losses[j.at("model").get<std::string>()] = j.at("loss").get<double>();
    }
    EXPECT_EQ(losses.size(), specs.size()) << r.output;
    return losses;
}

TEST(ExportInterop, PeftScoresOurAdapterAsQloraEvalAndWeMergeTheirs) {
    const std::string dir = test::scratch_dir("export_interop_peft");
    const std::string ours = write_our_adapter(dir + "/ours");
    const std::string common = test::tool("qlora-export") + " --base " + hf_dir() + " --threads 1";
    run_ok(common + " --adapter " + ours + " --out " + dir + "/peft --format peft");
    run_ok(python() + " " + QLORA_SOURCE_DIR + "/scripts/check_peft_adapter.py make " + dir +
           "/theirs " + hf_dir());
    // Their adapter (q_proj + v_proj only) merged into the dense weights by us.
    run_ok(common + " --adapter " + dir + "/theirs --out " + dir +
           "/theirs-fp16 --format hf-fp16 --merge-base fp");

    const std::string peft_spec = hf_dir() + ",adapter=" + dir + "/peft";
    const std::string theirs_spec = hf_dir() + ",adapter=" + dir + "/theirs";
    const std::string merged_spec = dir + "/theirs-fp16";
    auto theirs = their_losses({peft_spec, theirs_spec, merged_spec});
    const double base = our_loss("--model " + hf_dir());
    const double with_ours = our_loss("--model " + hf_dir() + " --adapter " + dir + "/peft");
    const double with_theirs = our_loss("--model " + hf_dir() + " --adapter " + dir + "/theirs");
    const double merged_theirs = our_loss("--model " + dir + "/theirs-fp16");
    std::printf(
        "base %.8f | our adapter: qlora-eval %.8f, PEFT %.8f | PEFT's adapter: qlora-eval %.8f, "
        "PEFT %.8f | "
        "merged fp16: qlora-eval %.8f, transformers %.8f\n",
        base, with_ours, theirs[peft_spec], with_theirs, theirs[theirs_spec], merged_theirs,
        theirs[merged_spec]);
    EXPECT_GT(std::abs(with_ours - base), 0.01);  // the adapter matters
    EXPECT_NEAR(theirs[peft_spec], with_ours, kLossTolerance);
    EXPECT_NEAR(theirs[theirs_spec], with_theirs, kLossTolerance);
    EXPECT_NEAR(theirs[merged_spec], merged_theirs, kLossTolerance);
}

TEST(ExportInterop, TransformersAndBitsandbytesLoadTheMergedFolders) {
    const std::string dir = test::scratch_dir("export_interop_hf");
    const std::string adapter = write_our_adapter(dir + "/adapter");
    const std::string common = test::tool("qlora-export") + " --base " + hf_dir() + " --adapter " +
                               adapter + " --threads 1";
    auto bf16 =
        test::run_command("{ " + common + " --out " + dir + "/bf16 --format hf-bf16 --eval-data " +
                          data() + " --max-seq-len 512 2>/dev/null; }");
    ASSERT_EQ(bf16.exit_code, 0) << bf16.output;
    run_ok(common + " --out " + dir + "/fp16 --format hf-fp16 --merge-base fp");
    run_ok(common + " --out " + dir + "/nf4 --format hf-nf4");

    // bitsandbytes dequantizes our requantized merged weights to exactly ours.
    io::SafetensorsFolder nf4(dir + "/nf4");
    std::vector<std::pair<std::string, at::Tensor>> ours;
    for (const std::string& name : nf4.names()) {
        if (model::is_quantized_weight_name(name) && io::is_bnb_4bit_weight(nf4, name)) {
            ours.emplace_back(name, io::read_bnb_4bit(nf4, name).dequantize(at::kFloat));
        }
    }
    ASSERT_EQ(ours.size(), 35u);
    io::save_safetensors(dir + "/ours.safetensors", ours);
    auto check =
        test::run_command(python() + " " + QLORA_SOURCE_DIR + "/scripts/check_bnb_checkpoint.py " +
                          dir + "/nf4 " + dir + "/ours.safetensors");
    ASSERT_EQ(check.exit_code, 0) << check.output;
    EXPECT_NE(check.output.find("checked 35 quantized linears"), std::string::npos) << check.output;

    // Losses: transformers on each folder, qlora-eval on each, and our in-memory merge (the table).
    const std::string nf4_spec = dir + "/nf4,bnb";
    auto theirs = their_losses({dir + "/bf16", dir + "/fp16", nf4_spec});
    const double bf16_ours = our_loss("--model " + dir + "/bf16");
    const double fp16_ours = our_loss("--model " + dir + "/fp16");
    const double nf4_ours = our_loss("--model " + dir + "/nf4");
    std::printf(
        "bf16: qlora-eval %.8f, transformers %.8f | fp16: qlora-eval %.8f, transformers %.8f | "
        "nf4: qlora-eval %.8f, transformers+bnb %.8f\n%s",
        bf16_ours, theirs[dir + "/bf16"], fp16_ours, theirs[dir + "/fp16"], nf4_ours,
        theirs[nf4_spec], bf16.output.c_str());
    EXPECT_NEAR(theirs[dir + "/bf16"], bf16_ours, kLossTolerance);
    EXPECT_NEAR(theirs[dir + "/fp16"], fp16_ours, kLossTolerance);
    EXPECT_NEAR(theirs[nf4_spec], nf4_ours, kLossTolerance);
    char row[32];
    std::snprintf(row, sizeof row, "%10.4f", bf16_ours);
    EXPECT_NE(bf16.output.find(std::string("merged bfloat16")), std::string::npos) << bf16.output;
    EXPECT_NE(bf16.output.find(row), std::string::npos) << "in-memory merge row " << row << " in\n"
                                                        << bf16.output;
}

}  // namespace
}  // namespace qlora::exporting
