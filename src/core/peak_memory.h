// Peak memory of this process on a device, one definition for the trainer's metrics and the
// benchmarks: CUDA, the caching allocator's peak (paged optimizer states live in managed memory
// outside it and are reported apart); CPU, the resident-set high-water mark VmHWM, which writing 5
// to /proc/self/clear_refs resets (Linux).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>

namespace qlora {

class PeakMemory {
  public:
    explicit PeakMemory(const c10::Device& device) : device_(device) {}
    void reset() const;
    // Bytes, or -1 when the platform does not say.
    int64_t peak_bytes() const;
    double peak_mib() const { return static_cast<double>(peak_bytes()) / (1024.0 * 1024.0); }
    // Returns the caching allocator's free blocks to the driver (CUDA; nothing on CPU).
    void release_cache() const;

  private:
    c10::Device device_;
};

}  // namespace qlora
