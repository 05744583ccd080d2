// MergedView: the merge math against hand computations, the as-trained NF4 base, rsLoRA,
// quant settings from the run's resolved config, 4-bit bases, tied lm_head, and bad adapters.
#include <gtest/gtest.h>

#include <filesystem>

#include "export/attach_adapter.h"
#include "export/export_eval.h"
#include "export/export_fixture.h"
#include "export/merge.h"
#include "export/quantize_model.h"
#include "io/bnb_format.h"
#include "lora/adapter_metadata.h"
#include "model/llama_loader.h"
#include "train/config.h"

namespace qlora::exporting {
namespace {

using test::error_of;
using test::tensors_identical;
namespace fx = fixture;

const std::string kQ0 = "model.layers.0.self_attn.q_proj.weight";

struct Folders {
    std::string base, adapter;
};

Folders make(const std::string& name, const lora::PeftAdapter& adapter, bool tie = false) {
    const std::string dir = test::scratch_dir(name);
    fx::write_tiny_base(dir + "/base", tie);
    fx::write_adapter(dir + "/adapter", adapter);
    return {dir + "/base", dir + "/adapter"};
}

TEST(Merge, HandPickedEntries) {
    // W0 = 0, A picks columns 0 and 1, B has two nonzero entries: s*B*A is readable by hand.
    lora::PeftAdapter adapter = fx::tiny_adapter(2, 4, {"self_attn.q_proj"});  // scale 4/2 = 2
    at::Tensor a = at::zeros({2, 16});
    a[0][0] = 1.0;
    a[1][1] = 1.0;
    at::Tensor b = at::zeros({16, 2});
    b[3][0] = 0.5;
    b[5][1] = -0.25;
    adapter.tensors[lora::lora_name("model.layers.0.self_attn.q_proj", 'A')] = a;
    adapter.tensors[lora::lora_name("model.layers.0.self_attn.q_proj", 'B')] = b;
    Folders f = make("merge_hand", adapter);
    io::SafetensorsFolder base(f.base);
    MergedView merged(f.base, f.adapter, {MergeBase::kFp, std::nullopt});
    EXPECT_DOUBLE_EQ(merged.scale(), 2.0);
    at::Tensor delta = merged.tensor(kQ0) - base.load(kQ0);
    EXPECT_FLOAT_EQ(delta[3][0].item<float>(), 1.0f);   // 2 * 0.5 * 1
    EXPECT_FLOAT_EQ(delta[5][1].item<float>(), -0.5f);  // 2 * -0.25 * 1
    EXPECT_EQ(delta.abs().gt(1e-7).sum().item<int64_t>(), 2);
    // Unadapted tensors pass through unchanged.
    EXPECT_TRUE(
        tensors_identical(base.load("model.norm.weight"), merged.tensor("model.norm.weight")));
    EXPECT_TRUE(tensors_identical(base.load("model.layers.1.mlp.up_proj.weight"),
                                  merged.tensor("model.layers.1.mlp.up_proj.weight")));
}

TEST(Merge, EveryEntryMatchesLoops) {
    Folders f = make("merge_loops", fx::tiny_adapter(4, 8));
    io::SafetensorsFolder base(f.base);
    MergedView merged(f.base, f.adapter, {MergeBase::kFp, std::nullopt});
    const std::string module = "model.layers.1.mlp.down_proj";
    at::Tensor w0 = base.load(module + ".weight");                             // [16, 32]
    at::Tensor a = merged.adapter().tensors.at(lora::lora_name(module, 'A'));  // [4, 32]
    at::Tensor b = merged.adapter().tensors.at(lora::lora_name(module, 'B'));  // [16, 4]
    at::Tensor got = merged.tensor(module + ".weight");
    double max_err = 0.0;
    for (int64_t i = 0; i < 16; ++i) {
        for (int64_t j = 0; j < 32; ++j) {
            double want = w0[i][j].item<double>();
            for (int64_t k = 0; k < 4; ++k)
                want += 2.0 * b[i][k].item<double>() * a[k][j].item<double>();
            max_err = std::max(max_err, std::abs(want - got[i][j].item<double>()));
        }
    }
    EXPECT_LT(max_err, 1e-6);
    EXPECT_GT((got - w0).abs().max().item<float>(), 1e-3f);  // the delta is not negligible
}

TEST(Merge, RsloraScale) {
    lora::PeftAdapter adapter = fx::tiny_adapter(4, 8, {"self_attn.v_proj"});
    adapter.config.use_rslora = true;
    Folders f = make("merge_rslora", adapter);
    MergedView merged(f.base, f.adapter, {MergeBase::kFp, std::nullopt});
    EXPECT_DOUBLE_EQ(merged.scale(), 4.0);  // 8 / sqrt(4)
    const std::string module = "model.layers.0.self_attn.v_proj";
    at::Tensor delta =
        merged.tensor(module + ".weight") - io::SafetensorsFolder(f.base).load(module + ".weight");
    at::Tensor want = 4.0 * at::matmul(adapter.tensors.at(lora::lora_name(module, 'B')),
                                       adapter.tensors.at(lora::lora_name(module, 'A')));
    EXPECT_TRUE(test::tensors_close(want, delta, 1e-6, 1e-5));
}

TEST(Merge, DefaultBaseIsTheNf4RoundTripOfEveryDecoderLinear) {
    Folders f = make("merge_nf4", fx::tiny_adapter(4, 8, {"self_attn.q_proj"}));
    io::SafetensorsFolder base(f.base);
    MergedView merged(f.base, f.adapter);
    EXPECT_EQ(merged.merge_base(), MergeBase::kNf4);
    EXPECT_EQ(merged.quant().options.blocksize, 64);
    EXPECT_NE(merged.describe().find("defaults"), std::string::npos) << merged.describe();
    auto deq = [&](const std::string& name) {
        return quant::Quant4Tensor::quantize(base.load(name), {}).dequantize(at::kFloat);
    };
    const at::Tensor& a =
        merged.adapter().tensors.at(lora::lora_name("model.layers.0.self_attn.q_proj", 'A'));
    const at::Tensor& b =
        merged.adapter().tensors.at(lora::lora_name("model.layers.0.self_attn.q_proj", 'B'));
    EXPECT_TRUE(tensors_identical(deq(kQ0).addmm(b, a, 1.0, 2.0), merged.tensor(kQ0)));
    // Not adapted, still 4-bit in training: the round trip. lm_head and norms stay as stored.
    EXPECT_TRUE(tensors_identical(deq("model.layers.1.mlp.gate_proj.weight"),
                                  merged.tensor("model.layers.1.mlp.gate_proj.weight")));
    EXPECT_TRUE(tensors_identical(base.load("lm_head.weight"), merged.tensor("lm_head.weight")));
}

TEST(Merge, QuantSettingsComeFromTheAdapterMetadata) {
    const std::string dir = test::scratch_dir("merge_resolved");
    fx::write_tiny_base(dir + "/base");
    const std::string ckpt = dir + "/run/checkpoints/step-2";
    fx::write_adapter(ckpt, fx::tiny_adapter());
    lora::AdapterMetadata run;
    run.quant = {quant::QuantType::kFP4, 128, false};
    lora::save_adapter_metadata(ckpt, run);
    MergedView merged(dir + "/base", dir + "/run/checkpoints/step-2");
    EXPECT_EQ(merged.quant().options.blocksize, 128);
    EXPECT_FALSE(merged.quant().options.double_quant);
    EXPECT_EQ(merged.quant().options.type, quant::QuantType::kFP4);
    EXPECT_EQ(merged.quant().source, ckpt + "/qlora_adapter.json");
    quant::Quant4Options fp4{quant::QuantType::kFP4, 128, false};
    at::Tensor w =
        quant::Quant4Tensor::quantize(
            io::SafetensorsFolder(dir + "/base").load("model.layers.1.mlp.up_proj.weight"), fp4)
            .dequantize(at::kFloat);
    const std::string m = "model.layers.1.mlp.up_proj";
    w.addmm_(merged.adapter().tensors.at(lora::lora_name(m, 'B')),
             merged.adapter().tensors.at(lora::lora_name(m, 'A')), 1.0, 2.0);
    EXPECT_TRUE(tensors_identical(w, merged.tensor(m + ".weight")));

    // A run without quantization trained over the dense base: merge into it by default.
    run.base_quantized = false;
    lora::save_adapter_metadata(ckpt, run);
    EXPECT_EQ(MergedView(dir + "/base", dir + "/run/checkpoints/step-2").merge_base(),
              MergeBase::kFp);
}

TEST(Merge, FourBitBaseIsDequantizedAndEqualsTheDenseNf4Merge) {
    Folders f = make("merge_bnb", fx::tiny_adapter());
    exporting::QuantizeModelOptions q;
    q.model_dir = f.base;
    q.out_dir = f.base + "-nf4";
    q.device = "cpu";
    exporting::quantize_model(q);
    MergedView from_4bit(q.out_dir, f.adapter);
    MergedView from_dense(f.base, f.adapter);
    EXPECT_TRUE(from_4bit.base_is_4bit());
    ASSERT_EQ(from_4bit.names(), from_dense.names());
    for (const std::string& name : from_dense.names()) {
        EXPECT_TRUE(tensors_identical(from_dense.tensor(name), from_4bit.tensor(name))) << name;
    }
    EXPECT_EQ(error_of([&] {
                  MergedView(q.out_dir, f.adapter, {MergeBase::kFp, std::nullopt});
              }),
              "--merge-base fp needs the original 16-bit weights, but " + q.out_dir +
                  " is a bitsandbytes 4-bit checkpoint (give the folder it was quantized from)");
}

TEST(Merge, NamesInModelOrderAndTiedLmHeadUntiedByAnAdapter) {
    lora::PeftAdapter adapter = fx::tiny_adapter(4, 8, {"self_attn.q_proj"});
    at::manual_seed(3);
    adapter.tensors[lora::lora_name("lm_head", 'A')] = at::randn({4, 16});
    adapter.tensors[lora::lora_name("lm_head", 'B')] = at::randn({32, 4});
    Folders f = make("merge_tied", adapter, /*tie=*/true);
    MergedView merged(f.base, f.adapter, {MergeBase::kFp, std::nullopt});
    const auto& names = merged.names();
    ASSERT_EQ(names.size(), 1u + 2 * 9 + 1 + 1);
    EXPECT_EQ(names.front(), "model.embed_tokens.weight");
    EXPECT_EQ(names[1], "model.layers.0.input_layernorm.weight");
    EXPECT_EQ(names[2], kQ0);
    EXPECT_EQ(names[6], "model.layers.0.post_attention_layernorm.weight");
    EXPECT_EQ(names[9], "model.layers.0.mlp.down_proj.weight");
    EXPECT_EQ(names[names.size() - 2], "model.norm.weight");
    EXPECT_EQ(names.back(), "lm_head.weight");
    EXPECT_FALSE(merged.config().tie_word_embeddings);
    at::Tensor e = io::SafetensorsFolder(f.base).load("model.embed_tokens.weight");
    EXPECT_TRUE(tensors_identical(e, merged.tensor("model.embed_tokens.weight")));
    at::Tensor want = e.addmm(adapter.tensors.at(lora::lora_name("lm_head", 'B')),
                              adapter.tensors.at(lora::lora_name("lm_head", 'A')), 1.0, 2.0);
    EXPECT_TRUE(test::tensors_close(want, merged.tensor("lm_head.weight"), 1e-6, 1e-6));
}

TEST(Merge, BadAdaptersAreClearErrors) {
    const std::string dir = test::scratch_dir("merge_bad");
    fx::write_tiny_base(dir + "/base");
    const std::string base = dir + "/base";
    const std::string weights = dir + "/a/adapter_model.safetensors";
    auto err = [&](const lora::PeftAdapter& adapter) {
        test::scratch_dir("merge_bad/a");
        fx::write_adapter(dir + "/a", adapter);
        return error_of([&] { MergedView(base, dir + "/a"); });
    };
    const std::string q0 = "model.layers.0.self_attn.q_proj";

    lora::PeftAdapter wrong_shape = fx::tiny_adapter();
    wrong_shape.tensors[lora::lora_name(q0, 'A')] = at::ones({4, 24});
    EXPECT_EQ(err(wrong_shape), weights + ": '" + lora::lora_name(q0, 'A') +
                                    "' has shape [4, 24], expected [4, 16] (r=4, " + q0 +
                                    " is [16, 16] in " + base +
                                    "/config.json); an adapter for another model?");

    lora::PeftAdapter other_model = fx::tiny_adapter();
    other_model.tensors[lora::lora_name("model.layers.7.self_attn.q_proj", 'A')] =
        at::ones({4, 16});
    other_model.tensors[lora::lora_name("model.layers.7.self_attn.q_proj", 'B')] =
        at::ones({16, 4});
    EXPECT_NE(
        err(other_model)
            .find("is for module 'model.layers.7.self_attn.q_proj', which is not a linear of " +
                  base + " (llama with 2 layers"),
        std::string::npos);

    lora::PeftAdapter missing = fx::tiny_adapter();
    missing.tensors.erase(lora::lora_name("model.layers.1.self_attn.v_proj", 'A'));
    missing.tensors.erase(lora::lora_name("model.layers.1.self_attn.v_proj", 'B'));
    EXPECT_EQ(err(missing),
              weights + ": missing '" + lora::lora_name("model.layers.1.self_attn.v_proj", 'A') +
                  "' (adapter_config.json targets v_proj and " + base + " has 2 layers)");

    lora::PeftAdapter rank = fx::tiny_adapter();
    rank.config.r = 8;  // the tensors have rank 4
    EXPECT_NE(err(rank).find("has rank 4 but adapter_config.json says r=8"), std::string::npos);

    EXPECT_EQ(error_of([&] { MergedView(base, dir + "/none"); }),
              dir + "/none/adapter_config.json: cannot open (expected a PEFT LoRA adapter folder)");
}

TEST(Merge, BadBasesAreClearErrors) {
    Folders f = make("merge_bad_base", fx::tiny_adapter());
    io::SafetensorsFolder base(f.base);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const std::string& name : base.names()) {
        if (name != "model.norm.weight") tensors.emplace_back(name, base.load(name));
    }
    io::save_safetensors(f.base + "/model.safetensors", tensors);
    EXPECT_EQ(error_of([&] { MergedView(f.base, f.adapter); }),
              f.base + ": missing tensor 'model.norm.weight' (llama with 2 layers needs it)");
    tensors.emplace_back("model.norm.weight", at::ones({16}));
    tensors.emplace_back("model.extra.weight", at::ones({16}));
    io::save_safetensors(f.base + "/model.safetensors", tensors);
    EXPECT_EQ(error_of([&] { MergedView(f.base, f.adapter); }),
              f.base + ": unexpected tensor 'model.extra.weight' for a llama model with 2 layers");
    nlohmann::json config = fx::tiny_config();
    config["num_key_value_heads"] = 2;  // k/v would be [16, 16]
    std::ofstream(f.base + "/config.json") << config.dump();
    // The adapter no longer fits: k_proj's B has 8 rows, the config now says 16.
    EXPECT_NE(error_of([&] {
                  MergedView(f.base, f.adapter);
              }).find("self_attn.k_proj.lora_B.weight' has shape [8, 4], expected [16, 4]"),
              std::string::npos);
}

TEST(Merge, MergedModelMatchesTheAdapterForward) {
    Folders f = make("merge_forward", fx::tiny_adapter());
    MergedView merged(f.base, f.adapter);
    model::LoadOptions load;
    load.quant = "nf4";
    model::Llama trained = model::load_llama(f.base, load);
    attach_peft_adapter(*trained, f.adapter);
    model::Llama m =
        build_merged_model(merged, at::kFloat, /*quantize=*/false, c10::kCPU, at::kFloat);
    at::Tensor tokens = at::arange(1, 20, at::kLong).remainder(32).view({1, 19});
    at::NoGradGuard no_grad;
    at::Tensor want = trained->forward(tokens);
    EXPECT_TRUE(test::tensors_close(want, m->forward(tokens), 1e-5, 1e-4));
}

}  // namespace
}  // namespace qlora::exporting
