// cudaMallocManaged / cudaMemPrefetchAsync behind PagedBuffer; a clear error without CUDA.
#include "optim/paged_buffer.h"

#include <cstring>

#include "core/error.h"

#ifdef QLORA_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace qlora::optim {

#ifdef QLORA_WITH_CUDA
namespace {

void check(cudaError_t err, const char* what) {
    QLORA_RUNTIME_CHECK(err == cudaSuccess, "paged optimizer state: ", what,
                        " failed: ", cudaGetErrorString(err));
}

}  // namespace

void PagedBuffer::Free::operator()(void* p) const noexcept { cudaFree(p); }

PagedBuffer PagedBuffer::allocate_managed(const std::vector<int64_t>& shape, at::ScalarType dtype,
                                          const c10::Device& device) {
    QLORA_RUNTIME_CHECK(device.is_cuda(),
                        "paged optimizer state: managed memory needs a CUDA device, got ",
                        device.str());
    c10::cuda::CUDAGuard guard(device);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const int64_t nbytes = numel * static_cast<int64_t>(c10::elementSize(dtype));
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    QLORA_RUNTIME_CHECK(
        static_cast<uint64_t>(nbytes) <= free_bytes, "paged optimizer state: asked for ", nbytes,
        " bytes of managed memory but ", device.str(), " has only ", free_bytes, " bytes free (of ",
        total_bytes, "); use a smaller model/rank or optim.name=paged_adamw_8bit");
    PagedBuffer buf;
    buf.nbytes_ = nbytes;
    void* raw = nullptr;
    if (nbytes > 0) {
        check(cudaMallocManaged(&raw, static_cast<size_t>(nbytes), cudaMemAttachHost),
              "cudaMallocManaged");
        buf.ptr_.reset(raw);
        // Zero on the host: the pages start host-side (cudaMemAttachHost), no kernel needed.
        std::memset(raw, 0, static_cast<size_t>(nbytes));
    }
    buf.view_ = at::from_blob(raw, shape, at::TensorOptions().dtype(dtype).device(device));
    return buf;
}

bool PagedBuffer::concurrent_managed_access(int device_index) {
    int value = 0;
    if (cudaDeviceGetAttribute(&value, cudaDevAttrConcurrentManagedAccess, device_index) !=
        cudaSuccess) {
        cudaGetLastError();  // clear it, or the next launch check would report it
        return false;
    }
    return value != 0;
}

bool PagedBuffer::prefetch_to_device() const {
    if (!ptr_ || nbytes_ == 0) return false;
    const int index = view_.device().index();
    if (!concurrent_managed_access(index)) return false;
    cudaStream_t stream = at::cuda::getCurrentCUDAStream(index);
#if CUDART_VERSION >= 13000
    cudaMemLocation location{};
    location.type = cudaMemLocationTypeDevice;
    location.id = index;
    check(cudaMemPrefetchAsync(ptr_.get(), static_cast<size_t>(nbytes_), location, 0, stream),
          "cudaMemPrefetchAsync");
#else
    check(cudaMemPrefetchAsync(ptr_.get(), static_cast<size_t>(nbytes_), index, stream),
          "cudaMemPrefetchAsync");
#endif
    return true;
}

#else  // no CUDA in this build

void PagedBuffer::Free::operator()(void*) const noexcept {}

PagedBuffer PagedBuffer::allocate_managed(const std::vector<int64_t>&, at::ScalarType,
                                          const c10::Device& device) {
    QLORA_RUNTIME_CHECK(
        false,
        "paged optimizer state: this build has no CUDA (configured without nvcc), cannot "
        "allocate managed memory for ",
        device.str());
    return {};
}

bool PagedBuffer::concurrent_managed_access(int) { return false; }
bool PagedBuffer::prefetch_to_device() const { return false; }

#endif

}  // namespace qlora::optim
