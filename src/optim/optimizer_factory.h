// Optimizers by name (the config's optim.name) and the memory their states need, which the
// trainer's memory plan adds up before allocating anything.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/enum_names.h"
#include "optim/optimizer.h"

namespace qlora::optim {

enum class OptimizerKind { kAdamw32bit, kPagedAdamw32bit, kAdamw8bit, kPagedAdamw8bit };

// "adamw_32bit" and "adamw_torch" (the same), "paged_adamw_32bit", "adamw_8bit",
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kOptimizerKindNames =
    enum_names<OptimizerKind>("optim.name", {{OptimizerKind::kAdamw32bit, "adamw_32bit"},
                                             {OptimizerKind::kAdamw32bit, "adamw_torch"},
                                             {OptimizerKind::kPagedAdamw32bit, "paged_adamw_32bit"},
                                             {OptimizerKind::kAdamw8bit, "adamw_8bit"},
                                             {OptimizerKind::kPagedAdamw8bit, "paged_adamw_8bit"}});
OptimizerKind parse_optimizer_kind(std::string_view name);
std::string optimizer_kind_name(OptimizerKind value);

std::unique_ptr<Optimizer> make_optimizer(std::string_view name, std::vector<at::Tensor> params,
                                          const OptimOptions& options = {});

// State bytes for parameters of the given element counts, exactly what state_bytes() of that
// optimizer reports: per tensor of n elements, 8n (fp32 m and v) or, in 8-bit layout
// (n >= min_8bit_numel), 2n codes + 8 * ceil(n / 256) absmax bytes. `paged` is the part that sits
// in managed memory on CUDA (tensors of >= paged_min_numel elements), which the driver may evict
// to host RAM; `resident` the rest. On CPU everything is ordinary host memory.
struct StateBytes {
    int64_t resident = 0;
    int64_t paged = 0;
    int64_t total() const { return resident + paged; }
};
StateBytes optimizer_state_bytes(OptimizerKind kind, const std::vector<int64_t>& numels,
                                 const OptimOptions& options = {});

}  // namespace qlora::optim
