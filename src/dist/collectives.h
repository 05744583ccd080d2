// The collectives a data-parallel or sharded run needs, behind one small interface with two
// implementations: NCCL (c10d::ProcessGroupNCCL, CUDA tensors) and, for CPU runs only, a minimal
// transport over the run's c10d::TCPStore (store_collectives.h). Every call blocks until done or
// until the timeout, and then throws a one-line qlora::Error naming the ranks that did not arrive.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <string>
#include <vector>

namespace qlora::dist {

class Collectives {
  public:
    Collectives(int rank, int world_size, std::chrono::milliseconds timeout)
        : rank_(rank), world_size_(world_size), timeout_(timeout) {}
    virtual ~Collectives() = default;
    Collectives(const Collectives&) = delete;
    Collectives& operator=(const Collectives&) = delete;

    int rank() const { return rank_; }
    int world_size() const { return world_size_; }
    std::chrono::milliseconds timeout() const { return timeout_; }
    // Where tensors handed to the collectives live (cuda:LOCAL_RANK for NCCL, CPU for the store).
    virtual c10::Device device() const = 0;
    virtual std::string backend() const = 0;

    // In place: every rank ends with the element-wise sum over all ranks, the same bits on every
    // rank. A contiguous float32, float64 or int64 tensor of the same shape on every rank.
    virtual void all_reduce_sum(at::Tensor& tensor) = 0;
    // In place: every rank ends with root's values (same shape and dtype everywhere).
    virtual void broadcast(at::Tensor& tensor, int root) = 0;
    // [world_size, *tensor.shape]: row r is rank r's tensor.
    virtual at::Tensor all_gather(const at::Tensor& tensor) = 0;
    virtual void barrier() = 0;

  protected:
    const int rank_;
    const int world_size_;
    const std::chrono::milliseconds timeout_;
};

// "rank 2" or "ranks 0, 2" for error messages.
std::string rank_list(const std::vector<int>& ranks);

}  // namespace qlora::dist
