// NaN/Inf detection per tensor (io/finite_check.h).
#include "io/finite_check.h"

#include "core/error.h"

namespace qlora::io {

bool all_finite(const at::Tensor& t) {
    if (!t.defined() || t.numel() == 0 || !t.is_floating_point()) return true;
    return at::isfinite(t).all().item<bool>();
}

void check_finite(const at::Tensor& t, const std::string& name, const std::string& source,
                  const std::string& action) {
    if (all_finite(t)) return;
    const int64_t bad = t.numel() - at::isfinite(t).sum().item<int64_t>();
    QLORA_FAIL(source, ": tensor '", name, "' holds NaN or Inf (", bad, " of ", t.numel(),
               " values); ", action);
}

std::optional<std::string> first_nonfinite_tensor(const torch::nn::Module& model) {
    for (const auto& p : model.named_parameters(/*recurse=*/true)) {
        if (!all_finite(p.value())) return p.key();
    }
    for (const auto& b : model.named_buffers(/*recurse=*/true)) {
        if (!all_finite(b.value())) return b.key();
    }
    return std::nullopt;
}

}  // namespace qlora::io
