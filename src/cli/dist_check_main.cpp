// qlora-dist-check [--backend auto|store|nccl] [--device cpu|cuda] [--timeout-s S]
//   [--fail-rank R --fail-mode exit|stall] [--out DIR] [--shard-model LLAMA_DIR]
// Launched by torchrun (torchrun --nproc-per-node=N --no-python build/qlora-dist-check): sets up
// the world from torchrun's environment and checks every collective and data-parallel piece
// against exactly known values: all values are small integers (or sums of them), so every sum
// is exact in float32 whatever the summation order. Each rank prints one JSON line with what it
// got; any mismatch is a one-line error and exit code 1. --fail-rank makes that rank die
// (SIGKILL on itself) or hang right after the handshake, so the others must time out naming it.
// Without torchrun's variables (or WORLD_SIZE=1, unless --single-rank-world) it prints
// {"distributed": false} and exits 0.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/run_tool.h"
#include "core/device.h"
#include "core/error.h"
#include "dist/data_parallel.h"
#include "dist/sharded_base.h"
#include "dist/world.h"
#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "model/llama_loader.h"

namespace {

using namespace qlora;

// Every rank contributes (rank + 1) · (i + 1) at index i; the sum is (i + 1) · W(W+1)/2.
nlohmann::json check_all_reduce(dist::Collectives& comm) {
    const int64_t n = 1027;  // not a multiple of anything a transport might chunk by
    const auto opts = at::TensorOptions().device(comm.device());
    at::Tensor t =
        at::arange(1, n + 1, opts.dtype(at::kFloat)) * static_cast<float>(comm.rank() + 1);
    comm.all_reduce_sum(t);
    const int64_t w = comm.world_size();
    at::Tensor expected =
        at::arange(1, n + 1, opts.dtype(at::kFloat)) * static_cast<float>(w * (w + 1) / 2);
    QLORA_RUNTIME_CHECK(at::equal(t, expected), "all_reduce float32: rank ", comm.rank(), " got ",
                        t[0].item<float>(), "..", t[n - 1].item<float>(), ", expected ",
                        expected[0].item<float>(), "..", expected[n - 1].item<float>());
    // int64 beyond float precision: (2^40 + rank) summed.
    at::Tensor big = at::full({3}, (int64_t{1} << 40) + comm.rank(), opts.dtype(at::kLong));
    comm.all_reduce_sum(big);
    const int64_t want = w * (int64_t{1} << 40) + w * (w - 1) / 2;
    QLORA_RUNTIME_CHECK(big.cpu()[2].item<int64_t>() == want, "all_reduce int64: got ",
                        big.cpu()[2].item<int64_t>(), ", expected ", want);
    return {t[0].item<float>(), t[n - 1].item<float>(), big.cpu()[0].item<int64_t>()};
}

// The last rank broadcasts 100 + i; everyone else starts from -1.
nlohmann::json check_broadcast(dist::Collectives& comm) {
    const int root = comm.world_size() - 1;
    const auto opts = at::TensorOptions().device(comm.device()).dtype(at::kFloat);
    at::Tensor t = comm.rank() == root ? at::arange(100, 105, opts) : at::full({5}, -1.0f, opts);
    comm.broadcast(t, root);
    QLORA_RUNTIME_CHECK(at::equal(t, at::arange(100, 105, opts)), "broadcast from rank ", root,
                        ": rank ", comm.rank(), " got ", t[0].item<float>(), " first");
    return {t[0].item<float>(), t[4].item<float>()};
}

// Rank r sends [r, 10 r]; row r of the result must be exactly that.
nlohmann::json check_all_gather(dist::Collectives& comm) {
    const auto opts = at::TensorOptions().device(comm.device()).dtype(at::kFloat);
    const float r = static_cast<float>(comm.rank());
    at::Tensor rows = comm.all_gather(at::tensor({r, 10 * r}, opts)).cpu();
    nlohmann::json out = nlohmann::json::array();
    for (int64_t i = 0; i < rows.size(0); ++i) {
        QLORA_RUNTIME_CHECK(rows[i][0].item<float>() == i && rows[i][1].item<float>() == 10 * i,
                            "all_gather: row ", i, " is ", rows[i][0].item<float>(), ", ",
                            rows[i][1].item<float>());
        out.push_back(rows[i][0].item<float>());
    }
    return out;
}

// Gradient bucket, parameter broadcast, global sums and the rank-0 writer guard.
nlohmann::json check_data_parallel(dist::Collectives& comm, const std::string& out_dir) {
    const auto opts = at::TensorOptions().device(comm.device()).dtype(at::kFloat);
    const int64_t w = comm.world_size(), r = comm.rank();
    // Two "LoRA" tensors; rank r's gradients are (r + 1) and 2 (r + 1); the third has no grad.
    std::vector<at::Tensor> params{at::full({4, 3}, static_cast<float>(r), opts).requires_grad_(),
                                   at::full({2, 5}, static_cast<float>(-r), opts).requires_grad_(),
                                   at::zeros({3}, opts).requires_grad_()};
    params[0].mutable_grad() = at::full({4, 3}, static_cast<float>(r + 1), opts);
    params[1].mutable_grad() = at::full({2, 5}, static_cast<float>(2 * (r + 1)), opts);
    dist::GradBucket bucket(params);
    bucket.all_reduce(comm);
    const float tri = static_cast<float>(w * (w + 1) / 2);
    QLORA_RUNTIME_CHECK(at::equal(params[0].grad(), at::full({4, 3}, tri, opts)) &&
                            at::equal(params[1].grad(), at::full({2, 5}, 2 * tri, opts)) &&
                            at::equal(params[2].grad(), at::zeros({3}, opts)),
                        "gradient bucket: rank ", r, " got ", params[0].grad()[0][0].item<float>(),
                        ", ", params[1].grad()[0][0].item<float>(), ", expected ", tri, ", ",
                        2 * tri);
    const nlohmann::json first_window = {params[0].grad()[0][0].item<float>(),
                                         params[1].grad()[0][0].item<float>()};
    // A second window: gradients are now views of the bucket; backward-style in-place
    // accumulation into them must reduce the same way, without a copy.
    const void* view = params[0].grad().data_ptr();
    for (at::Tensor& p : params) p.mutable_grad().zero_();
    params[0].mutable_grad().add_(static_cast<float>(r + 1));
    params[2].mutable_grad().add_(static_cast<float>(r));
    bucket.all_reduce(comm);
    const float ranks_sum = static_cast<float>(w * (w - 1) / 2);
    QLORA_RUNTIME_CHECK(params[0].grad().data_ptr() == view &&
                            at::equal(params[0].grad(), at::full({4, 3}, tri, opts)) &&
                            at::equal(params[1].grad(), at::zeros({2, 5}, opts)) &&
                            at::equal(params[2].grad(), at::full({3}, ranks_sum, opts)),
                        "gradient bucket, second window: rank ", r, " got ",
                        params[0].grad()[0][0].item<float>(), ", ",
                        params[2].grad()[0].item<float>(), ", expected ", tri, ", ", ranks_sum);
    dist::broadcast_parameters(comm, params);
    QLORA_RUNTIME_CHECK(at::equal(params[0], at::zeros({4, 3}, opts)) &&
                            at::equal(params[1], at::zeros({2, 5}, opts)),
                        "broadcast_parameters: rank ", r, " does not hold rank 0's values");
    const int64_t tokens = dist::global_sum(comm, int64_t{1000} + r);
    const double loss = dist::global_sum(comm, 0.5 * static_cast<double>(r + 1));
    QLORA_RUNTIME_CHECK(tokens == 1000 * w + w * (w - 1) / 2 && loss == 0.5 * tri,
                        "global sums: got ", tokens, " and ", loss);
    // Rank 0 writes; afterwards every rank must see the file (one machine in this check).
    const std::filesystem::path marker = std::filesystem::path(out_dir) / "written_by_rank_0";
    if (!out_dir.empty()) {
        dist::on_main_rank(
            comm, [&] { std::ofstream(marker) << "rank " << comm.rank() << '\n'; }, marker.c_str());
        QLORA_RUNTIME_CHECK(std::filesystem::exists(marker), "rank ", r, ": ", marker.string(),
                            " missing after the rank-0 write");
    }
    return {{"grad", first_window}, {"tokens", tokens}, {"loss_sum", loss}};
}

// One forward + backward of stories260K-sized model with LoRA (B made non-zero, so A gets a
// gradient too) and checkpointed layers, on a batch that differs per rank: logits and LoRA
// gradients.
struct ForwardBackward {
    at::Tensor logits;
    std::vector<at::Tensor> grads;
};

ForwardBackward forward_backward(model::LlamaImpl& m, const at::Tensor& tokens) {
    ForwardBackward out;
    std::vector<at::Tensor> params;
    for (auto& [name, t] : lora::adapter_parameters(m)) params.push_back(t);
    for (at::Tensor& p : params) p.mutable_grad() = at::Tensor();
    at::Tensor logits = m.forward(tokens);  // [B, T, V]
    const int64_t T = tokens.size(1);
    at::Tensor loss = at::cross_entropy_loss(
        logits.narrow(1, 0, T - 1).reshape({-1, logits.size(2)}).to(at::kFloat),
        tokens.narrow(1, 1, T - 1).reshape(-1).to(m.device()));
    loss.backward();
    out.logits = logits.detach().cpu();
    for (at::Tensor& p : params) out.grads.push_back(p.grad().cpu().clone());
    return out;
}

// hardware.parallel: shard_base on a real model: the same logits and gradients, bit for bit, as
// the unsharded base (the gathered blocks are the same bytes), with each rank holding its slice.
nlohmann::json check_shard_base(dist::Collectives& comm, const std::string& model_dir,
                                bool double_quant) {
    model::LoadOptions lo;
    lo.device = comm.device();
    lo.quant = "nf4";
    lo.double_quant = double_quant;
    model::Llama m = model::load_llama(model_dir, lo);
    lora::LoraOptions lora;
    lora.r = 4;
    lora.init_seed = 7;
    lora::apply_lora(*m, lora);
    lora::set_gradient_checkpointing(*m, true);
    m->train();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
    {
        at::NoGradGuard no_grad;
        for (auto& [name, t] : lora::adapter_parameters(*m)) {
            if (name.find("lora_B") != std::string::npos) t.copy_(at::randn(t.sizes(), gen) * 0.1);
        }
    }
    gen.set_current_seed(100 + comm.rank());  // each rank its own batch
    const at::Tensor tokens = at::randint(0, m->config().vocab_size, {2, 24}, gen);
    int64_t base_bytes = 0;
    for (model::DecoderLayer& layer : m->layers) {
        for (model::Linear& l : layer->linears()) base_bytes += l->nbytes();
    }
    const ForwardBackward whole = forward_backward(*m, tokens);
    const int64_t held = dist::shard_base(comm, *m);
    const ForwardBackward sharded = forward_backward(*m, tokens);
    bool grads_equal = whole.grads.size() == sharded.grads.size();
    for (size_t i = 0; grads_equal && i < whole.grads.size(); ++i)
        grads_equal = at::equal(whole.grads[i], sharded.grads[i]);
    const bool logits_equal = at::equal(whole.logits, sharded.logits);
    QLORA_RUNTIME_CHECK(logits_equal && grads_equal, "shard_base: rank ", comm.rank(),
                        " got other ", logits_equal ? "gradients" : "logits",
                        " from the sharded base than from the whole one");
    double min_grad_abs_sum = std::numeric_limits<double>::infinity();
    for (const at::Tensor& g : whole.grads)
        min_grad_abs_sum = std::min(min_grad_abs_sum, g.abs().sum().item<double>());
    return {{"double_quant", double_quant},
            {"logits_equal", logits_equal},
            {"grads_equal", grads_equal},
            {"lora_tensors", whole.grads.size()},
            {"min_grad_abs_sum", min_grad_abs_sum},
            {"base_bytes_whole", base_bytes},
            {"base_bytes_held", held}};
}

void fail_on_purpose(dist::World& world, int fail_rank, const std::string& mode) {
    if (world.rank() != fail_rank) return;
    std::cerr << "qlora-dist-check: rank " << fail_rank << " fails on purpose (" << mode << ")"
              << std::endl;
    if (mode == "exit") std::raise(SIGKILL);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));  // stall: alive but silent
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"qlora-dist-check: checks the distributed set-up and collectives under torchrun"};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string backend = "auto", device_name = "cpu", fail_mode = "exit", out_dir;
    double timeout_s = 60;
    int fail_rank = -1;
    app.add_option("--backend", backend, "auto (nccl on CUDA, store on CPU), nccl or store")
        ->check(CLI::IsMember({"auto", "nccl", "store"}));
    app.add_option("--device", device_name, "cpu or cuda (each rank takes cuda:LOCAL_RANK)");
    app.add_option("--timeout-s", timeout_s, "collective timeout in seconds")
        ->check(CLI::Range(0.1, 86400.0));
    app.add_option("--fail-rank", fail_rank, "this rank dies or hangs after the handshake");
    app.add_option("--fail-mode", fail_mode, "exit (SIGKILL itself) or stall (sleep forever)")
        ->check(CLI::IsMember({"exit", "stall"}));
    bool single_rank_world = false;
    app.add_flag(
        "--single-rank-world", single_rank_world,
        "under torchrun with one rank, still set up the store and collectives (NCCL on one GPU)");
    app.add_option("--out", out_dir, "folder where rank 0 writes a file (the writer-guard check)");
    std::string shard_model;
    app.add_option("--shard-model", shard_model,
                   "a Llama folder: check that shard_base gives the unsharded logits and "
                   "gradients (NF4, double quant on and off)");
    return cli::run_tool("qlora-dist-check", app, argc, argv, [&] {
        dist::WorldOptions options;
        options.backend = dist::parse_backend(backend);
        options.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
        std::unique_ptr<dist::World> world =
            dist::world_from_env(resolve_device(device_name), options, single_rank_world);
        if (!world) {
            std::cout << nlohmann::json{{"distributed", false}}.dump() << std::endl;
            return;
        }
        fail_on_purpose(*world, fail_rank, fail_mode);
        dist::Collectives& comm = world->comm();
        nlohmann::json line = {{"rank", world->rank()},
                               {"world", world->size()},
                               {"local_rank", world->env().local_rank},
                               {"backend", comm.backend()},
                               {"agent_store", world->env().use_agent_store}};
        line["all_reduce"] = check_all_reduce(comm);
        line["broadcast"] = check_broadcast(comm);
        line["all_gather"] = check_all_gather(comm);
        line["data_parallel"] = check_data_parallel(comm, out_dir);
        if (!shard_model.empty()) {
            line["shard_base"] = {check_shard_base(comm, shard_model, true),
                                  check_shard_base(comm, shard_model, false)};
        }
        comm.barrier();
        std::cout << line.dump() << std::endl;
    });
}
