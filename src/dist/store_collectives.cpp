// Store-backed collectives: see store_collectives.h for the key protocol.
#include "dist/store_collectives.h"

#include <ATen/ATen.h>

#include <cstring>

#include "core/error.h"

namespace qlora::dist {
namespace {

std::vector<uint8_t> to_bytes(const at::Tensor& tensor) {
    at::Tensor cpu = tensor.detach().to(c10::kCPU).contiguous();
    std::vector<uint8_t> out(cpu.nbytes());
    if (!out.empty()) std::memcpy(out.data(), cpu.data_ptr(), out.size());
    return out;
}

// A tensor shaped and typed like `like`, filled from `bytes` (checked to be exactly its size).
at::Tensor from_bytes(const std::vector<uint8_t>& bytes, const at::Tensor& like, const char* op,
                      int from_rank) {
    QLORA_RUNTIME_CHECK(bytes.size() == like.nbytes(), "dist: ", op, " got ", bytes.size(),
                        " bytes from rank ", from_rank, ", expected ", like.nbytes(),
                        " (ranks disagree on the tensor's shape or dtype)");
    at::Tensor out = at::empty(like.sizes(), like.options().device(c10::kCPU));
    if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
    return out;
}

std::string seconds(std::chrono::milliseconds t) {
    return detail::concat(static_cast<double>(t.count()) / 1000.0, " s");
}

// c10d errors carry a backtrace after the first line; ours stay one line.
std::string first_line(const char* what) {
    std::string s(what);
    return s.substr(0, s.find('\n'));
}

}  // namespace

StoreCollectives::StoreCollectives(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                                   std::chrono::milliseconds timeout)
    : Collectives(rank, world_size, timeout), store_(std::move(store)) {
    store_->setTimeout(timeout);
}

void StoreCollectives::wait_for_ranks(const char* op, const std::vector<std::string>& keys) {
    try {
        store_->wait(keys, timeout_);
        return;
    } catch (const c10::Error&) {
        // Timed out (or the store went away): find out who is missing, below.
    }
    std::vector<int> missing;
    try {
        for (int r = 0; r < world_size_; ++r) {
            if (!store_->check({keys[static_cast<size_t>(r)]})) missing.push_back(r);
        }
    } catch (const c10::Error& e) {
        QLORA_RUNTIME_CHECK(false, "dist: rank ", rank_, " lost the rendezvous store during ", op,
                            " #", sequence_, ": ", first_line(e.what_without_backtrace()));
    }
    QLORA_RUNTIME_CHECK(missing.empty(), "dist: ", rank_list(missing), " of ", world_size_,
                        " did not reach ", op, " #", sequence_, " within ", seconds(timeout_),
                        " (exited, crashed or stuck: see its log); rank ", rank_, " gives up");
}

std::vector<StoreCollectives::Bytes> StoreCollectives::exchange(const char* op, const Bytes& mine) {
    const std::string prefix = "c/" + std::to_string(++sequence_) + "/";
    std::vector<std::string> keys;
    for (int r = 0; r < world_size_; ++r) keys.push_back(prefix + std::to_string(r));
    std::vector<Bytes> all;
    try {
        store_->set(keys[static_cast<size_t>(rank_)], mine);
    } catch (const c10::Error& e) {
        QLORA_RUNTIME_CHECK(false, "dist: rank ", rank_,
                            " cannot write to the rendezvous store in ", op, ": ",
                            first_line(e.what_without_backtrace()));
    }
    wait_for_ranks(op, keys);
    try {
        for (const std::string& key : keys) all.push_back(store_->get(key));
        // The last rank to finish reading removes the round's keys, so the store does not grow.
        if (store_->add(prefix + "read", 1) == world_size_) {
            for (const std::string& key : keys) store_->deleteKey(key);
            store_->deleteKey(prefix + "read");
        }
    } catch (const c10::Error& e) {
        QLORA_RUNTIME_CHECK(false, "dist: rank ", rank_, " lost the rendezvous store during ", op,
                            ": ", first_line(e.what_without_backtrace()));
    }
    return all;
}

void StoreCollectives::all_reduce_sum(at::Tensor& tensor) {
    const auto type = tensor.scalar_type();
    QLORA_CHECK(type == at::kFloat || type == at::kDouble || type == at::kLong,
                "dist: all_reduce_sum takes float32, float64 or int64 tensors, got ", type);
    std::vector<Bytes> all = exchange("all_reduce", to_bytes(tensor));
    at::Tensor sum = from_bytes(all[0], tensor, "all_reduce", 0);
    for (int r = 1; r < world_size_; ++r)
        sum.add_(from_bytes(all[static_cast<size_t>(r)], tensor, "all_reduce", r));
    tensor.copy_(sum);
}

void StoreCollectives::broadcast(at::Tensor& tensor, int root) {
    QLORA_CHECK(root >= 0 && root < world_size_, "dist: broadcast root ", root,
                " is not a rank of ", world_size_);
    std::vector<Bytes> all = exchange("broadcast", rank_ == root ? to_bytes(tensor) : Bytes{});
    if (rank_ != root)
        tensor.copy_(from_bytes(all[static_cast<size_t>(root)], tensor, "broadcast", root));
}

at::Tensor StoreCollectives::all_gather(const at::Tensor& tensor) {
    std::vector<Bytes> all = exchange("all_gather", to_bytes(tensor));
    std::vector<at::Tensor> rows;
    for (int r = 0; r < world_size_; ++r)
        rows.push_back(from_bytes(all[static_cast<size_t>(r)], tensor, "all_gather", r));
    return at::stack(rows).to(tensor.device());
}

void StoreCollectives::barrier() { exchange("barrier", Bytes{}); }

}  // namespace qlora::dist
