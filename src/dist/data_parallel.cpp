// Data-parallel pieces: shard selection, global sums, the gradient bucket, parameter broadcast
// and the rank-0 writer guard (see data_parallel.h for why each is shaped so).
#include "dist/data_parallel.h"

#include <ATen/ATen.h>

#include <exception>

#include "core/error.h"
#include "data/loader.h"

namespace qlora::dist {

int64_t steps_per_epoch(int64_t batches, const ShardSpec& spec) {
    QLORA_CHECK(spec.grad_accum >= 1 && spec.world_size >= 1,
                "dist: grad_accum and world size must be >= 1");
    return (batches + spec.window() - 1) / spec.window();
}

std::vector<data::Batch> next_window_shard(data::DataLoader& loader, const ShardSpec& spec) {
    std::vector<data::Batch> mine;
    mine.reserve(static_cast<size_t>(spec.grad_accum));
    // Other ranks' batches are built too (the cursor must move identically everywhere); collating
    // a micro-batch is cheap next to its forward.
    for (int64_t i = 0; i < spec.window(); ++i) {
        data::Batch b = loader.next();
        if (spec.owns(i)) mine.push_back(std::move(b));
    }
    return mine;
}

int64_t global_sum(Collectives& comm, int64_t local) {
    at::Tensor t = at::full({1}, local, at::TensorOptions().dtype(at::kLong).device(comm.device()));
    comm.all_reduce_sum(t);
    return t.cpu().item<int64_t>();
}

double global_sum(Collectives& comm, double local) {
    at::Tensor t =
        at::full({1}, local, at::TensorOptions().dtype(at::kDouble).device(comm.device()));
    comm.all_reduce_sum(t);
    return t.cpu().item<double>();
}

GradBucket::GradBucket(std::vector<at::Tensor> params) : params_(std::move(params)) {
    for (const at::Tensor& p : params_) numel_ += p.numel();
}

void GradBucket::all_reduce(Collectives& comm) {
    if (!buffer_.defined()) {
        buffer_ = at::zeros({numel_}, at::TensorOptions().dtype(at::kFloat).device(comm.device()));
    }
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> slots;
    int64_t offset = 0;
    for (const at::Tensor& p : params_) {
        slots.push_back(buffer_.narrow(0, offset, p.numel()).view(p.sizes()));
        offset += p.numel();
    }
    // A gradient that already is its bucket slot (every step after the first) needs no copy.
    auto is_slot = [](const at::Tensor& grad, const at::Tensor& slot) {
        return grad.defined() && grad.data_ptr() == slot.data_ptr();
    };
    for (size_t i = 0; i < params_.size(); ++i) {
        const at::Tensor& g = params_[i].grad();
        if (is_slot(g, slots[i])) continue;
        if (g.defined()) {
            slots[i].copy_(g);
        } else {
            slots[i].zero_();
        }
    }
    comm.all_reduce_sum(buffer_);
    for (size_t i = 0; i < params_.size(); ++i) {
        const at::Tensor& p = params_[i];
        if (is_slot(p.grad(), slots[i])) continue;
        if (p.scalar_type() == at::kFloat && p.device() == buffer_.device()) {
            // From now on the gradient is a view of the bucket: backward accumulates into it in
            // place (and zero_grad zeroes it in place), so the bucket costs no memory of its own.
            p.mutable_grad() = slots[i];
        } else if (p.grad().defined()) {
            p.mutable_grad().copy_(slots[i]);
        } else {
            p.mutable_grad() = slots[i].to(p.options()).clone();
        }
    }
}

void broadcast_parameters(Collectives& comm, const std::vector<at::Tensor>& params, int root) {
    at::NoGradGuard no_grad;
    for (const at::Tensor& p : params) {
        QLORA_CHECK(p.scalar_type() == at::kFloat,
                    "dist: broadcast_parameters takes float32 parameters, got ", p.scalar_type());
    }
    std::vector<at::Tensor> flat;
    for (const at::Tensor& p : params) flat.push_back(p.detach().reshape({-1}).to(comm.device()));
    at::Tensor buffer =
        flat.empty() ? at::empty({0}, at::TensorOptions().device(comm.device())) : at::cat(flat);
    comm.broadcast(buffer, root);
    int64_t offset = 0;
    for (const at::Tensor& p : params) {
        p.detach().copy_(buffer.narrow(0, offset, p.numel()).view(p.sizes()));
        offset += p.numel();
    }
}

void on_main_rank(Collectives& comm, const std::function<void()>& write, const char* what) {
    std::exception_ptr failure;
    if (comm.rank() == 0) {
        try {
            write();
        } catch (...) {
            failure = std::current_exception();
        }
    }
    // The status broadcast doubles as the barrier: nobody leaves before rank 0 has finished.
    at::Tensor status =
        at::full({1}, failure ? 1.0f : 0.0f, at::TensorOptions().device(comm.device()));
    comm.broadcast(status, 0);
    if (failure) std::rethrow_exception(failure);
    QLORA_RUNTIME_CHECK(status.cpu().item<float>() == 0.0f, "dist: rank 0 failed while writing ",
                        what, " (see rank 0's error); rank ", comm.rank(), " stops too");
}

}  // namespace qlora::dist
