// state_dict round trip for every optimizer kind: save after some steps (through a safetensors
// file, as the trainer does), load into a fresh optimizer, continue: identical to never stopping.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "optim/optimizer_factory.h"
#include "support/test_support.h"

namespace qlora::optim {
namespace {

using qlora::test::tensors_identical;

std::vector<at::Tensor> make_params() {
    at::manual_seed(3);
    // 8192 -> 8-bit states in 8-bit kinds; 100 stays fp32; 4099 has a partial last block.
    return {at::randn({64, 128}).requires_grad_(true), at::randn({100}).requires_grad_(true),
            at::randn({4099}).requires_grad_(true)};
}

void run_steps(Optimizer& opt, std::vector<at::Tensor>& params, int first, int count) {
    for (int s = first; s < first + count; ++s) {
        at::manual_seed(100 + s);
        for (auto& p : params) p.mutable_grad() = at::randn_like(p) * 0.1;
        opt.step(1e-2 / (1 + s));
    }
}

std::vector<at::Tensor> clone_all(const std::vector<at::Tensor>& params) {
    std::vector<at::Tensor> out;
    for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_(true));
    return out;
}

class StateDictRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(StateDictRoundTrip, ResumedRunEqualsUninterrupted) {
    const std::string name = GetParam();
    OptimOptions o;
    o.weight_decay = 0.05;
    std::vector<at::Tensor> straight = make_params();
    auto opt = make_optimizer(name, straight, o);
    run_steps(*opt, straight, 0, 4);

    // Save: the flat dict into a safetensors file.
    // gtest's temp dir rather than scratch_dir(): no std::filesystem here (see the report on
    // remove_all resolving into libtorch.so).
    const std::string path = ::testing::TempDir() + "qlora_optim_state_" + name + ".safetensors";
    std::vector<std::pair<std::string, at::Tensor>> entries;
    for (const auto& [k, t] : opt->state_dict()) entries.emplace_back(k, t);
    io::save_safetensors(path, entries);

    // Resume: fresh parameters holding the saved values, fresh optimizer, state from the file.
    std::vector<at::Tensor> resumed = clone_all(straight);
    auto opt2 = make_optimizer(name, resumed, o);
    io::SafetensorsReader reader(path);
    StateDict loaded;
    for (const auto& n : reader.names()) loaded[n] = reader.load(n);
    opt2->load_state_dict(loaded);
    EXPECT_EQ(opt2->state_bytes(), opt->state_bytes());

    run_steps(*opt, straight, 4, 3);
    run_steps(*opt2, resumed, 4, 3);
    for (size_t i = 0; i < straight.size(); ++i) {
        EXPECT_TRUE(tensors_identical(straight[i].detach(), resumed[i].detach())) << "param " << i;
    }
    StateDict a = opt->state_dict(), b = opt2->state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, t] : a) EXPECT_TRUE(tensors_identical(t, b.at(k))) << k;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, StateDictRoundTrip,
                         ::testing::Values("adamw_32bit", "paged_adamw_32bit", "adamw_8bit",
                                           "paged_adamw_8bit"));

TEST(StateDict, WrongKindOrShapeIsAClearError) {
    std::vector<at::Tensor> params = make_params();
    auto eight = make_optimizer("adamw_8bit", params);
    auto full = make_optimizer("adamw_32bit", params);
    try {
        full->load_state_dict(eight->state_dict());
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("state.0.m'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("different optimizer kind"), std::string::npos)
            << e.what();
    }
    StateDict sd = full->state_dict();
    sd["state.1.v"] = at::zeros({99});
    EXPECT_THROW(full->load_state_dict(sd), Error);
    sd = full->state_dict();
    sd.erase("state.2.step");
    EXPECT_THROW(full->load_state_dict(sd), Error);
}

TEST(StateDict, ParametersWithoutGradSkipTheirStep) {
    std::vector<at::Tensor> params = make_params();
    auto opt = make_optimizer("adamw_32bit", params);
    at::Tensor before = params[1].detach().clone();
    params[0].mutable_grad() = at::ones_like(params[0]);
    opt->step(1e-2);
    StateDict sd = opt->state_dict();
    EXPECT_EQ(sd.at("state.0.step").item<int64_t>(), 1);
    EXPECT_EQ(sd.at("state.1.step").item<int64_t>(), 0);
    EXPECT_TRUE(tensors_identical(before, params[1].detach()));
    opt->zero_grad();
    EXPECT_EQ(params[0].grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace qlora::optim
