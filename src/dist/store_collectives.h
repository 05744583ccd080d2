// Collectives over the run's c10d::Store, for CPU runs (tests, CI) only. c10d's Gloo backend is
// compiled into libtorch_cpu but the wheel ships no gloo headers, and ProcessGroupGloo.hpp needs
// them; mixing headers of another gloo build with the wheel's binary would be unsound. So each
// operation is an exchange of per-rank byte payloads through store keys: rank r sets
// "c/<seq>/<r>", waits for every rank's key, reads them and the last reader deletes them. The
// traffic is O(world² · bytes) through one server: right for LoRA-sized CPU tests, not for GPUs.
#pragma once

#include <cstdint>
#include <string>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <vector>

#include "dist/collectives.h"

namespace qlora::dist {

class StoreCollectives final : public Collectives {
  public:
    StoreCollectives(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                     std::chrono::milliseconds timeout);

    c10::Device device() const override { return c10::Device(c10::kCPU); }
    std::string backend() const override { return "store"; }
    // Sums in rank order 0..world-1, so every rank computes the identical result.
    void all_reduce_sum(at::Tensor& tensor) override;
    void broadcast(at::Tensor& tensor, int root) override;
    at::Tensor all_gather(const at::Tensor& tensor) override;
    void barrier() override;

  private:
    using Bytes = std::vector<uint8_t>;
    // Every rank contributes `mine` to operation `op` and receives all ranks' payloads.
    std::vector<Bytes> exchange(const char* op, const Bytes& mine);
    void wait_for_ranks(const char* op, const std::vector<std::string>& keys);

    c10::intrusive_ptr<c10d::Store> store_;
    int64_t sequence_ = 0;
};

}  // namespace qlora::dist
