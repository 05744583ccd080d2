// bitsandbytes create_dynamic_map(signed, max_exponent_bits=7, total_bits=8): for i in 0..6,
// n_i + 1 points evenly spaced on [0.1, 1] (torch.linspace in float32; n_i = 2^i signed, 2^(i+1)
// unsigned: the unsigned map spends the sign bit on one more fraction bit), their neighbour means
// scaled by 10^(i-6), plus their negatives when signed; then 0 and 1; sorted.
#include "quant/dynamic_map.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qlora::quant {
namespace {

at::Tensor build_dynamic_map(bool is_signed) {
    constexpr int kMaxExponentBits = 7;
    std::vector<float> data;
    data.reserve(256);
    for (int i = 0; i < kMaxExponentBits; ++i) {
        const int64_t fraction_items = (int64_t{1} << (is_signed ? i : i + 1)) + 1;
        // torch.linspace(0.1, 1, n, dtype=float32): same op, same bits.
        at::Tensor boundaries = at::linspace(0.1, 1.0, fraction_items, at::kFloat);
        at::Tensor means = (boundaries.slice(0, 0, -1) + boundaries.slice(0, 1)) / 2.0;
        // Python's 10 ** (i - 6) is a double; torch multiplies a float32 tensor by it.
        const double scale = std::pow(10.0, i - (kMaxExponentBits - 1));
        for (const double s :
             is_signed ? std::vector<double>{scale, -scale} : std::vector<double>{scale}) {
            at::Tensor scaled = (means * s).contiguous();
            const float* p = scaled.data_ptr<float>();
            data.insert(data.end(), p, p + scaled.numel());
        }
    }
    data.push_back(0.0f);
    data.push_back(1.0f);
    std::sort(data.begin(), data.end());
    return at::tensor(data, at::kFloat);
}

}  // namespace

at::Tensor dynamic_map(bool is_signed) {
    static const at::Tensor signed_map = build_dynamic_map(true);
    static const at::Tensor unsigned_map = build_dynamic_map(false);
    return (is_signed ? signed_map : unsigned_map).clone();
}

at::Tensor map_midpoints(const at::Tensor& sorted_map) {
    at::Tensor m = sorted_map.to(at::kFloat).contiguous();
    return ((m.slice(0, 0, -1) + m.slice(0, 1)) / 2).contiguous();
}

}  // namespace qlora::quant
