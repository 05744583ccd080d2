// PagedBuffer: optimizer state in CUDA managed memory (cudaMallocManaged with cudaMemAttachHost),
// so the driver can page it out to host RAM under memory pressure and back in on use, as
// bitsandbytes' paged optimizers do. Without CUDA (or for a CPU parameter) it is plain host memory.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace qlora::optim {

class PagedBuffer {
  public:
    // Zero-filled managed memory for `shape` of `dtype`, attached to the host, usable from cuda:N.
    // Throws qlora::Error (runtime) when this build or machine has no CUDA, or when the card has
    // less free memory than asked for (we never oversubscribe it: cudaMemGetInfo is checked).
    static PagedBuffer allocate_managed(const std::vector<int64_t>& shape, at::ScalarType dtype,
                                        const c10::Device& device);

    PagedBuffer() = default;

    // A view of the whole buffer on the CUDA device (at::from_blob, no ownership): it must not
    // outlive this PagedBuffer.
    const at::Tensor& as_tensor() const { return view_; }
    int64_t nbytes() const { return nbytes_; }
    bool defined() const { return ptr_ != nullptr; }

    // Asks the driver to migrate the pages to the device on the current CUDA stream, when the
    // device supports concurrent managed access (otherwise pages migrate on first touch). Returns
    // whether a prefetch was issued.
    bool prefetch_to_device() const;

    // Whether cuda:N reports cudaDevAttrConcurrentManagedAccess.
    static bool concurrent_managed_access(int device_index);

  private:
    struct Free {
        void operator()(void* p) const noexcept;
    };
    std::unique_ptr<void, Free> ptr_;
    int64_t nbytes_ = 0;
    at::Tensor view_;
};

}  // namespace qlora::optim
