// Device/dtype parsing and the cuda availability check.
#include "core/device.h"

#include <torch/cuda.h>

#include <charconv>
#include <optional>

#include "core/error.h"

namespace qlora {

bool cuda_available() { return torch::cuda::is_available(); }

c10::Device resolve_device(std::string_view name) {
    if (name == "auto")
        return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    if (name == "cpu") return c10::Device(c10::kCPU);
    if (name.starts_with("cuda")) {
        int index = 0;
        if (name.size() > 4) {
            std::string_view rest = name.substr(4);
            const char* first = rest.data() + 1;
            const char* last = rest.data() + rest.size();
            auto [ptr, ec] = std::from_chars(first, last, index);
            QLORA_CHECK(rest[0] == ':' && ec == std::errc() && ptr == last && index >= 0,
                        "device must be auto, cpu, cuda or cuda:N; got '", name, "'");
        }
        QLORA_CHECK(cuda_available(), "device '", name,
                    "' was requested but no CUDA GPU is available here; use device: cpu or auto");
        int count = static_cast<int>(torch::cuda::device_count());
        QLORA_CHECK(index < count, "device '", name, "' does not exist: this machine has ", count,
                    " CUDA device(s)");
        return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    QLORA_FAIL("device must be auto, cpu, cuda or cuda:N; got '", name, "'");
}

c10::ScalarType default_compute_dtype(const c10::Device& device) {
    return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
}

c10::ScalarType resolve_dtype(std::string_view name, const c10::Device& device) {
    return name == "auto" || name.empty() ? default_compute_dtype(device) : parse_dtype(name);
}

namespace {
// The dtype names every config key and flag accepts.
std::optional<c10::ScalarType> dtype_of(std::string_view name) {
    if (name == "float32" || name == "fp32" || name == "float") return c10::kFloat;
    if (name == "bfloat16" || name == "bf16") return c10::kBFloat16;
    if (name == "float16" || name == "fp16" || name == "half") return c10::kHalf;
    return std::nullopt;
}
}  // namespace

bool is_dtype_name(std::string_view name) { return dtype_of(name).has_value(); }

c10::ScalarType parse_dtype(std::string_view name) {
    if (auto t = dtype_of(name)) return *t;
    QLORA_FAIL("dtype must be one of float32, bfloat16, float16 (or fp32, bf16, fp16); got '", name,
               "'");
}

std::string dtype_name(c10::ScalarType dtype) {
    switch (dtype) {
        case c10::kFloat:
            return "float32";
        case c10::kBFloat16:
            return "bfloat16";
        case c10::kHalf:
            return "float16";
        default:
            return std::string(c10::toString(dtype));
    }
}

int64_t dtype_size(c10::ScalarType dtype) { return static_cast<int64_t>(c10::elementSize(dtype)); }

}  // namespace qlora
