// PeakMemory on CUDA (caching allocator statistics) and on the CPU (/proc/self/status VmHWM).
#include "core/peak_memory.h"

#include <fstream>
#include <string>

#ifdef QLORA_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace qlora {

void PeakMemory::reset() const {
#ifdef QLORA_WITH_CUDA
    if (device_.is_cuda()) {
        c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
        return;
    }
#endif
    std::ofstream("/proc/self/clear_refs") << "5";
}

int64_t PeakMemory::peak_bytes() const {
#ifdef QLORA_WITH_CUDA
    if (device_.is_cuda()) {
        auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
        return stats
            .allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
            .peak;
    }
#endif
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmHWM:", 0) == 0)
            return std::stoll(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
    }
    return -1;
}

void PeakMemory::release_cache() const {
#ifdef QLORA_WITH_CUDA
    if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

}  // namespace qlora
