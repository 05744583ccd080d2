// The unsigned dynamic map and a per-device cache of both state maps.
#include "optim/state_maps.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <vector>

#include "quant/dynamic_map.h"

namespace qlora::optim {

at::Tensor dynamic_map_unsigned() {
    static const at::Tensor map = [] {
        constexpr int kMaxExponentBits = 7;
        std::vector<float> data;
        data.reserve(256);
        for (int i = 0; i < kMaxExponentBits; ++i) {
            const int64_t fraction_items = (int64_t{1} << (i + 1)) + 1;
            at::Tensor boundaries = at::linspace(0.1, 1.0, fraction_items, at::kFloat);
            at::Tensor means = (boundaries.slice(0, 0, -1) + boundaries.slice(0, 1)) / 2.0;
            // Python's 10 ** (i - 6) is a double; torch multiplies the float32 tensor by it.
            at::Tensor scaled = (means * std::pow(10.0, i - (kMaxExponentBits - 1))).contiguous();
            const float* q = scaled.data_ptr<float>();
            data.insert(data.end(), q, q + scaled.numel());
        }
        data.push_back(0.0f);
        data.push_back(1.0f);
        std::sort(data.begin(), data.end());
        return at::tensor(data, at::kFloat);
    }();
    return map.clone();
}

const StateMaps& state_maps(const c10::Device& device) {
    static std::mutex mutex;
    static std::map<std::string, StateMaps> cache;  // keyed by device string; entries never move
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(device.str());
    if (it == cache.end()) {
        at::Tensor s = quant::dynamic_map_signed();
        at::Tensor u = dynamic_map_unsigned();
        StateMaps maps{s.to(device), quant::map_midpoints(s).to(device), u.to(device),
                       quant::map_midpoints(u).to(device)};
        it = cache.emplace(device.str(), std::move(maps)).first;
    }
    return it->second;
}

}  // namespace qlora::optim
