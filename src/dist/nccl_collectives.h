// Collectives on CUDA tensors through c10d::ProcessGroupNCCL (libtorch_cuda of the torch wheel,
// NCCL from its nvidia-nccl package). Only built with CUDA; make_nccl_collectives throws a
// one-line error in a CPU-only build.
#pragma once

#include <memory>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "dist/collectives.h"

namespace qlora::dist {

// `device` is cuda:LOCAL_RANK, already made current. The process group's own watchdog timeout is
// set a little past `timeout` so that our wait, which names the missing ranks, fires first.
std::unique_ptr<Collectives> make_nccl_collectives(c10::intrusive_ptr<c10d::Store> store, int rank,
                                                   int world_size, c10::Device device,
                                                   std::chrono::milliseconds timeout);

}  // namespace qlora::dist
