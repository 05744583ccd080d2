// shard_base's pieces in one process: block runs per rank, slicing a 4-bit tensor and rebuilding
// it from every rank's slice bit for bit, and a one-rank ShardedLayer around a real model's
// forward. Several ranks over real processes: test_torchrun (logits and gradients) and
// test_dp_train (training).
#include <gtest/gtest.h>

#include "dist/sharded_base.h"
#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "model/llama_loader.h"
#include "support/quant4_weights.h"
#include "support/test_support.h"

namespace qlora::dist {
namespace {

using quant::QuantType;

TEST(ShardedBase, RankBlocksCoverEveryBlockOnceInWholeGroups) {
    for (bool dq : {false, true}) {
        const int64_t group = dq ? 256 : 1;
        for (int64_t n : {1, 5, 255, 256, 257, 1000, 4097, 65536}) {
            for (int world : {1, 2, 3, 5, 8}) {
                int64_t next = 0, most = 0, fewest = n;
                for (int r = 0; r < world; ++r) {
                    const BlockRange b = rank_blocks(n, dq, r, world);
                    EXPECT_EQ(b.begin, next) << n << " blocks, rank " << r << " of " << world;
                    EXPECT_LE(b.begin, b.end);
                    EXPECT_EQ(b.begin % group, 0) << "a nested absmax would span two ranks";
                    most = std::max(most, b.end - b.begin);
                    fewest = std::min(fewest, b.end - b.begin);
                    next = b.end;
                }
                EXPECT_EQ(next, n);
                EXPECT_LE(most - fewest, group) << "as even as whole groups go";
            }
        }
    }
}

// Every layout the kernels accept: odd element counts (a short last block, a half-used last
// byte), one block only, more ranks than blocks, blocksizes 32..4096, NF4/FP4, double quant
// on/off with more than one nested group.
TEST(ShardedBase, SlicesRebuildTheTensorBitForBit) {
    struct Case {
        int64_t out, in, blocksize;
    };
    for (const Case c : {Case{3, 5, 64}, Case{17, 131, 32}, Case{64, 1024, 64}, Case{300, 301, 128},
                         Case{96, 4096, 4096}}) {
        for (QuantType type : {QuantType::kNF4, QuantType::kFP4}) {
            for (bool dq : {false, true}) {
                const quant::Quant4Tensor w =
                    test::random_weight(c.out, c.in, type, c.blocksize, dq, 5 + c.out);
                const Quant4Layout layout = layout_of(w);
                for (int world : {1, 2, 3, 5}) {
                    std::vector<at::Tensor> slices;
                    int64_t bytes = 0;
                    for (int r = 0; r < world; ++r) {
                        slices.push_back(slice_of(w, r, world));
                        EXPECT_EQ(slices.back().numel(), slice_bytes(layout, r, world).total());
                        bytes += slices.back().numel();
                    }
                    const int64_t stored = w.packed().nbytes() + w.absmax().nbytes() +
                                           (dq ? w.nested_absmax().nbytes() : 0);
                    EXPECT_EQ(bytes, stored) << "every stored byte in exactly one slice";
                    // Junk after a slice (the padding of a gathered row) is ignored.
                    slices.back() = at::cat({slices.back(), at::full({7}, 0xAB, at::kByte)});
                    const quant::Quant4Tensor back = assemble(layout, slices, "w");
                    const std::string what = std::to_string(c.out) + "x" + std::to_string(c.in) +
                                             " bs " + std::to_string(c.blocksize) + " dq " +
                                             std::to_string(dq) + " world " + std::to_string(world);
                    EXPECT_TRUE(test::tensors_identical(w.packed(), back.packed())) << what;
                    EXPECT_TRUE(test::tensors_identical(w.absmax(), back.absmax())) << what;
                    if (dq) {
                        EXPECT_TRUE(
                            test::tensors_identical(w.nested_absmax(), back.nested_absmax()));
                        EXPECT_EQ(w.nested_offset(), back.nested_offset());
                    }
                    EXPECT_EQ(back.shape(), w.shape());
                    EXPECT_EQ(back.type(), w.type());
                    EXPECT_TRUE(test::tensors_identical(w.dequantize(), back.dequantize())) << what;
                }
            }
        }
    }
}

TEST(ShardedBase, AShortSliceIsARuntimeError) {
    const quant::Quant4Tensor w = test::random_weight(8, 64, QuantType::kNF4, 64, false, 1);
    std::vector<at::Tensor> slices{slice_of(w, 0, 2), slice_of(w, 1, 2).narrow(0, 0, 3)};
    EXPECT_THROW(
        {
            try {
                assemble(layout_of(w), slices, "w");
            } catch (const Error& e) {
                EXPECT_NE(std::string(e.what()).find("rank 1 sent 3 bytes of its slice"),
                          std::string::npos)
                    << e.what();
                throw;
            }
        },
        Error);
}

// A world of one: all_gather is the tensor itself.
class OneRank : public Collectives {
  public:
    OneRank() : Collectives(0, 1, std::chrono::seconds(1)) {}
    c10::Device device() const override { return c10::kCPU; }
    std::string backend() const override { return "one"; }
    void all_reduce_sum(at::Tensor&) override {}
    void broadcast(at::Tensor&, int) override {}
    at::Tensor all_gather(const at::Tensor& t) override {
        ++gathers;
        return t.unsqueeze(0).clone();
    }
    void barrier() override {}
    int gathers = 0;
};

// The layers hold no base between forwards; a checkpointed training forward + backward gathers
// each layer twice (forward, recompute); the loss and gradients are the whole base's.
TEST(ShardedBase, LayersHoldNoBaseBetweenForwardsAndGatherForEachUse) {
    model::LoadOptions lo;
    lo.quant = "nf4";
    model::Llama m = model::load_llama(test::shared_data("stories260K/hf"), lo);
    lora::LoraOptions lora;
    lora.r = 4;
    lora.init_seed = 3;
    lora::apply_lora(*m, lora);
    lora::set_gradient_checkpointing(*m, true);
    m->train();
    const at::Tensor tokens = at::arange(1, 33).reshape({2, 16});
    auto loss_and_grad = [&] {
        auto params = lora::adapter_parameters(*m);
        for (auto& [name, t] : params) t.mutable_grad() = at::Tensor();
        at::Tensor loss = m->forward(tokens).to(at::kFloat).square().mean();
        loss.backward();
        return std::make_pair(loss.detach(), params.back().second.grad().clone());
    };
    const auto whole = loss_and_grad();
    const int64_t bytes_whole = m->weight_nbytes();
    OneRank comm;
    shard_base(comm, *m);
    for (model::DecoderLayer& layer : m->layers) {
        for (model::Linear& l : layer->linears()) EXPECT_FALSE(l->has_weight()) << l->name();
    }
    // One rank's slice is the whole stored tensor: the same bytes, now in the layers' buffers.
    EXPECT_EQ(m->weight_nbytes(), bytes_whole);
    const auto sharded = loss_and_grad();
    EXPECT_EQ(comm.gathers, 2 * 5);
    EXPECT_TRUE(test::tensors_identical(whole.first, sharded.first));
    EXPECT_TRUE(test::tensors_identical(whole.second, sharded.second));
    for (model::DecoderLayer& layer : m->layers) {
        for (model::Linear& l : layer->linears()) EXPECT_FALSE(l->has_weight()) << l->name();
    }
    m->visit_layer_weights();
    EXPECT_EQ(comm.gathers, 2 * 5 + 5);
}

}  // namespace
}  // namespace qlora::dist
