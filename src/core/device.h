// Device and dtype helpers: parse what configs and CLIs say ("auto", "cuda:1", "bf16"), and fail
// with a clear message when cuda is asked for on a machine without it.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <string_view>

namespace qlora {

bool cuda_available();

// "auto" -> cuda:0 when a GPU is present, else cpu; "cpu"; "cuda"; "cuda:N".
// Throws qlora::Error for unknown names, and when cuda is requested but none is there.
c10::Device resolve_device(std::string_view name);

// bf16 on CUDA, fp32 on CPU (DESIGN.md section 6).
c10::ScalarType default_compute_dtype(const c10::Device& device);

// "auto" (default_compute_dtype of the device) or a name parse_dtype reads: what model.dtype and
// the tools' --dtype mean.
c10::ScalarType resolve_dtype(std::string_view name, const c10::Device& device);

// "float32"/"fp32"/"float", "bfloat16"/"bf16", "float16"/"fp16"/"half".
c10::ScalarType parse_dtype(std::string_view name);
// Whether parse_dtype reads `name`.
bool is_dtype_name(std::string_view name);
// The long name: "float32", "bfloat16", "float16" (also the names HF configs use).
std::string dtype_name(c10::ScalarType dtype);
// Bytes per element of the floating dtypes we handle.
int64_t dtype_size(c10::ScalarType dtype);

}  // namespace qlora
