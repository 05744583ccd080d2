// The dynamic map: for i in 0..6, 2^i + 1 points evenly spaced on [0.1, 1] (torch.linspace in
// float32), their neighbour means, scaled by 10^(i-6), plus negatives; then 0 and 1; sorted.
#include "quant/dynamic_map.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qlora::quant {

at::Tensor dynamic_map_signed() {
    static const at::Tensor map = [] {
        constexpr int kMaxExponentBits = 7;
        std::vector<float> data;
        data.reserve(256);
        for (int i = 0; i < kMaxExponentBits; ++i) {
            int64_t fraction_items = (int64_t{1} << i) + 1;
            // torch.linspace(0.1, 1, n, dtype=float32): same op, same bits.
            at::Tensor boundaries = at::linspace(0.1, 1.0, fraction_items, at::kFloat);
            at::Tensor means = (boundaries.slice(0, 0, -1) + boundaries.slice(0, 1)) / 2.0;
            // Python's 10 ** (i - 6) is a double; torch multiplies a float32 tensor by it.
            double scale = std::pow(10.0, i - (kMaxExponentBits - 1));
            at::Tensor pos = (means * scale).contiguous();
            at::Tensor neg = (means * -scale).contiguous();
            const float* p = pos.data_ptr<float>();
            const float* q = neg.data_ptr<float>();
            for (int64_t k = 0; k < pos.numel(); ++k) data.push_back(p[k]);
            for (int64_t k = 0; k < neg.numel(); ++k) data.push_back(q[k]);
        }
        data.push_back(0.0f);
        data.push_back(1.0f);
        std::sort(data.begin(), data.end());
        return at::tensor(data, at::kFloat);
    }();
    return map.clone();
}

at::Tensor map_midpoints(const at::Tensor& sorted_map) {
    at::Tensor m = sorted_map.to(at::kFloat).contiguous();
    return ((m.slice(0, 0, -1) + m.slice(0, 1)) / 2).contiguous();
}

}  // namespace qlora::quant
