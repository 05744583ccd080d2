// Name parsing, the factory, and state-size accounting for the AdamW family.
#include "optim/optimizer_factory.h"

#include "core/error.h"
#include "optim/adamw.h"
#include "optim/adamw_ref.h"

namespace qlora::optim {
namespace {

AdamwLayout layout_of(OptimizerKind kind) {
    switch (kind) {
        case OptimizerKind::kAdamw32bit:
            return {false, false};
        case OptimizerKind::kPagedAdamw32bit:
            return {false, true};
        case OptimizerKind::kAdamw8bit:
            return {true, false};
        case OptimizerKind::kPagedAdamw8bit:
            return {true, true};
    }
    return {};
}

}  // namespace

OptimizerKind parse_optimizer_kind(std::string_view name) {
    return kOptimizerKindNames.parse(name);
}

std::string optimizer_kind_name(OptimizerKind value) { return kOptimizerKindNames.name(value); }

std::unique_ptr<Optimizer> make_optimizer(std::string_view name, std::vector<at::Tensor> params,
                                          const OptimOptions& options) {
    const OptimizerKind kind = parse_optimizer_kind(name);
    return std::make_unique<AdamW>(std::move(params), options, layout_of(kind), std::string(name));
}

StateBytes optimizer_state_bytes(OptimizerKind kind, const std::vector<int64_t>& numels,
                                 const OptimOptions& options) {
    const AdamwLayout layout = layout_of(kind);
    StateBytes bytes;
    for (int64_t n : numels) {
        QLORA_CHECK(n >= 0, "optimizer_state_bytes: element counts must be >= 0, got ", n);
        const bool eight = layout.eight_bit && n >= options.min_8bit_numel;
        // absmax stays an ordinary device tensor even in a paged layout (as bitsandbytes).
        const int64_t big = eight ? 2 * n : 8 * n;
        const int64_t small = eight ? 8 * state_blocks(n) : 0;
        if (layout.paged && n >= options.paged_min_numel) {
            bytes.paged += big;
        } else {
            bytes.resident += big;
        }
        bytes.resident += small;
    }
    return bytes;
}

}  // namespace qlora::optim
