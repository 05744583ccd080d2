// A per-device cache of both state maps.
#include "optim/state_maps.h"

#include <map>
#include <mutex>

#include "quant/dynamic_map.h"

namespace qlora::optim {

const StateMaps& state_maps(const c10::Device& device) {
    static std::mutex mutex;
    static std::map<std::string, StateMaps> cache;  // keyed by device string; entries never move
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(device.str());
    if (it == cache.end()) {
        at::Tensor s = quant::dynamic_map(/*is_signed=*/true);
        at::Tensor u = quant::dynamic_map(/*is_signed=*/false);
        StateMaps maps{s.to(device), quant::map_midpoints(s).to(device), u.to(device),
                       quant::map_midpoints(u).to(device)};
        it = cache.emplace(device.str(), std::move(maps)).first;
    }
    return it->second;
}

}  // namespace qlora::optim
