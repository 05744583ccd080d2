// Activation checkpointing per decoder layer: the same loss and gradients as the plain model
// (dropout included: the recompute replays the generator), and a graph that keeps no per-layer ops.
#include <gtest/gtest.h>

#include <set>

#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "lora_model_fixture.h"

namespace qlora::lora {
namespace {

// The recompute runs the very same ops on the very same inputs: bitwise equality is expected on
// CPU; the tolerance only absorbs a possible thread-scheduling difference in reductions.
constexpr double kGradAtol = 1e-7, kGradRtol = 1e-6;

model::Llama lora_stories(double dropout) {
    model::Llama m = test::load_stories(/*nf4=*/true);
    LoraOptions o;
    o.r = 4;
    o.alpha = 8.0;
    o.dropout = dropout;
    o.init_seed = 3;
    apply_lora(*m, o);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : adapter_parameters(*m)) {
        if (name.ends_with("lora_B.weight")) t.copy_(at::randn(t.sizes(), gen) * 0.05);
    }
    return m;
}

struct Result {
    double loss;
    std::vector<at::Tensor> grads;
};

Result loss_and_grads(model::Llama& m, bool checkpointing, const at::Tensor& batch,
                      bool offload = false) {
    set_gradient_checkpointing(*m, checkpointing, offload);
    EXPECT_EQ(gradient_checkpointing(*m), checkpointing);
    std::vector<at::Tensor> params;
    for (auto& [name, t] : adapter_parameters(*m)) params.push_back(t);
    torch::manual_seed(1234);  // same dropout masks in both runs
    at::Tensor loss = test::lm_loss(m, batch);
    auto grads = torch::autograd::grad({loss}, params);
    return {loss.item<double>(), grads};
}

TEST(Checkpointing, SameLossAndGradientsAsThePlainModel) {
    at::Tensor batch = test::story_batch(2, 32);
    for (double dropout : {0.0, 0.1}) {
        model::Llama m = lora_stories(dropout);
        Result plain = loss_and_grads(m, false, batch);
        Result ckpt = loss_and_grads(m, true, batch);
        EXPECT_EQ(plain.loss, ckpt.loss) << "dropout " << dropout;
        ASSERT_EQ(plain.grads.size(), ckpt.grads.size());
        for (size_t i = 0; i < plain.grads.size(); ++i) {
            EXPECT_TRUE(
                qlora::test::tensors_close(plain.grads[i], ckpt.grads[i], kGradAtol, kGradRtol))
                << "gradient " << i << ", dropout " << dropout;
        }
    }
}

// train.offload_activations on a CPU model: the inputs already live in host memory and are kept
// as they are, so the result is the plain checkpointed one bit for bit. (The CUDA path, where
// they go to pinned host memory: tests/kernels/test_lora_cuda.cpp.)
TEST(Checkpointing, OffloadOnTheCpuIsTheCheckpointedRun) {
    at::Tensor batch = test::story_batch(2, 32);
    model::Llama m = lora_stories(0.1);
    Result ckpt = loss_and_grads(m, true, batch);
    Result offloaded = loss_and_grads(m, true, batch, /*offload=*/true);
    EXPECT_EQ(ckpt.loss, offloaded.loss);
    for (size_t i = 0; i < ckpt.grads.size(); ++i)
        EXPECT_TRUE(qlora::test::tensors_identical(ckpt.grads[i], offloaded.grads[i])) << i;
}

TEST(Checkpointing, BackwardAlsoAccumulatesIntoGradFields) {
    at::Tensor batch = test::story_batch(1, 16);
    model::Llama m = lora_stories(0.0);
    set_gradient_checkpointing(*m, true);
    test::lm_loss(m, batch).backward();
    for (auto& [name, t] : adapter_parameters(*m)) {
        ASSERT_TRUE(t.grad().defined()) << name;
        EXPECT_GT(t.grad().abs().max().item<double>(), 0.0) << name;
    }
}

// With checkpointing, the graph from the loss reaches one node per layer and none of the layers'
// inner ops, but for the last layer, which is not recomputed (its 7 projections' nodes are there);
// without it, every projection's LoraLinearFunction is there.
TEST(Checkpointing, GraphKeepsOnlyLayerBoundaries) {
    at::Tensor batch = test::story_batch(1, 16);
    auto count = [&](bool on) {
        model::Llama m = lora_stories(0.0);
        set_gradient_checkpointing(*m, on);
        at::Tensor loss = test::lm_loss(m, batch);
        std::map<std::string, int> names;
        std::set<torch::autograd::Node*> seen;
        std::vector<torch::autograd::Node*> stack = {loss.grad_fn().get()};
        while (!stack.empty()) {
            auto* n = stack.back();
            stack.pop_back();
            if (!seen.insert(n).second) continue;
            names[n->name()]++;
            for (const auto& e : n->next_edges()) {
                if (e.function) stack.push_back(e.function.get());
            }
        }
        return names;
    };
    auto with = count(true), without = count(false);
    auto find = [](const std::map<std::string, int>& m, const std::string& key) {
        int n = 0;
        for (const auto& [k, v] : m) {
            if (k.find(key) != std::string::npos) n += v;
        }
        return n;
    };
    EXPECT_EQ(find(with, "CheckpointedLayerFunction"), 4);
    EXPECT_EQ(find(with, "LoraLinearFunction"), 7);
    EXPECT_EQ(find(without, "CheckpointedLayerFunction"), 0);
    EXPECT_EQ(find(without, "LoraLinearFunction"), 35);
}

TEST(Checkpointing, InferenceUnderNoGradIsUnchanged) {
    at::Tensor tokens = test::story_batch(1, 16).narrow(1, 0, 16);
    model::Llama m = lora_stories(0.0);
    torch::NoGradGuard no_grad;
    at::Tensor plain = m->forward(tokens);
    set_gradient_checkpointing(*m, true);
    EXPECT_TRUE(qlora::test::tensors_identical(plain, m->forward(tokens)));
}

}  // namespace
}  // namespace qlora::lora
